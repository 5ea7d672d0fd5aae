"""The lake on an S3-compatible bucket (moto on loopback): other tools read it straight from the bucket, and
`hdi demo` runs with its lake there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import moto_s3
import pyarrow as pa
import pytest
from repo_paths import REPO_ROOT

from hdi_core.errors import HdiError
from hdi_resources import lake

s3_server = moto_s3.s3_server  # shared fixture
WINDOWS = ("2024-01-01", "2024-07-01")


@pytest.fixture
def bucket_lake(s3_server, tmp_path, monkeypatch) -> dict[str, str]:
    env = {**s3_server.env(s3_server.create_bucket()), "HDI_HOME": str(tmp_path / "home")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _polars_options(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_endpoint_url": env["AWS_ENDPOINT_URL"], "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"], "aws_region": env["AWS_REGION"],
        "aws_allow_http": "true",
    }


def test_polars_and_pyarrow_dataset_read_the_bucket_directly(bucket_lake):
    import polars as pl
    import pyarrow.dataset as ds

    for n, window in enumerate(WINDOWS, start=1):
        for version in range(3):  # replaced twice: superseded versions must not show in the plain view
            lake.write_table(pa.table({"price": pa.array([version] * (10 * n), pa.int64())}), "bars", symbol="ES",
                             window=window)
    root = lake.lake_root()
    assert root == f"{bucket_lake['HDI_LAKE_URL']}" and not (Path(bucket_lake["HDI_HOME"]) / "lake").exists()
    frame = pl.read_parquet(f"{root}/bars/**/*.parquet", hive_partitioning=True,
                            storage_options=_polars_options(bucket_lake))
    assert frame.height == 30 and set(frame["price"]) == {2}
    assert sorted(str(w) for w in frame["window"].unique()) == list(WINDOWS)
    store = lake.lake_store()
    arrow = ds.dataset(store.join(store.root, "bars"), filesystem=store.fs, format="parquet",
                       partitioning="hive").to_table(filter=ds.field("window") == "2024-07-01")
    assert arrow.num_rows == 20 and set(arrow["price"].to_pylist()) == {2}


def test_a_bad_lake_url_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HDI_LAKE_URL", "gs://elsewhere/lake")
    with pytest.raises(HdiError, match="HDI_LAKE_URL='gs://elsewhere/lake' is not a lake URL"):
        lake.lake_store()
    monkeypatch.setenv("HDI_LAKE_URL", "s3://AKIAX:very-secret@bucket/lake")
    with pytest.raises(HdiError) as caught:
        lake.lake_store()
    assert "very-secret" not in str(caught.value) and "AKIAX:***@" in str(caught.value)


def test_missing_partition_error_names_the_bucket_path_and_no_secret(bucket_lake):
    with pytest.raises(FileNotFoundError) as caught:
        lake.read_table("bars", symbol="ES", window="2024-01-01")
    message = str(caught.value)
    assert "/lake/bars/symbol=ES/window=2024-01-01" in message and "materialize it first" in message
    assert bucket_lake["AWS_SECRET_ACCESS_KEY"] not in message


@pytest.mark.timeout(900)
def test_demo_runs_with_its_lake_on_the_bucket(s3_server, tmp_path):
    import polars as pl

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HDI_", "DATABENTO_", "DAGSTER_", "AWS_"))}
    lake_env = s3_server.env(s3_server.create_bucket())
    env.update(lake_env, HDI_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, "-c", "from hdi_app.cli import main; main()", "demo", "--ticks-per-session", "1000",
               "--symbol", "ES", "--window", "2024-07-01"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"checks passed (\d+)/\1\b", done.stdout) and "FAILED" not in done.stdout, done.stdout[-2000:]
    assert not (tmp_path / "home" / "lake").exists()  # every partition went to the bucket
    bars = pl.read_parquet(f"{lake_env['HDI_LAKE_URL']}/ohlcv_1m/**/*.parquet", hive_partitioning=True,
                           storage_options=_polars_options(lake_env))
    loaded = next(line for line in done.stdout.splitlines() if "continuous_bars by granularity" in line)
    assert bars.height > 0 and f"1m {bars.height:,}" in loaded, (bars.height, loaded)
    assert set(bars["symbol"]) == {"ES"} and (bars["high"] >= bars["low"]).all()
