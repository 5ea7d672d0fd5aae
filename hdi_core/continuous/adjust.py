"""Back-adjustment of a continuous tick series across rolls: pure, vectorized, no Dagster.

A roll k switches at `switch_ns[k]` (ticks at or after it belong to the new contract) with
`roll_gap[k] = new - old` measured at one moment on both contracts. Panama (additive) adjustment is exact
int64 arithmetic; ratio adjustment rounds to the nearest fixed-point unit and is not exact by nature.
Rolls may lie beyond the ticks' window: a later window's roll shifts every tick of this one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.continuous.bars import column_i64
from hdi_core.errors import HdiError


def _rolls(switch_ns: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    switch_ns = np.asarray(switch_ns, dtype=np.int64)
    order = np.argsort(switch_ns, kind="stable")
    return switch_ns[order], np.asarray(values)[order]


def _rolls_at_or_before(ts_ns: np.ndarray, switch_sorted: np.ndarray) -> np.ndarray:
    """Per tick, how many switches are at or before it (searchsorted; few rolls, many ticks)."""
    return np.searchsorted(switch_sorted, ts_ns, side="right")


@njit(cache=True, nogil=True)
def _add_per_segment(ts_ns: np.ndarray, values: np.ndarray, switch_sorted: np.ndarray,
                     per_segment: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out[i] = values[i] + per_segment[k], k = switches at or before ts_ns[i]; one pass, any order."""
    n_switch = len(switch_sorted)
    k = 0
    for i in range(len(ts_ns)):
        t = ts_ns[i]
        while k < n_switch and switch_sorted[k] <= t:  # sorted ticks: the segment only ever moves forward
            k += 1
        while k > 0 and switch_sorted[k - 1] > t:  # unsorted ticks step back (few rolls: short walks)
            k -= 1
        out[i] = values[i] + per_segment[k]


def _apply_per_segment(ts_ns: np.ndarray, values: np.ndarray, switch_sorted: np.ndarray,
                       per_segment: np.ndarray, op: str) -> np.ndarray:
    """values (op) per_segment[k], k = number of switches at or before the tick."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    if op == "add":
        values = np.ascontiguousarray(values, dtype=np.int64)
        out = np.empty(len(values), dtype=np.int64)
        _add_per_segment(ts_ns, values, switch_sorted, np.ascontiguousarray(per_segment, dtype=np.int64), out)
        return out
    k = _rolls_at_or_before(ts_ns, switch_sorted)  # ratio adjustment: off the hot path, plain NumPy
    return values * per_segment[k]


def panama_backward(ts_ns: np.ndarray, price: np.ndarray, switch_ns: np.ndarray,
                    roll_gap: np.ndarray) -> np.ndarray:
    """Each tick plus the gaps of every roll switching after it; the newest contract is unchanged."""
    switch_sorted, gap = _rolls(switch_ns, np.asarray(roll_gap, dtype=np.int64))
    later = np.concatenate([np.cumsum(gap[::-1])[::-1], [0]]).astype(np.int64)  # later[k] = sum gap[k:]
    return _apply_per_segment(ts_ns, np.asarray(price, dtype=np.int64), switch_sorted, later, "add")


def panama_forward(ts_ns: np.ndarray, price: np.ndarray, switch_ns: np.ndarray,
                   roll_gap: np.ndarray) -> np.ndarray:
    """Each tick minus the gaps of every roll at or before it; the first contract is unchanged."""
    switch_sorted, gap = _rolls(switch_ns, np.asarray(roll_gap, dtype=np.int64))
    earlier = -np.concatenate([[0], np.cumsum(gap)]).astype(np.int64)  # earlier[k] = -sum gap[:k]
    return _apply_per_segment(ts_ns, np.asarray(price, dtype=np.int64), switch_sorted, earlier, "add")


def ratio_backward(ts_ns: np.ndarray, price: np.ndarray, switch_ns: np.ndarray, old_price: np.ndarray,
                   new_price: np.ndarray) -> np.ndarray:
    """Each tick times the product of later rolls' new/old ratios, rounded to int64 fixed point.

    Not exact: the factor is a float64, so a tick can land one fixed-point unit (1e-9) off the exact value.
    """
    old = np.asarray(old_price, dtype=np.int64)
    new = np.asarray(new_price, dtype=np.int64)
    if bool(np.any(old <= 0)) or bool(np.any(new <= 0)):
        raise HdiError("ratio adjustment needs positive old and new roll prices; use Panama for this market")
    switch_sorted, ratio = _rolls(switch_ns, new.astype(np.float64) / old.astype(np.float64))
    factor = np.concatenate([np.cumprod(ratio[::-1])[::-1], [1.0]])  # factor[k] = prod ratio[k:]
    scaled = _apply_per_segment(ts_ns, np.asarray(price, dtype=np.int64).astype(np.float64), switch_sorted,
                                factor, "mul")
    return np.rint(scaled).astype(np.int64)


METHODS = ("panama_backward", "panama_forward", "ratio_backward")
# Which rolls move a window's prices: backward methods those at or after it, forward ones those at or before it.
DIRECTION: dict[str, str] = {"panama_backward": "backward", "panama_forward": "forward", "ratio_backward": "backward"}


def adjust(method: str, ts_ns: np.ndarray, price: np.ndarray, switch_ns: np.ndarray, roll_gap: np.ndarray,
           old_price: np.ndarray, new_price: np.ndarray) -> np.ndarray:
    """Dispatch to one of METHODS by name (a product's configured adjustment)."""
    if method == "panama_backward":
        return panama_backward(ts_ns, price, switch_ns, roll_gap)
    if method == "panama_forward":
        return panama_forward(ts_ns, price, switch_ns, roll_gap)
    if method == "ratio_backward":
        return ratio_backward(ts_ns, price, switch_ns, old_price, new_price)
    raise HdiError(f"unknown adjustment method '{method}' (expected one of {', '.join(METHODS)})")


def adjust_ticks(ticks: pa.Table, roll_events: pa.Table, method: str = "panama_backward") -> pa.Table:
    """`ticks` plus an `adjusted_price` column (the raw `price` is kept as is)."""
    adjusted = adjust(method, column_i64(ticks, "ts_event"), column_i64(ticks, "price"),
                      column_i64(roll_events, "switch_ns"), column_i64(roll_events, "roll_gap"),
                      column_i64(roll_events, "old_price"), column_i64(roll_events, "new_price"))
    return ticks.append_column("adjusted_price", pa.array(adjusted))
