"""Input rows made loadable: constant (partition key) columns filled in, and the rows that would break a CHECK
or NOT NULL rule, or repeat a key, picked out column-wise with the rule they break (they go to quarantine)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from hdi_core.errors import HdiError

from .binary import to_nanos_fixed
from .tables import TableInfo, as_table, comparable, constant_array, key_value_matches

GRANULARITIES = ("1s", "1m", "5m", "15m", "1h", "1d")  # continuous_bars_granularity_check


class Rules:
    """Per-row rule violations collected column-wise; the first failed rule names the quarantine entry."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.bad = np.zeros(n, dtype=bool)
        self.names = np.full(n, "", dtype=object)
        self.counts: dict[str, int] = {}

    def add(self, rule: str, failed: np.ndarray) -> None:
        fresh = failed & ~self.bad
        if fresh.any():
            self.names[fresh] = rule
            self.counts[rule] = self.counts.get(rule, 0) + int(fresh.sum())
            self.bad |= fresh


@njit(cache=True, nogil=True)
def _ohlc_breaks(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """high >= GREATEST(open, close, low) and low <= LEAST(open, close, high), in one pass."""
    n = o.shape[0]
    high_breaks = np.zeros(n, dtype=np.bool_)
    low_breaks = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        high_breaks[i] = h[i] < max(o[i], c[i], lo[i])
        low_breaks[i] = lo[i] > min(o[i], c[i], h[i])
    return high_breaks, low_breaks


def _bar_rules(table: pa.Table, rules: Rules) -> None:
    """The CHECK constraints of continuous_bars, evaluated exactly on int64 1e-9 prices."""
    prices = {}
    for name in ("open", "high", "low", "close"):
        values, nulls = to_nanos_fixed(table.column(name).combine_chunks(), name)
        prices[name] = values
        if nulls is not None:
            rules.add(f"not_null({name})", nulls)
    high_breaks, low_breaks = _ohlc_breaks(prices["open"], prices["high"], prices["low"], prices["close"])
    rules.add("bar_high_is_highest", high_breaks)
    rules.add("bar_low_is_lowest", low_breaks)
    volume = table.column("volume")
    if pc.min(volume).as_py() is not None and pc.min(volume).as_py() < 0:
        rules.add("bar_volume_not_negative",
                  pc.fill_null(pc.less(volume, 0), False).to_numpy(zero_copy_only=False))
    granularity = table.column("granularity")
    if not set(pc.unique(granularity).to_pylist()) <= set(GRANULARITIES):
        allowed = pc.is_in(granularity.cast(pa.string()), pa.array(GRANULARITIES))
        rules.add("continuous_bars_granularity_check",
                  ~pc.fill_null(allowed, False).to_numpy(zero_copy_only=False))


def _duplicate_rows(table: pa.Table, info: TableInfo, key: list[str]) -> np.ndarray:
    """Rows whose key repeats an earlier row's key (the first occurrence stays)."""
    n = table.num_rows
    codes = [comparable(table.column(k), info.column(k)) for k in key]
    varying = [c for c in codes if n and not (c == c[0]).all()]
    if not varying:
        dup = np.ones(n, dtype=bool)
        dup[:1] = False
        return dup
    if len(varying) == 1 and (np.diff(varying[0]) > 0).all():
        return np.zeros(n, dtype=bool)
    order = np.lexsort(varying[::-1])
    same = np.ones(n - 1, dtype=bool)
    for c in varying:
        sorted_c = c[order]
        same &= sorted_c[1:] == sorted_c[:-1]
    dup = np.zeros(n, dtype=bool)
    # lexsort is stable, so within equal keys the earliest row comes first and is kept.
    dup[order[1:][same]] = True
    return dup


def prepare(info: TableInfo, data: Any, fixed: dict[str, Any], key: list[str]
            ) -> tuple[pa.Table, pa.Table, list[str], Rules, list[str]]:
    """Fill constant columns, check rules; returns (valid rows, invalid rows, their rules, ...)."""
    table = as_table(data)
    n = table.num_rows
    names = {c.name for c in info.columns}
    ignored = [c for c in table.column_names if c not in names]
    rules = Rules(n)
    for name, value in fixed.items():
        col = info.column(name)
        if name in table.column_names:
            rules.add("partition_key_mismatch", ~key_value_matches(table.column(name), col, value))
        else:
            table = table.append_column(name, constant_array(value, col, n))
    for col in info.columns:
        if col.not_null and not col.has_default and col.name not in table.column_names:
            raise HdiError(f"{info.name}: input has no column {col.name!r} (required, NOT NULL)")
    if info.name == "continuous_bars":
        _bar_rules(table, rules)
    for col in info.columns:
        if col.not_null and col.name in table.column_names and table.column(col.name).null_count:
            rules.add(f"not_null({col.name})",
                      np.asarray(table.column(col.name).is_null().to_numpy(zero_copy_only=False), dtype=bool))
    if n and key:
        rules.add("duplicate_key", _duplicate_rows(table, info, key) & ~rules.bad)
    load_columns = [c.name for c in info.columns if c.name in table.column_names]
    table = table.select(load_columns)
    if rules.bad.any():
        bad_mask = pa.array(rules.bad)
        return (table.filter(pc.invert(bad_mask)), as_table(data).filter(bad_mask[: n]),
                list(rules.names[rules.bad]), rules, ignored)
    return table, table.slice(0, 0), [], rules, ignored


