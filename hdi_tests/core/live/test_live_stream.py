"""The continuous series in stream: only the mapped contract's trades, MBO trade actions as a source, the
trade-date change where a continuous subscription is renewed."""

from __future__ import annotations

import numpy as np

from hdi_core.dbn.schemas import SCHEMA_DTYPES
from hdi_core.live.records import SYMBOL_MAPPING_DTYPE, RecordBatch
from hdi_core.live.stream import ContinuousSeries, trade_source
from hdi_core.units import NS

T0 = int(np.datetime64("2024-03-05T15:00", "ns").astype(np.int64))  # 09:00 CT


def _mapping(symbol: str, instrument_id: int, raw: str) -> np.ndarray:
    out = np.zeros(1, SYMBOL_MAPPING_DTYPE)
    out["stype_in_symbol"], out["instrument_id"], out["stype_out_symbol"] = symbol, instrument_id, raw
    return out


def _trades(ids: list[int], schema: str = "trades", action: bytes = b"T") -> np.ndarray:
    out = np.zeros(len(ids), SCHEMA_DTYPES[schema])
    out["instrument_id"] = ids
    out["ts_event"] = T0 + np.arange(len(ids))
    out["ts_recv"] = out["ts_event"] + 10
    out["price"] = 5000 * 10**9
    out["size"] = 1
    out["action"] = action
    return out


def test_only_the_mapped_contract_makes_bars() -> None:
    series = ContinuousSeries("ES.v.0", "CME Globex Equity", T0)
    trades = _trades([7, 8, 7])
    batch = RecordBatch(records={"trades": trades}, ts_out={"trades": np.array([1, 2, 3], np.uint64)},
                        mappings=_mapping("ES.v.0", 7, "ESH4"))
    update = series.on_batch(batch, T0 + 100)
    assert update is not None and update.raw_symbol == "ESH4" and update.sent_ns == 3
    assert update.provisional["trade_count"].tolist() == [2]
    closed = series.on_batch(RecordBatch(), T0 + 2 * NS)
    assert closed is not None and closed.closed["volume"].tolist() == [2]


def test_mbo_trade_actions_are_the_fallback_source() -> None:
    assert trade_source(["mbo", "mbp-10"]) == "mbo" and trade_source(["tbbo", "trades"]) == "trades"
    series = ContinuousSeries("GC.v.0", "CMEGlobex_GC", T0, source="mbo")
    series.on_mappings(_mapping("GC.v.0", 9, "GCJ4"))
    mbo = np.concatenate([_trades([9], "mbo", b"A"), _trades([9], "mbo", b"T")])
    update = series.on_batch(RecordBatch(records={"mbo": mbo}, ts_out={"mbo": np.zeros(2, np.uint64)}), T0)
    assert update is not None and update.provisional["trade_count"].tolist() == [1]


def test_resubscribe_at_the_next_trade_date_open_and_utc_midnight() -> None:
    series = ContinuousSeries("ES.v.0", "CME Globex Equity", T0)
    at = series.next_resubscribe_ns(T0)
    assert at == int(np.datetime64("2024-03-05T23:00", "ns").astype(np.int64))  # 17:00 CT (CST)
    then = series.next_resubscribe_ns(at)  # Databento's mapping moves with the UTC date
    assert then == int(np.datetime64("2024-03-06T00:00", "ns").astype(np.int64))
