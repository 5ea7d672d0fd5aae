"""Roll continuity: the adjusted series at each roll, and every contract change has its roll event."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.checks.common import MAX_EXAMPLES, CheckOutcome, _examples, _iso, _note, _plain
from hdi_core.continuous.bars import column_i64


def _tick_prices(adjusted_ticks: pa.Table, raw_ticks: pa.Table | None) -> tuple[np.ndarray, ...]:
    ts = column_i64(adjusted_ticks, "ts_event")
    if raw_ticks is None:  # one table: `price` raw, `adjusted_price` adjusted (adjust.adjust_ticks output)
        return ts, column_i64(adjusted_ticks, "adjusted_price"), column_i64(adjusted_ticks, "price"), \
            column_i64(adjusted_ticks, "instrument_id")
    adjusted_col = "adjusted_price" if "adjusted_price" in adjusted_ticks.column_names else "price"
    return ts, column_i64(adjusted_ticks, adjusted_col), column_i64(raw_ticks, "price"), \
        column_i64(raw_ticks, "instrument_id")


ROLL_REASONS = ("instrument change without a roll event", "instrument change with several roll events",
                "instrument differs from the roll", "roll left unadjusted", "gap has the wrong sign",
                "gap measured across the overnight move (last old trade vs first new trade)",
                "jump differs from new move minus old move")


@njit(cache=True, nogil=True)
def _change_rows(iid: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Rows whose instrument differs from the row before (few: one pass, no full-length temporaries)."""
    count = 0
    for i in range(1, len(iid)):
        count += iid[i] != iid[i - 1]
    out = np.empty(count, np.int64)
    k = 0
    for i in range(1, len(iid)):
        if iid[i] != iid[i - 1]:
            out[k] = i
            k += 1
    return out


def _instrument_changes(ts: np.ndarray, iid: np.ndarray, switches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows where the instrument changes, and how many roll events fall in (previous tick, this tick]."""
    change = _change_rows(iid)
    events = (np.searchsorted(switches, ts[change], side="right")
              - np.searchsorted(switches, ts[change - 1], side="right"))
    return change, events


def _identity_reason(method: str, jump: np.ndarray, raw_jump: np.ndarray, true_gap: np.ndarray,
                     ratio_error: np.ndarray, tolerance: float) -> np.ndarray:
    """Per roll: -1 when the adjusted jump is the market's own, else an index into ROLL_REASONS."""
    if method.startswith("ratio"):
        return np.where(ratio_error <= tolerance, -1, np.where(jump == raw_jump, 3, 6))
    applied = raw_jump - jump  # the gap the adjustment actually took out at this roll
    return np.select([applied == true_gap, applied == 0, applied == -true_gap, applied == raw_jump],
                     [-1, 3, 4, 5], default=6)


def roll_continuity(adjusted_ticks: pa.Table, raw_ticks: pa.Table | None, roll_events: pa.Table,
                    method: str = "panama_backward", ratio_tolerance: float = 1e-6) -> CheckOutcome:
    """The exact roll identity, and one roll event per change of instrument in the ticks.

    Panama: at a switch the adjusted jump (first tick after - last tick before) equals the new contract's move
    from its reference price minus the old one's move from its own (both references at one moment), exactly.
    Ratio: the same in ratio space (adjusted ratio == (new / new ref) / (old / old ref)) within
    `ratio_tolerance`, the rounding of fixed-point prices. Every change of instrument between two ticks has
    exactly one roll event in between, with the same old and new instrument: a missing event, or a
    back-month trade leaking into the series, fails. `raw_ticks` (same rows) may be None when
    `adjusted_ticks` holds both `price` (raw) and `adjusted_price`.
    """
    ts, adjusted, raw, iid = _tick_prices(adjusted_ticks, raw_ticks)
    switches = column_i64(roll_events, "switch_ns")
    old_ref, new_ref = column_i64(roll_events, "old_price"), column_i64(roll_events, "new_price")
    old_id, new_id = column_i64(roll_events, "old_instrument_id"), column_i64(roll_events, "new_instrument_id")
    change, events_at = _instrument_changes(ts, iid, switches)
    pos = np.searchsorted(ts, switches, side="left")
    inside = np.flatnonzero((pos > 0) & (pos < len(ts)))
    p = pos[inside]
    jump = adjusted[p] - adjusted[p - 1]
    raw_jump = raw[p] - raw[p - 1]
    new_move, old_move = raw[p] - new_ref[inside], raw[p - 1] - old_ref[inside]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_ratio = (raw[p] / new_ref[inside]) / (raw[p - 1] / old_ref[inside])
        ratio_error = np.abs(adjusted[p] / adjusted[p - 1] / expected_ratio - 1.0)
    reason = _identity_reason(method, jump, raw_jump, new_ref[inside] - old_ref[inside], ratio_error,
                              ratio_tolerance)
    wrong_contract = (iid[p - 1] != old_id[inside]) | (iid[p] != new_id[inside])
    reason = np.where(wrong_contract, 2, reason)
    bad_change = events_at != 1
    found = []  # (ts, example) of each violation, time ordered below
    for k in np.flatnonzero(bad_change)[:MAX_EXAMPLES]:  # examples only: at most MAX_EXAMPLES
        i = change[k]
        found.append((ts[i], {"ts_event": _iso(ts[i]), "row": int(i), "instrument_before": int(iid[i - 1]),
                              "instrument_after": int(iid[i]), "roll_events_between": int(events_at[k]),
                              "reason": ROLL_REASONS[0 if events_at[k] == 0 else 1]}))
    for k in np.flatnonzero(reason >= 0)[:MAX_EXAMPLES]:
        r = inside[k]
        found.append((switches[r], {
            "switch": _iso(switches[r]), "last_before": _iso(ts[p[k] - 1]), "first_after": _iso(ts[p[k]]),
            "adjusted_jump": int(jump[k]), "expected_jump": int(new_move[k] - old_move[k]),
            "new_contract_move": int(new_move[k]), "old_contract_move": int(old_move[k]),
            "gap_applied": int(raw_jump[k] - jump[k]), "reference_gap": int(new_ref[r] - old_ref[r]),
            "instrument_before": int(iid[p[k] - 1]), "instrument_after": int(iid[p[k]]),
            "reason": ROLL_REASONS[int(reason[k])]}))
    found.sort(key=lambda item: item[0])
    count = int(bad_change.sum() + (reason >= 0).sum())
    details = {"method": method, "rolls": len(switches), "rolls_inside_ticks": len(inside),
               "instrument_changes": len(change), "changes_without_roll": int((events_at == 0).sum()),
               "changes_with_several_rolls": int((events_at > 1).sum()),
               "identity_failures": int((reason >= 0).sum()),
               "max_abs_jump": int(np.abs(jump).max()) if len(jump) else 0}
    thresholds = {"ratio_tolerance": ratio_tolerance} if method.startswith("ratio") else {"panama": "exact"}
    return CheckOutcome("roll_continuity", count == 0, count, _plain(details),
                        [example for _, example in found[:MAX_EXAMPLES]], _plain(thresholds))


@njit(cache=True, nogil=True)
def _within_contract_kernel(raw: np.ndarray, adj: np.ndarray, iid: np.ndarray, rows: np.ndarray,
                            codes: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """(ticks whose adjusted change differs from the raw one inside a segment, number of segments)."""
    bad = 0
    segments = 1 if len(raw) else 0
    for i in range(1, len(raw)):
        if iid[i] != iid[i - 1]:
            segments += 1
        elif adj[i] - raw[i] != adj[i - 1] - raw[i - 1]:  # the shift is constant inside a segment
            bad = _note(bad, i, 0, rows, codes)
    return bad, segments


def within_contract_changes(raw_price: np.ndarray, adjusted_price: np.ndarray, instrument_id: np.ndarray,
                            ts_ns: np.ndarray | None = None) -> CheckOutcome:
    """Inside each contract segment every tick-to-tick change of the adjusted series equals the raw one's."""
    raw = np.asarray(raw_price, dtype=np.int64)
    adj = np.asarray(adjusted_price, dtype=np.int64)
    iid = np.asarray(instrument_id, dtype=np.int64)
    rows, codes = _examples()
    count, segments = _within_contract_kernel(raw, adj, iid, rows, codes)
    examples = [{"row": int(i), "ts_event": _iso(ts_ns[i]) if ts_ns is not None else None,
                 "instrument_id": int(iid[i]), "raw_change": int(raw[i] - raw[i - 1]),
                 "adjusted_change": int(adj[i] - adj[i - 1])} for i in rows[:min(count, MAX_EXAMPLES)]]
    details = {"ticks": len(raw), "segments": segments}
    return CheckOutcome("within_contract_changes", count == 0, count, details, examples)


