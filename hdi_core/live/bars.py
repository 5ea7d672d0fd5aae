"""1-second bars built in stream, equal to the historical `ohlcv_1s` on the same trades (hdi_core.continuous.bars).

History sorts a day's trades (delivered in `ts_recv` order) by `ts_event`, stably, and cuts bars on a new second
or a new session of the product calendar. Live trades arrive in `ts_recv` order, so a trade is only committed to
a bar once the clock (the largest `ts_recv` seen) has passed its `ts_event` by `grace_ns`: later arrivals cannot
sort before it any more (the exchange-to-gateway delay is far below the grace). Committed trades go through one
compiled pass that carries the open bar (its running float notional too, so VWAP is bit-identical) from batch to
batch; what is not committed yet is shown as a provisional preview, so an update is visible at once.

A bar is closed when a committed trade opens a later bar, or when the clock passes its end (next second or the
session close) by the grace. Trades outside every session make bars with session_id -1, as history labels them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from hdi_core.calendar.arrays import Sessions
from hdi_core.units import NS

BAR_DTYPE = np.dtype([
    ("ts_event", "<i8"), ("open", "<i8"), ("high", "<i8"), ("low", "<i8"), ("close", "<i8"), ("volume", "<i8"),
    ("trade_count", "<i8"), ("vwap", "<f8"), ("session_id", "<i8"), ("trade_date", "<i4"),
])
DEFAULT_GRACE_NS = 250_000_000  # how far ts_recv may run ahead of ts_event before a trade is committed
# the open bar's state: has_bar, second (ns), session, open, high, low, close, volume, count, trade date (days)
_HAS, _SEC, _SID, _O, _H, _L, _C, _VOL, _CNT, _DAY = range(10)
_STATE_LEN = 10


@njit(cache=True, nogil=True)
def _bars_kernel(state: np.ndarray, notional: np.ndarray, ts: np.ndarray, price: np.ndarray, size: np.ndarray,
                 open_ns: np.ndarray, close_ns: np.ndarray, day: np.ndarray,
                 out: np.ndarray, out_vwap: np.ndarray) -> int:  # pragma: no cover - compiled
    """Fold sorted trades into the carried open bar; each bar a trade closes goes to `out` (rows of 10 int64
    as BAR_DTYPE without vwap) and `out_vwap`. Returns the number of closed bars written."""
    k = 0
    n_sessions = len(open_ns)
    s_ptr = 0
    for i in range(len(ts)):
        t = ts[i]
        while s_ptr < n_sessions and close_ns[s_ptr] <= t:
            s_ptr += 1
        inside = s_ptr < n_sessions and open_ns[s_ptr] <= t
        s = s_ptr if inside else -1
        sec = (t // NS) * NS
        p = price[i]
        q = size[i]
        if state[_HAS] == 1 and (sec != state[_SEC] or s != state[_SID]):
            for j in range(_STATE_LEN - 1):
                out[k, j] = state[j + 1]
            out_vwap[k] = notional[0] / (float(state[_VOL]) * 1e9) if state[_VOL] != 0 else state[_C] / 1e9
            k += 1
            state[_HAS] = 0
        if state[_HAS] == 0:
            state[_HAS] = 1
            state[_SEC] = sec
            state[_SID] = s
            state[_O] = p
            state[_H] = p
            state[_L] = p
            state[_VOL] = 0
            state[_CNT] = 0
            if inside:
                state[_DAY] = day[s]
            else:  # between sessions: the UTC date of the gap's start, as history labels stray bars
                gap_start = close_ns[s_ptr - 1] if s_ptr > 0 else t
                state[_DAY] = gap_start // (86400 * NS)
            notional[0] = 0.0
        elif p > state[_H]:
            state[_H] = p
        elif p < state[_L]:
            state[_L] = p
        state[_C] = p
        state[_VOL] += q
        state[_CNT] += 1
        notional[0] += float(p) * float(q)  # the same left-to-right float sum as the historical kernel
    return k


def _as_bars(rows: np.ndarray, vwap: np.ndarray) -> np.ndarray:
    out = np.empty(len(rows), dtype=BAR_DTYPE)
    for j, name in enumerate(("ts_event", "session_id", "open", "high", "low", "close", "volume", "trade_count",
                              "trade_date")):
        out[name] = rows[:, j]
    out["vwap"] = vwap
    return out


@dataclass
class BarUpdate:
    """What one batch changed: bars that are final, and the provisional state of the bars still open."""

    closed: np.ndarray = field(default_factory=lambda: np.empty(0, BAR_DTYPE))
    provisional: np.ndarray = field(default_factory=lambda: np.empty(0, BAR_DTYPE))

    def __bool__(self) -> bool:
        return bool(len(self.closed) or len(self.provisional))


class SecondBars:
    """The incremental 1 s bar builder of one series (see the module docstring)."""

    def __init__(self, sessions: Sessions, grace_ns: int = DEFAULT_GRACE_NS) -> None:
        self.open_ns = np.ascontiguousarray(sessions.open_ns, dtype=np.int64)
        self.close_ns = np.ascontiguousarray(sessions.close_ns, dtype=np.int64)
        self.day = sessions.trade_date.astype("datetime64[D]").astype(np.int64)
        self.grace_ns = int(grace_ns)
        self.state = np.zeros(_STATE_LEN, dtype=np.int64)
        self.notional = np.zeros(1, dtype=np.float64)
        self.pending = np.empty((3, 0), dtype=np.int64)  # ts_event, price, size in arrival order
        self.committed_until = np.iinfo(np.int64).min  # trades below this ts_event are in bars already
        self.late_trades = 0  # arrived after their ts_event was committed (counted; folded in as they come)

    def _fold(self, state: np.ndarray, notional: np.ndarray, trades: np.ndarray) -> np.ndarray:
        rows = np.empty((trades.shape[1], _STATE_LEN - 1), dtype=np.int64)
        vwap = np.empty(trades.shape[1], dtype=np.float64)
        k = _bars_kernel(state, notional, trades[0], trades[1], trades[2], self.open_ns, self.close_ns, self.day,
                         rows, vwap)
        return _as_bars(rows[:k], vwap[:k])

    def _open_bar(self, state: np.ndarray, notional: np.ndarray) -> np.ndarray:
        if state[_HAS] == 0:
            return np.empty(0, BAR_DTYPE)
        vwap = notional[0] / (float(state[_VOL]) * 1e9) if state[_VOL] else state[_C] / 1e9
        return _as_bars(state[1:].reshape(1, -1).copy(), np.array([vwap]))

    def _bar_end(self) -> int:
        end = int(self.state[_SEC]) + NS
        sid = int(self.state[_SID])
        return min(end, int(self.close_ns[sid])) if sid >= 0 else end

    def push(self, ts_event: np.ndarray, price: np.ndarray, size: np.ndarray, clock_ns: int) -> BarUpdate:
        """Add trades (arrival order) and advance the clock (largest ts_recv seen) to `clock_ns`."""
        if len(ts_event):
            new = np.vstack([np.asarray(ts_event, np.int64), np.asarray(price, np.int64),
                             np.asarray(size, np.int64)])
            self.late_trades += int(np.count_nonzero(new[0] < self.committed_until))
            self.pending = np.concatenate([self.pending, new], axis=1)
        return self._advance(int(clock_ns) - self.grace_ns)

    def advance(self, clock_ns: int) -> BarUpdate:
        """No trades, only time: bars whose end the clock passed (by the grace) close."""
        return self._advance(int(clock_ns) - self.grace_ns)

    def flush(self) -> BarUpdate:
        """The end of the stream: every pending trade committed, the open bar closed."""
        update = self._advance(np.iinfo(np.int64).max)
        return update

    def _advance(self, horizon: int) -> BarUpdate:
        order = np.argsort(self.pending[0], kind="stable")  # history's order: stable by ts_event
        ready = self.pending[0][order] < horizon
        commit = self.pending[:, order[ready]]
        self.pending = self.pending[:, np.sort(order[~ready])]  # the rest stays in arrival order
        closed = self._fold(self.state, self.notional, commit)
        if horizon > self.committed_until:
            self.committed_until = horizon
        if self.state[_HAS] == 1 and self._bar_end() <= horizon:
            closed = np.concatenate([closed, self._open_bar(self.state, self.notional)])
            self.state[_HAS] = 0
        preview_state, preview_notional = self.state.copy(), self.notional.copy()
        sorted_pending = self.pending[:, np.argsort(self.pending[0], kind="stable")]
        preview = self._fold(preview_state, preview_notional, sorted_pending)
        provisional = np.concatenate([preview, self._open_bar(preview_state, preview_notional)])
        return BarUpdate(closed=closed, provisional=provisional)
