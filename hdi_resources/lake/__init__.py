"""The Parquet lake: Hive-style partitions on a folder (HDI_HOME/lake) or an S3-compatible bucket (HDI_LAKE_URL).

Each partition is published atomically by replacing one pointer object (see partition.py), so readers never see
half a partition and a reader polling during replaces never fails; leftovers of killed writers are collected by
the next write of the partition and by `hdi doctor` (leftovers.py).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from hdi_resources.lake import partition as _partition
from hdi_resources.lake.leftovers import Finding, collect_lake, recover_legacy, sweep_partials
from hdi_resources.lake.store import ENV_LAKE_URL, LakeStore, lake_store, local_path

__all__ = [
    "ENV_LAKE_URL", "Finding", "LakeStore", "collect_lake", "has_partition", "lake_root", "lake_store",
    "partition_dir", "read_json", "read_table", "sweep_partials", "write_json", "write_table",
]


def lake_root() -> Path | str:
    """The lake's root: a Path for a folder lake, `s3://bucket/prefix` for a bucket lake."""
    store = lake_store()
    return local_path(store, store.root)


def _partition_path(store: LakeStore, asset: str, keys: dict[str, str]) -> str:
    return store.join(store.root, asset, *(f"{name}={value}" for name, value in keys.items()))


def partition_dir(asset: str, **keys: str) -> Path | str:
    """e.g. lake/raw_ticks/symbol=ES/window=2024-01-01 (a Path), or its s3:// URL on a bucket lake."""
    store = lake_store()
    return local_path(store, _partition_path(store, asset, keys))


def write_table(table: pa.Table, asset: str, **keys: str) -> Path | str:
    """Replace one partition atomically; returns its plain view file (`.../part-0.parquet`)."""
    store = lake_store()
    part = _partition_path(store, asset, keys)
    view = _partition.write_version(store, part, table)
    recover_legacy(store, part, min_age=0.0)  # the previous layout's leftovers are superseded by this write
    return local_path(store, view)


def write_json(payload: str, asset: str, name: str, **keys: str) -> Path | str:
    """A small sidecar (e.g. the validation report) beside a partition's data, replaced in one step.

    Its name starts with "_", which pyarrow, Polars and DuckDB dataset readers skip, so the folder stays a
    clean Parquet dataset.
    """
    store = lake_store()
    part = _partition_path(store, asset, keys)
    store.make_dirs(part)
    path = store.join(part, f"_{name}")
    store.put_atomic(path, payload.encode())
    return local_path(store, path)


def read_json(asset: str, name: str, **keys: str) -> str:
    store = lake_store()
    return store.read_bytes(store.join(_partition_path(store, asset, keys), f"_{name}")).decode()


def read_table(asset: str, columns: list[str] | None = None, **keys: str) -> pa.Table:
    store = lake_store()
    return _partition.read_version(store, _partition_path(store, asset, keys), columns, f"{asset} {keys}")


def has_partition(asset: str, **keys: str) -> bool:
    store = lake_store()
    return _partition.has_version(store, _partition_path(store, asset, keys))
