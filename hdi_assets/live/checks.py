"""History equals live: the comparison behind the `history_equals_live` check, pure (tables in, findings out).

Records are compared column for column in delivery order (both are ts_recv order: the historical get_range and
the live arrival order); 1 s bars on time, OHLC (fixed point), volume, trade count and VWAP. Findings name the
first difference, so a failed check says where live capture went wrong (an outage shows as missing records).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

BAR_FIELDS = (("ts_event", "ts_ns"), ("open", "open_fixed"), ("high", "high_fixed"), ("low", "low_fixed"),
              ("close", "close_fixed"), ("volume", "volume"), ("trade_count", "trade_count"), ("vwap", "vwap"))


@dataclass
class Comparison:
    what: str
    history_rows: int
    live_rows: int
    problems: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.problems


def compare_records(what: str, history: pa.Table, live: pa.Table) -> Comparison:
    result = Comparison(what, history.num_rows, live.num_rows)
    if history.num_rows != live.num_rows:
        result.problems.append(f"{what}: {history.num_rows} historical records, {live.num_rows} captured live")
    missing = sorted(set(history.column_names) - set(live.column_names))
    if missing:
        result.problems.append(f"{what}: live records lack columns {', '.join(missing)}")
        return result
    n = min(history.num_rows, live.num_rows)
    for name in history.column_names:
        a = history.column(name).slice(0, n)
        b = live.column(name).slice(0, n).cast(a.type)
        if not a.equals(b):
            row = int(np.flatnonzero(~np.asarray(a.to_numpy(zero_copy_only=False) == b.to_numpy(
                zero_copy_only=False)))[0]) if n else 0
            result.problems.append(f"{what}: column {name} differs first at record {row} "
                                   f"(history {a[row].as_py()!r}, live {b[row].as_py()!r})")
            break
    return result


def compare_bars(history: pa.Table, live_rows: list[dict]) -> Comparison:
    """Historical 1 s bars (hdi_core.continuous.bars columns) against the stored live bars (live_bars rows)."""
    result = Comparison("1s bars", history.num_rows, len(live_rows))
    if history.num_rows != len(live_rows):
        result.problems.append(f"1s bars: {history.num_rows} historical, {len(live_rows)} live")
    for bar_col, live_col in BAR_FIELDS:
        want = history.column(bar_col).to_pylist()
        got = [r[live_col] for r in live_rows]
        for i, (w, g) in enumerate(zip(want, got, strict=False)):
            if w != g:
                when = history.column("ts_event")[i].as_py()
                result.problems.append(f"1s bars: {bar_col} differs first at bar {i} (ts_event {when}): "
                                       f"history {w!r}, live {g!r}")
                return result
    return result


def compare_tables(what: str, history: pa.Table, live: pa.Table, keys: list[str]) -> Comparison:
    """Derived results (order flow) of history and live, both sorted on `keys`, on history's columns; live may
    carry more (the contract of book rows)."""
    result = Comparison(what, history.num_rows, live.num_rows)
    missing = sorted(set(history.column_names) - set(live.column_names))
    if missing:
        result.problems.append(f"{what}: live results lack columns {', '.join(missing)}")
        return result
    order = [(k, "ascending") for k in keys]
    history, live = history.sort_by(order), live.select(history.column_names).sort_by(order)
    if history.num_rows != live.num_rows:
        result.problems.append(f"{what}: {history.num_rows} historical rows, {live.num_rows} live")
    n = min(history.num_rows, live.num_rows)
    for name in history.column_names:
        a = history.column(name).slice(0, n)
        b = live.column(name).slice(0, n).cast(a.type)
        if not a.equals(b):
            differs = ~np.asarray(a.to_numpy(zero_copy_only=False) == b.to_numpy(zero_copy_only=False))
            row = int(np.flatnonzero(differs)[0]) if differs.any() else 0
            result.problems.append(f"{what}: column {name} differs first at row {row} "
                                   f"(history {a[row].as_py()!r}, live {b[row].as_py()!r})")
            break
    return result
