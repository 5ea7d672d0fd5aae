"""The lake on a folder and on an S3-compatible bucket (moto on loopback): round trip, atomic replace under crashes
at every step and under SIGKILL, a reader polling during 100 replaces by another process, leftovers collected."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import moto_s3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from repo_paths import REPO_ROOT

from hdi_resources import lake
from hdi_resources.lake import partition as lake_partition

lake_env, s3_server = moto_s3.lake_env, moto_s3.s3_server  # shared fixtures

KEYS = {"symbol": "ES", "window": "2024-01-01"}
STEPS = ("data", "pointer", "view", "collect")


def _table(value: int, rows: int = 1000) -> pa.Table:
    """Every row of version `value` holds `value`, so a mixed read would show."""
    return pa.table({"v": pa.array([value] * rows, pa.int64()), "i": pa.array(range(rows), pa.int64())})


def _version_of(table: pa.Table) -> int:
    low, high = pc.min(table["v"]).as_py(), pc.max(table["v"]).as_py()
    assert low == high, f"a read mixed versions {low} and {high}"
    return low


def _versions_on_store() -> list[str]:
    store = lake.lake_store()
    part = store.join(store.root, "ticks", "symbol=ES", "window=2024-01-01", lake_partition.VERSIONS)
    return sorted(i.base_name for i in store.listing(part))


def _python(code: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_round_trip_sidecar_and_replace(lake_env):
    assert not lake.has_partition("ticks", **KEYS)
    with pytest.raises(FileNotFoundError, match="materialize it first"):
        lake.read_table("ticks", **KEYS)
    view = lake.write_table(_table(1), "ticks", **KEYS)
    assert str(view).endswith("ticks/symbol=ES/window=2024-01-01/part-0.parquet")
    assert lake.has_partition("ticks", **KEYS)
    assert lake.read_table("ticks", **KEYS).equals(_table(1))
    assert lake.read_table("ticks", columns=["i"], **KEYS).column_names == ["i"]
    lake.write_table(_table(2, rows=7), "ticks", **KEYS)
    assert _version_of(lake.read_table("ticks", **KEYS)) == 2 and lake.read_table("ticks", **KEYS).num_rows == 7
    lake.write_json('{"ok": true}', "ticks", "report.json", **KEYS)
    assert lake.read_json("ticks", "report.json", **KEYS) == '{"ok": true}'
    # The plain view holds the current version under its usual name.
    store = lake.lake_store()
    view_path = store.join(store.root, "ticks", "symbol=ES", "window=2024-01-01", "part-0.parquet")
    assert _version_of(pq.read_table(view_path, filesystem=store.fs)) == 2


def test_previous_layout_stays_readable_and_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    monkeypatch.delenv("HDI_LAKE_URL", raising=False)
    folder = tmp_path / "lake" / "ticks" / "symbol=ES" / "window=2024-01-01"
    folder.mkdir(parents=True)
    pq.write_table(_table(1), folder / "part-0.parquet")
    assert lake.has_partition("ticks", **KEYS) and _version_of(lake.read_table("ticks", **KEYS)) == 1
    lake.write_table(_table(2), "ticks", **KEYS)
    assert _version_of(lake.read_table("ticks", **KEYS)) == 2
    assert _version_of(pq.read_table(folder / "part-0.parquet")) == 2


@pytest.mark.parametrize("step", STEPS)
def test_a_write_failing_after_any_step_leaves_old_or_new(lake_env, monkeypatch, step):
    lake.write_table(_table(1), "ticks", **KEYS)

    def fail(name: str) -> None:
        if name == step:
            raise RuntimeError(f"killed after {name}")

    monkeypatch.setattr(lake_partition, "after_step", fail)
    with pytest.raises(RuntimeError, match="killed"):
        lake.write_table(_table(2), "ticks", **KEYS)
    seen = _version_of(lake.read_table("ticks", **KEYS))
    assert seen == (1 if step == "data" else 2)
    store = lake.lake_store()
    view = store.join(store.root, "ticks", "symbol=ES", "window=2024-01-01", "part-0.parquet")
    if step == "pointer":  # the plain view lags until the next write or `hdi doctor` refreshes it
        assert _version_of(pq.read_table(view, filesystem=store.fs)) == 1
        found = lake.collect_lake(store, min_age=3600.0)
        assert [f.action for f in found] == ["view refreshed"]
    assert _version_of(pq.read_table(view, filesystem=store.fs)) == seen
    # The next write publishes and collects the unpublished version (age limit 0 here; 1 h in production).
    monkeypatch.setattr(lake_partition, "after_step", None)
    monkeypatch.setattr(lake_partition, "STALE_SECONDS", 0.0)
    monkeypatch.setattr(lake_partition, "GRACE_SECONDS", 0.0)
    lake.write_table(_table(3), "ticks", **KEYS)
    assert _version_of(lake.read_table("ticks", **KEYS)) == 3
    assert len(_versions_on_store()) == 1


_KILLED_WRITER = """
import pyarrow as pa
from hdi_resources import lake
big = pa.table({"v": pa.array([2] * 3_000_000, pa.int64()), "i": pa.array(range(3_000_000), pa.int64())})
print("writing", flush=True)
while True:
    lake.write_table(big, "ticks", symbol="ES", window="2024-01-01")
"""


@pytest.mark.parametrize("delay_s", [0.05, 0.2, 0.5])
def test_a_writer_killed_mid_write_leaves_a_readable_partition(lake_env, delay_s):
    lake.write_table(_table(1), "ticks", **KEYS)
    writer = _python(_KILLED_WRITER, lake_env)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"  # imports done, table built
        time.sleep(delay_s)  # then killed somewhere inside a write: data, pointer, view or collection
        assert writer.poll() is None, writer.stderr.read().decode()[-2000:] if writer.stderr else ""
    finally:
        if writer.poll() is None and writer.pid > 0:
            os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert _version_of(lake.read_table("ticks", **KEYS)) in (1, 2)
    found = lake.collect_lake(lake.lake_store(), min_age=0.0)
    assert _version_of(lake.read_table("ticks", **KEYS)) in (1, 2)
    assert all("window=2024-01-01" in f.path for f in found)
    assert lake.collect_lake(lake.lake_store(), min_age=0.0) == []  # one pass leaves nothing behind


_REPLACER = """
import sys
import pyarrow as pa
from hdi_resources import lake
from hdi_resources.lake import partition
partition.GRACE_SECONDS = 0.0  # old versions go at once: readers must survive by following the pointer
for k in range(2, 2 + int(sys.argv[1])):
    lake.write_table(pa.table({"v": pa.array([k] * 20_000, pa.int64())}), "ticks", symbol="ES", window="2024-01-01")
"""


def test_a_reader_polling_during_100_replaces_never_fails(lake_env):
    lake.write_table(_table(1), "ticks", **KEYS)
    full_env = {**os.environ, **lake_env, "PYTHONPATH": str(REPO_ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", _REPLACER, "100"], env=full_env, stderr=subprocess.PIPE)
    reads, seen = 0, []
    try:
        deadline = time.monotonic() + 240
        while writer.poll() is None and time.monotonic() < deadline:
            seen.append(_version_of(lake.read_table("ticks", **KEYS)))
            reads += 1
    finally:
        if writer.poll() is None and writer.pid > 0:
            os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == 0, writer.stderr.read().decode()[-2000:] if writer.stderr else ""
    assert reads > 10 and seen == sorted(seen), (reads, seen[:20])
    assert _version_of(lake.read_table("ticks", **KEYS)) == 101
