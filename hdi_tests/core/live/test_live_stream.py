"""The continuous series in stream: only the mapped contract's trades, MBO trade actions as a source, the
trade-date change where a continuous subscription is renewed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

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


def test_order_flow_bars_ride_on_the_stream() -> None:
    series = ContinuousSeries("ES.v.0", "CME Globex Equity", T0)
    series.on_mappings(_mapping("ES.v.0", 7, "ESH4"))
    trades = _trades([7, 7, 7])
    trades["side"] = [b"A", b"B", b"A"]  # the aggressor: A sells into the bid, B buys the offer
    trades["size"] = [2, 5, 1]
    assert series.on_batch(RecordBatch(records={"trades": trades}, ts_out={"trades": np.zeros(3, np.uint64)}),
                           T0).flow is None  # the minute is still open
    flow = series.flush().flow
    assert flow is not None and flow["buy_volume"].to_pylist() == [5] and flow["sell_volume"].to_pylist() == [3]


def test_order_flow_from_any_split_equals_one_feed(synthetic_market) -> None:
    day = int(np.datetime64("2024-03-05T00:00", "ns").astype(np.int64))
    trades = synthetic_market.records("GLBX.MDP3", "trades", None, day + 14 * 3600 * NS, day + 16 * 3600 * NS)
    front = int(np.bincount(trades["instrument_id"]).argmax())
    trades = trades[trades["instrument_id"] == front]
    outputs = []
    for cuts in (np.array([], int), np.arange(7, len(trades), 7)):
        series = ContinuousSeries("ES.v.0", "CME Globex Equity", T0)
        series.on_mappings(_mapping("ES.v.0", front, "ESH4"))
        flows = []
        for part in np.split(trades, cuts):
            update = series.on_batch(RecordBatch(records={"trades": part},
                                                 ts_out={"trades": np.zeros(len(part), np.uint64)}),
                                     int(part["ts_recv"].max()))
            if update is not None and update.flow is not None:
                flows.append(update.flow)
        flows.append(series.flush().flow)
        outputs.append(pa.concat_tables(flows))
    assert outputs[0].num_rows > 60 and outputs[0].equals(outputs[1])
