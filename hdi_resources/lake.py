"""The Parquet lake: Hive-style folders under HDI_HOME, written atomically so readers never see half a file."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hdi_resources.settings import hdi_home


def lake_root() -> Path:
    return hdi_home() / "lake"


def partition_dir(asset: str, **keys: str) -> Path:
    """e.g. lake/raw_ticks/symbol=ES/window=2024-01-01"""
    path = lake_root() / asset
    for name, value in keys.items():
        path = path / f"{name}={value}"
    return path


def write_table(table: pa.Table, asset: str, **keys: str) -> Path:
    """Replace one partition's data atomically: write a sibling folder, then swap it in by rename."""
    final = partition_dir(asset, **keys)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".staging-{final.name}-{uuid.uuid4().hex}"
    staging.mkdir()
    # zstd keeps tick partitions small; row groups of 1M rows keep reads streaming.
    pq.write_table(table, staging / "part-0.parquet", compression="zstd", row_group_size=1 << 20)
    trash = final.parent / f".old-{final.name}-{uuid.uuid4().hex}"
    if final.exists():
        os.rename(final, trash)
    os.rename(staging, final)
    shutil.rmtree(trash, ignore_errors=True)
    return final / "part-0.parquet"


def write_json(payload: str, asset: str, name: str, **keys: str) -> Path:
    """A small sidecar file (e.g. the validation report) beside a partition's data, replaced atomically.

    Its name starts with "_", which pyarrow, Polars and DuckDB dataset readers skip, so the folder stays a
    clean Parquet dataset.
    """
    folder = partition_dir(asset, **keys)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{uuid.uuid4().hex}"
    tmp.write_text(payload)
    os.replace(tmp, folder / f"_{name}")
    return folder / f"_{name}"


def read_table(asset: str, columns: list[str] | None = None, **keys: str) -> pa.Table:
    path = partition_dir(asset, **keys) / "part-0.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{asset} has no data for {keys}: {path} is missing (materialize it first)")
    return pq.read_table(path, columns=columns)


def has_partition(asset: str, **keys: str) -> bool:
    return (partition_dir(asset, **keys) / "part-0.parquet").exists()
