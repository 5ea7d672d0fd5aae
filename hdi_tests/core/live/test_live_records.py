"""Live record bytes split by record type: against databento_dbn's own decoder, ts_out split off."""

from __future__ import annotations

import databento_dbn as dbn
import numpy as np
import pytest

from hdi_core.live.records import LiveRecordError, schema_of_rtype, split_records


def _trade(i: int) -> dbn.TradeMsg:
    return dbn.TradeMsg(publisher_id=1, instrument_id=7 + i % 2, ts_event=1000 + i, price=5_000 * 10**9 + i,
                        size=1 + i, action=dbn.Action.TRADE, side=dbn.Side.BID, depth=0, flags=0,
                        ts_recv=2000 + i, ts_in_delta=5, sequence=100 + i)


def _mbo(i: int) -> dbn.MBOMsg:
    return dbn.MBOMsg(publisher_id=1, instrument_id=7, ts_event=1000 + i, order_id=99 + i, price=10**9, size=3,
                      flags=0, channel_id=0, action=dbn.Action.ADD, side=dbn.Side.ASK, ts_recv=2000 + i,
                      ts_in_delta=1, sequence=5)


def _with_ts_out(record: object, ts_out: int) -> bytes:
    raw = bytearray(bytes(record))
    raw[0] = (len(raw) + 8) // 4
    return bytes(raw) + ts_out.to_bytes(8, "little")


def test_mixed_stream_split_by_type_with_ts_out() -> None:
    mapping = dbn.SymbolMappingMsg(publisher_id=1, instrument_id=7, ts_event=0, stype_in=dbn.SType.CONTINUOUS,
                                   stype_in_symbol="ES.v.0", stype_out=dbn.SType.RAW_SYMBOL,
                                   stype_out_symbol="ESH4", start_ts=0, end_ts=1)
    beat = dbn.SystemMsg(ts_event=5, msg="Heartbeat")
    parts = [bytes(mapping)]
    for i in range(6):
        parts.append(_with_ts_out(_trade(i) if i % 3 else _mbo(i), 9000 + i))
    parts.append(bytes(beat))
    data = b"".join(parts)
    batch, used = split_records(data + data[:20], schema_of_rtype(["trades", "mbo"]))
    assert used == len(data)  # the cut-off copy of the first record waits for its rest
    trades, mbo = batch.records["trades"], batch.records["mbo"]
    assert trades["sequence"].tolist() == [101, 102, 104, 105]
    assert batch.ts_out["trades"].tolist() == [9001, 9002, 9004, 9005]
    assert mbo["order_id"].tolist() == [99, 102] and batch.ts_out["mbo"].tolist() == [9000, 9003]
    assert trades[0].tobytes() == bytes(_trade(1))  # the historical layout exactly
    assert batch.mappings["stype_out_symbol"].tolist() == [b"ESH4"]
    assert len(batch.system) == 1 and batch.market_count == 6


def test_tbbo_and_mbp1_share_a_record_type_and_a_zero_length_is_refused() -> None:
    with pytest.raises(Exception, match="share one record type"):
        schema_of_rtype(["tbbo", "mbp-1"])
    with pytest.raises(LiveRecordError, match="length 0"):
        split_records(np.zeros(32, np.uint8).tobytes(), {})
