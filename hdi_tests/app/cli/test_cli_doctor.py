"""`hdi doctor`: planted leftovers of killed writes and downloads are reported, recovered or removed (or only
reported with --dry-run), and nothing outside the lake and the download cache is touched."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import moto_s3
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from hdi_app.cli import app
from hdi_resources import lake
from hdi_resources.lake import partition as lake_partition

lake_env, s3_server = moto_s3.lake_env, moto_s3.s3_server  # shared fixtures

KEYS = {"symbol": "ES", "window": "2024-01-01"}
OLD = time.time() - 7200  # older than doctor's default --min-age of one hour


def _doctor(*args: str) -> str:
    result = CliRunner().invoke(app, ["doctor", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _plant_orphan_version(root: str | None = None) -> str:
    """An unpublished version, as a writer killed before publishing its pointer leaves it."""
    store = lake.lake_store()
    part = store.join(root or store.root, "ticks", "symbol=ES", "window=2024-01-01")
    version = "20200101T000000000000Z-deadbeef"  # written long ago
    folder = store.join(part, lake_partition.VERSIONS, version)
    store.make_dirs(folder)
    pq.write_table(pa.table({"v": [9]}), store.join(folder, "part-0.pq"), filesystem=store.fs)
    return folder


def _plant_partial(home: Path) -> Path:
    cache = home / "cache" / "databento" / "GLBX.MDP3" / "trades"
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".partial-{uuid.uuid4().hex}.dbn.zst"
    partial.write_bytes(b"\x28\xb5\x2f\xfd cut")
    os.utime(partial, (OLD, OLD))
    return partial


def test_doctor_removes_orphan_versions_and_partial_downloads(lake_env):
    home = Path(lake_env["HDI_HOME"])
    lake.write_table(pa.table({"v": [1]}), "ticks", **KEYS)
    orphan = _plant_orphan_version()
    partial = _plant_partial(home)
    fresh = _plant_partial(home)
    os.utime(fresh, None)  # a download still running: too young to touch
    outside = home.parent / ".partial-outside.dbn.zst"
    outside.write_bytes(b"not ours")
    os.utime(outside, (OLD, OLD))
    store = lake.lake_store()
    beside = _plant_orphan_version(store.root + "-beside")  # next to the lake's prefix, not in it: not ours

    dry = _doctor("--dry-run")
    assert "would remove" in dry and "deadbeef" in dry and partial.name in dry and "dry run" in dry
    assert store.exists(orphan) and partial.exists()

    out = _doctor()
    assert f"removed: {store.url(orphan)}" in out and f"removed: {partial}" in out
    assert not store.exists(orphan) and not partial.exists()
    assert fresh.exists() and outside.exists() and store.exists(beside)
    assert lake.read_table("ticks", **KEYS).to_pydict() == {"v": [1]}
    assert "nothing to clean up" in _doctor()
    assert "hdi-test-secret" not in dry + out  # the bucket's secret key is never printed


def test_doctor_recovers_a_partition_lost_between_the_previous_layouts_two_renames(tmp_path, monkeypatch):
    """The old replace renamed P to .old-*, then .staging-* to P; killed in between, P was missing."""
    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    monkeypatch.delenv("HDI_LAKE_URL", raising=False)
    parent = tmp_path / "lake" / "ticks" / "symbol=ES"
    for prefix, value in ((".old", 1), (".staging", 2)):
        folder = parent / f"{prefix}-window=2024-01-01-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"v": [value]}), folder / "part-0.parquet")
    cut = parent / f".staging-window=2024-07-01-{uuid.uuid4().hex}"  # a write killed mid-file: dropped
    cut.mkdir()
    (cut / "part-0.parquet").write_bytes(b"PAR1 half a file")
    for path in parent.iterdir():
        os.utime(path, (OLD, OLD))
    assert not lake.has_partition("ticks", **KEYS)

    out = _doctor()
    assert "recovered: " in out and "window=2024-01-01 (from .staging-window=2024-01-01-" in out
    assert lake.read_table("ticks", **KEYS).to_pydict() == {"v": [2]}  # the complete new data
    assert sorted(p.name for p in parent.iterdir()) == ["window=2024-01-01"]
    assert not lake.has_partition("ticks", symbol="ES", window="2024-07-01")


def test_next_write_removes_the_previous_layouts_leftovers(tmp_path, monkeypatch):
    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    monkeypatch.delenv("HDI_LAKE_URL", raising=False)
    parent = tmp_path / "lake" / "ticks" / "symbol=ES"
    stale = parent / f".staging-window=2024-01-01-{uuid.uuid4().hex}"
    stale.mkdir(parents=True)
    (stale / "part-0.parquet").write_bytes(b"PAR1 cut")
    other = parent / f".staging-window=2024-07-01-{uuid.uuid4().hex}"  # another partition: left alone
    other.mkdir()
    lake.write_table(pa.table({"v": [5]}), "ticks", **KEYS)
    assert not stale.exists() and other.exists()


def test_the_next_download_into_a_cache_folder_removes_its_killed_partials(tmp_path):
    """The Databento cache sweeps stale `.partial-*` bodies beside the entry a download is about to write."""
    from hdi_resources.databento import ChunkRequest
    from hdi_resources.databento.cache import ChunkCache

    cache = ChunkCache(tmp_path / "cache", "test-source")
    chunk = ChunkRequest("GLBX.MDP3", "trades", ("ES.v.0",), "continuous", "instrument_id", 0, 10**9, None)
    folder = cache.path(chunk).parent
    folder.mkdir(parents=True)
    stale, live = folder / ".partial-dead.dbn.zst", folder / ".partial-live.dbn.zst"
    for path in (stale, live):
        path.write_bytes(b"cut")
    os.utime(stale, (OLD, OLD))
    fresh = cache.partial_path(chunk)  # what a download asks for before it streams the body
    assert not stale.exists() and live.exists() and fresh.parent == folder
