"""Splicing the new contract into the stretch between HDI's switch and Databento's: pure, columnar.

Databento's continuous symbol changes contract at 00:00 UTC, an hour or two into the new trade date's evening
session, and maps records by `ts_recv`. HDI switches at the open of that trade date (rolls.switch_at) and assigns
every tick by `ts_event`: from the switch on, the old contract's ticks are dropped and the new contract's, fetched
by raw symbol for [switch, Databento's switch) by `ts_recv`, take their place. A trade has one `ts_recv`, so it
comes from exactly one of the two requests: nothing is doubled or lost.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hdi_core.continuous.bars import column_i64


def stretches(switches: pa.Table) -> list[tuple[int, int, int, int]]:
    """(switch_ns, databento_switch_ns, old id, new id) of the switches that precede Databento's own."""
    cols = [column_i64(switches, c) for c in ("switch_ns", "databento_switch_ns", "old_instrument_id",
                                               "new_instrument_id")]
    return [(int(s), int(d), int(o), int(n)) for s, d, o, n in zip(*cols, strict=True) if s < d]


def splice(ticks: pa.Table, switches: pa.Table, new_contract: list[pa.Table]) -> pa.Table:
    """`ticks` of the continuous symbol (ts_event, ts_recv, instrument_id, ...) with each early stretch's old-contract
    ticks replaced by `new_contract[i]` (the new contract's records received in stretch i), in the feed's index order
    (ts_recv), as Databento delivers every stream."""
    spans = stretches(switches)
    if not spans:
        return ticks
    ts = column_i64(ticks, "ts_event")
    ids = column_i64(ticks, "instrument_id")
    drop = np.zeros(len(ts), dtype=bool)
    pieces = []
    for (start, _, old, _), fresh in zip(spans, new_contract, strict=True):
        drop |= (ids == old) & (ts >= start)
        pieces.append(fresh.filter(pa.array(column_i64(fresh, "ts_event") >= start)).select(ticks.column_names))
    kept = ticks.filter(pa.array(~drop))
    merged = pa.concat_tables([kept, *(p.cast(ticks.schema) for p in pieces)])
    return merged.take(np.argsort(column_i64(merged, "ts_recv"), kind="stable"))
