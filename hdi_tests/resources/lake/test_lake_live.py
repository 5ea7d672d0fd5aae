"""The live lake: small atomic chunks readable by DuckDB and Polars at any moment, compacted into one file,
replaced by history."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from hdi_core.dbn.schemas import SCHEMA_DTYPES
from hdi_resources.lake.live import LiveLake, live_files, read_live, replace_with_history


def _trades(n: int, first: int) -> np.ndarray:
    out = np.zeros(n, SCHEMA_DTYPES["trades"])
    out["length"], out["rtype"] = SCHEMA_DTYPES["trades"].itemsize // 4, 0
    out["ts_recv"] = first + np.arange(n)
    out["sequence"] = first + np.arange(n)
    out["price"] = 5_000 * 10**9
    out["action"], out["side"] = b"T", b"B"
    return out


def test_chunks_read_by_duckdb_and_polars_then_compacted(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    monkeypatch.delenv("HDI_LAKE_URL", raising=False)
    lake = LiveLake()
    for i in range(3):
        lake.append("trades", "ES", "2024-03-05", _trades(10, 100 * i))
    assert lake.append("trades", "ES", "2024-03-05", _trades(0, 0)) is None
    folder = tmp_path / "lake" / "live" / "trades" / "symbol=ES" / "trade_date=2024-03-05"
    assert not list(folder.glob(".tmp-*"))  # nothing half-written is left
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/*.parquet')").fetchall()[0][0] == 30
    assert pl.read_parquet(f"{folder}/*.parquet").height == 30
    assert read_live("trades", "ES", "2024-03-05")["sequence"].to_pylist() == \
        list(range(10)) + list(range(100, 110)) + list(range(200, 210))
    assert lake.compact("trades", "ES", "2024-03-05") == 30
    assert [p.name for p in folder.glob("*.parquet")] == ["part-0.parquet"]
    assert len(live_files("trades", "ES", "2024-03-05")) == 1
    assert lake.partitions() == [("trades", "ES", "2024-03-05")]
    assert replace_with_history("trades", "ES", "2024-03-05", _trades(31, 0)) == 31
    assert read_live("trades", "ES", "2024-03-05").num_rows == 31 and (folder / "_source").read_text() == "historical\n"
