"""OHLC integrity of bars, and bad-tick detection on the ticks they come from."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.checks.common import MAX_EXAMPLES, CheckOutcome, _examples, _iso, _kernel_outcome, _note
from hdi_core.continuous.bars import column_i64

# Robust scale of tick-to-tick changes from at most this many of them (a strided sample: cheap, stable).
SCALE_SAMPLE = 200_000

@njit(cache=True, nogil=True)
def _ohlc_kernel(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, vol: np.ndarray,
                 count: np.ndarray, counts: np.ndarray, rows: np.ndarray,
                 codes: np.ndarray) -> int:  # pragma: no cover - compiled
    """counts = [high violations, low violations, volume violations, filler bars]; returns bad bars."""
    bad = n_high = n_low = n_volume = n_filler = 0  # locals, not counts[]: they stay in registers
    for i in range(len(o)):
        high_bad = h[i] < o[i] or h[i] < c[i] or h[i] < lo[i]
        low_bad = lo[i] > o[i] or lo[i] > c[i]
        filler = count[i] == 0 and vol[i] == 0 and o[i] == h[i] and h[i] == lo[i] and lo[i] == c[i]
        volume_bad = not ((vol[i] > 0 and count[i] > 0) or filler)
        n_high += high_bad
        n_low += low_bad
        n_volume += volume_bad
        n_filler += filler
        if high_bad or low_bad or volume_bad:
            bad = _note(bad, i, 0 if high_bad else (1 if low_bad else 2), rows, codes)
    counts[0], counts[1], counts[2], counts[3] = n_high, n_low, n_volume, n_filler
    return bad


@njit(cache=True, nogil=True)
def _bad_tick_kernel(ts: np.ndarray, price: np.ndarray, iid: np.ndarray, floor: float, sigmas: float,
                     revert_fraction: float, rows: np.ndarray, codes: np.ndarray) -> int:  # pragma: no cover
    """Ticks far from both neighbours (same side, same contract) whose neighbours agree: spikes that revert.

    Far means at least max(floor, sigmas * sqrt(seconds to the farther neighbour)) in price units, `sigmas`
    already scaled by the per-sqrt-second volatility: a move over minutes is the market, not a bad print.
    """
    bad = 0
    for i in range(1, len(price) - 1):
        if iid[i] != iid[i - 1] or iid[i] != iid[i + 1]:
            continue  # a contract change is roll_continuity's business
        d_prev = price[i] - price[i - 1]
        d_next = price[i] - price[i + 1]
        jump = min(abs(d_prev), abs(d_next))
        if jump < floor or (d_prev > 0) != (d_next > 0) or abs(price[i + 1] - price[i - 1]) > revert_fraction * jump:
            continue
        seconds = max(ts[i + 1] - ts[i], ts[i] - ts[i - 1], 1_000_000_000) / 1e9
        if jump >= sigmas * np.sqrt(seconds):
            bad = _note(bad, i, 0, rows, codes)
    return bad


def tick_change_sigma(ts: np.ndarray, price: np.ndarray) -> float:
    """1.4826 * median |tick-to-tick change| / sqrt(seconds between them, at least 1), over a strided sample of
    consecutive pairs: the robust volatility of ordinary changes per sqrt-second."""
    if len(price) < 3:
        return 0.0
    at = np.arange(0, len(price) - 1, max(1, (len(price) - 1) // SCALE_SAMPLE))
    seconds = np.maximum((ts[at + 1] - ts[at]) / 1e9, 1.0)
    return 1.4826 * float(np.median(np.abs(price[at + 1] - price[at]) / np.sqrt(seconds)))


def bad_ticks(ts: np.ndarray, price: np.ndarray, iid: np.ndarray, tick_size: int, min_jump_ticks: float = 40,
              jump_sigmas: float = 12, revert_fraction: float = 0.25) -> tuple[int, list[dict], dict]:
    """(count, first examples with the tick, details) of fat-finger / off-market prints.

    A print is bad when it is at least max(min_jump_ticks ticks, jump_sigmas robust sigmas scaled to the time
    to its farther neighbour) away from BOTH neighbours on the same side, and the neighbours agree to within
    revert_fraction of that distance.
    """
    sigma = tick_change_sigma(ts, price)
    floor = float(min_jump_ticks * tick_size)
    rows, codes = _examples()
    count = _bad_tick_kernel(ts, price, iid, floor, float(jump_sigmas * sigma), float(revert_fraction), rows, codes)
    examples = [{"ts_event": _iso(ts[i]), "tick_row": int(i), "price": int(price[i]),
                 "previous_price": int(price[i - 1]), "next_price": int(price[i + 1]),
                 "instrument_id": int(iid[i]), "reason": "bad tick: far outside its neighbours, reverts"}
                for i in rows[:min(count, MAX_EXAMPLES)]]
    return count, examples, {"bad_ticks": count, "tick_sigma_per_sqrt_second": sigma, "bad_tick_floor": floor}


def ohlc_integrity(bars: pa.Table, ticks: pa.Table | None = None, tick_size: int = 1, min_jump_ticks: float = 40,
                   jump_sigmas: float = 12, revert_fraction: float = 0.25,
                   price_column: str = "price") -> CheckOutcome:
    """high >= open, close, low; low <= open, close; volume > 0 except flat filler bars (trade_count 0); and,
    given the ticks, no bad tick (see bad_ticks) among them."""
    o, h, lo, c = (column_i64(bars, k) for k in ("open", "high", "low", "close"))
    vol = column_i64(bars, "volume")
    has_count = "trade_count" in bars.column_names
    count = column_i64(bars, "trade_count") if has_count else np.ones(len(o), np.int64)
    counts = np.zeros(4, dtype=np.int64)
    rows, codes = _examples()
    bad = _ohlc_kernel(o, h, lo, c, vol, count, counts, rows, codes)
    details = {"bars": len(o), "high_violations": int(counts[0]), "low_violations": int(counts[1]),
               "volume_violations": int(counts[2]), "filler_bars": int(counts[3])}
    outcome = _kernel_outcome("ohlc_integrity", bad, rows, codes,
                              ("high below open/close/low", "low above open/close",
                               "no volume on a bar that is not a filler"), bars, details)
    thresholds = {"min_jump_ticks": min_jump_ticks, "jump_sigmas": jump_sigmas, "revert_fraction": revert_fraction}
    if ticks is None:
        return outcome.with_thresholds(**thresholds)
    n_bad, examples, tick_details = bad_ticks(column_i64(ticks, "ts_event"), column_i64(ticks, price_column),
                                              column_i64(ticks, "instrument_id"), tick_size, min_jump_ticks,
                                              jump_sigmas, revert_fraction)
    total = outcome.violations + n_bad
    return CheckOutcome("ohlc_integrity", total == 0, total, {**outcome.details, **tick_details},
                        (outcome.first_violations + examples)[:MAX_EXAMPLES], thresholds)


