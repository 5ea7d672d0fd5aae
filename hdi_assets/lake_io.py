"""Lake locations derived from asset keys and partition keys, so asset bodies never type a lake name.

A partition of asset `a/b` lives at `<lake>/a/b/<dimension>=<value>/...` (Hive style; the lake is a folder or a
bucket, see hdi_resources.lake; write returns a Path or an s3:// URL), one folder per dimension
of its partition key in the partitions definition's order. ohlcv_bars writes one lake table per bar interval,
named by `bar_table`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from dagster import AssetKey, AssetsDefinition, MultiPartitionKey

from hdi_resources import lake

LakeTable = AssetsDefinition | AssetKey | str


def lake_name(table: LakeTable) -> str:
    """The lake folder of an asset (its key path) or of a named sub-table such as `bar_table("1m")`."""
    if isinstance(table, str):
        return table
    key = table.key if isinstance(table, AssetsDefinition) else table
    return "/".join(key.path)


def bar_table(interval: str) -> str:
    """The lake table ohlcv_bars writes for one bar interval (`1s` is the ohlcv_1s asset's own table)."""
    return f"ohlcv_{interval}"


def _dimensions(partition: MultiPartitionKey) -> dict[str, str]:
    return dict(partition.keys_by_dimension)


def read(table: LakeTable, partition: MultiPartitionKey, columns: list[str] | None = None) -> pa.Table:
    return lake.read_table(lake_name(table), columns=columns, **_dimensions(partition))


def write(table: LakeTable, partition: MultiPartitionKey, data: pa.Table) -> Path | str:
    return lake.write_table(data, lake_name(table), **_dimensions(partition))


def write_sidecar(table: LakeTable, partition: MultiPartitionKey, name: str, payload: str) -> Path | str:
    return lake.write_json(payload, lake_name(table), name, **_dimensions(partition))


def exists(table: LakeTable, partition: MultiPartitionKey) -> bool:
    return lake.has_partition(lake_name(table), **_dimensions(partition))
