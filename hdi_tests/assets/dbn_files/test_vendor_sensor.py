"""The landing-folder sensor: each new DBN file becomes its own dynamic partition and run, ingested for real."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context, materialize
from repo_paths import DBN_SAMPLES

from hdi_assets.dbn_files.assets import dbn_file_partitions, dbn_files, landing_dir
from hdi_assets.dbn_files.sensors import build_landing_sensor
from hdi_resources.db import Database
from hdi_resources.db.resource import DatabaseResource
from hdi_resources.db.server import stop_embedded_server

SAMPLES = DBN_SAMPLES
FILES = [SAMPLES / "dbn" / "test_data.trades.v1.dbn.zst", SAMPLES / "dbn" / "test_data.statistics.v2.dbn.zst",
         SAMPLES / "databento-python" / "GLBX.MDP3" / "test_data.ohlcv-1h.dbn.zst"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("hdi_home")
    saved = os.environ.get("HDI_HOME")
    os.environ["HDI_HOME"] = str(path)
    try:
        yield path
    finally:
        stop_embedded_server(path)
        if saved is None:
            os.environ.pop("HDI_HOME", None)
        else:
            os.environ["HDI_HOME"] = saved


def _land(folder: Path, source: Path, age_s: float = 60.0) -> Path:
    target = folder / source.name
    shutil.copyfile(source, target)
    past = time.time() - age_s
    os.utime(target, (past, past))
    return target


def test_new_files_become_partitions_and_are_ingested_once(home: Path) -> None:
    landing = landing_dir()
    assert landing == home / "landing"
    instance = DagsterInstance.ephemeral()
    sensor = build_landing_sensor()
    for source in FILES[:2]:
        _land(landing, source)
    (landing / "notes.txt").write_text("not DBN")
    _land(landing, FILES[2], age_s=0)  # still being copied in: not yet

    context = build_sensor_context(instance=instance)
    result = sensor(context)
    assert isinstance(result, SensorResult)
    keys = sorted(r.partition_key for r in result.run_requests)
    assert keys == sorted(p.name for p in FILES[:2])
    assert result.dynamic_partitions_requests[0].partition_keys == keys
    instance.add_dynamic_partitions(dbn_file_partitions.name, keys)

    database = Database()
    for request in result.run_requests:
        run = materialize([dbn_files], partition_key=request.partition_key, instance=instance,
                          resources={"database": DatabaseResource()}, run_config=request.run_config)
        assert run.success
        meta = run.asset_materializations_for_node("vendor__dbn_files")[0].metadata
        assert meta["status"].value == "success" and meta["stored"].value == meta["fetched"].value > 0
    with database.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT file_name, status FROM data_ingest_runs ORDER BY id")
        assert sorted(cur.fetchall()) == sorted((k, "success") for k in keys)

    # Next tick: only the file that has settled since is new; the cursor remembers the others.
    os.utime(landing / FILES[2].name, (time.time() - 60, time.time() - 60))
    later = sensor(build_sensor_context(instance=instance, cursor=result.cursor))
    assert [r.partition_key for r in later.run_requests] == [FILES[2].name]
    nothing = sensor(build_sensor_context(instance=instance, cursor=later.cursor))
    assert isinstance(nothing, SkipReason)

    # The same bytes landing again under a new run: recognised by sha256, nothing changes.
    key = FILES[0].name
    again = materialize([dbn_files], partition_key=key, instance=instance, resources={"database": DatabaseResource()},
                        run_config=result.run_requests[0].run_config if result.run_requests[0].partition_key == key
                        else result.run_requests[1].run_config)
    meta = again.asset_materializations_for_node("vendor__dbn_files")[0].metadata
    assert meta["status"].value == "skipped"
    database.close()


def test_landing_folder_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDI_LANDING_DIR", str(tmp_path / "drop"))
    assert landing_dir() == (tmp_path / "drop").resolve() and landing_dir().is_dir()
    sensor = build_landing_sensor(folder=tmp_path / "elsewhere")
    assert isinstance(sensor(build_sensor_context(instance=DagsterInstance.ephemeral())), SkipReason)
