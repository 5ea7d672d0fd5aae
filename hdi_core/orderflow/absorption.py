"""Absorption zones from mbp-10: a best bid (ask) that sell (buy) aggressors keep hitting while it holds or refills.

Rule `absorption_top_of_book` (parameters: configs/orderflow.yaml `absorption`):
- A zone opens on an aggressor trade at the current best price of the side it hits (a sell aggressor at the best
  bid opens a bid zone); `initial_size` is the size shown there. Each later trade at that price adds to `volume`.
- The book is read only on records carrying F_LAST (Databento: consistent after the last record of an event).
  Shown size rising at the zone's price while it is still the best is a refill.
- The zone closes `broke` when price moves through it (a trade beyond it, or the best of its side moving past
  it), `held` when price moves away (the best of its side moving off it the other way) or after `max_idle_ms`
  without a trade at it (end = its last trade), `open` when the tape ends with it standing (flush).
- It is reported when volume >= `min_volume` and volume > `min_absorbed_ratio` x `initial_size`.
Evidence: the first and last absorbed trades as (index in the tape, ts_recv, sequence).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.orderflow.book import F_LAST, TRADE, UNDEF_PRICE, TopOfBook
from hdi_core.orderflow.tape import BUY, SELL

RULE = "absorption_top_of_book"
HELD, BROKE, OPEN = 0, 1, 2
OUTCOMES = np.array(["held", "broke", "open"], dtype=object)
ZONE_SCHEMA = pa.schema([
    ("side", pa.string()), ("price", pa.int64()), ("start_ts", pa.int64()), ("end_ts", pa.int64()),
    ("duration_ns", pa.int64()), ("volume", pa.int64()), ("trades", pa.int64()), ("refills", pa.int64()),
    ("initial_size", pa.int64()), ("max_displayed", pa.int64()), ("outcome", pa.string()),
    ("first_index", pa.int64()), ("first_ts_recv", pa.int64()), ("first_sequence", pa.int64()),
    ("last_index", pa.int64()), ("last_ts_recv", pa.int64()), ("last_sequence", pa.int64()),
    ("rule", pa.string()),
])
# zone state, one row per resting side (0 bid, 1 ask)
(Z_ACTIVE, Z_PRICE, Z_VOLUME, Z_TRADES, Z_REFILLS, Z_INITIAL, Z_MAX, Z_SHOWN, Z_FIRST, Z_FIRST_TS, Z_FIRST_SEQ,
 Z_LAST, Z_LAST_TS, Z_LAST_SEQ) = range(14)
N_STATE = 14
N_OUT = 15  # side, price, start, end, volume, trades, refills, initial, max, outcome, first index + sequence, last x3


@njit(cache=True, nogil=True, inline="always")
def _close(z: int, state: np.ndarray, end_ts: int, outcome: int, min_volume: int, ratio: float, out: np.ndarray,
           m: int) -> int:  # pragma: no cover - compiled
    st = state[z]
    st[Z_ACTIVE] = 0
    if st[Z_VOLUME] < min_volume or st[Z_VOLUME] <= ratio * st[Z_INITIAL]:
        return m
    out[m, 0] = BUY if z == 0 else SELL
    out[m, 1] = st[Z_PRICE]
    out[m, 2] = st[Z_FIRST_TS]
    out[m, 3] = end_ts
    out[m, 4] = st[Z_VOLUME]
    out[m, 5] = st[Z_TRADES]
    out[m, 6] = st[Z_REFILLS]
    out[m, 7] = st[Z_INITIAL]
    out[m, 8] = st[Z_MAX]
    out[m, 9] = outcome
    out[m, 10] = st[Z_FIRST]
    out[m, 11] = st[Z_FIRST_SEQ]
    out[m, 12] = st[Z_LAST]
    out[m, 13] = st[Z_LAST_TS]
    out[m, 14] = st[Z_LAST_SEQ]
    return m + 1


@njit(cache=True, nogil=True)
def _absorption_kernel(ts: np.ndarray, seq: np.ndarray, action: np.ndarray, side: np.ndarray, price: np.ndarray,
                       size: np.ndarray, flags: np.ndarray, bid_px: np.ndarray, bid_sz: np.ndarray,
                       ask_px: np.ndarray, ask_sz: np.ndarray, offset: int, state: np.ndarray, min_volume: int,
                       ratio: float, idle_ns: int, out: np.ndarray) -> int:  # pragma: no cover - compiled
    """Feed records in arrival order through the two zones in `state`; closed zones go to `out`."""
    m = 0
    for i in range(len(ts)):
        t = ts[i]
        for z in range(2):
            if state[z, Z_ACTIVE] and t - state[z, Z_LAST_TS] > idle_ns:
                m = _close(z, state, state[z, Z_LAST_TS], HELD, min_volume, ratio, out, m)
        if action[i] == TRADE and (side[i] == SELL or side[i] == BUY):
            z = 0 if side[i] == SELL else 1  # a sell aggressor hits the bid
            q = price[i]
            st = state[z]
            if st[Z_ACTIVE]:
                through = q < st[Z_PRICE] if z == 0 else q > st[Z_PRICE]
                if q == st[Z_PRICE]:
                    st[Z_VOLUME] += size[i]
                    st[Z_TRADES] += 1
                    st[Z_LAST] = offset + i
                    st[Z_LAST_TS] = t
                    st[Z_LAST_SEQ] = seq[i]
                else:
                    m = _close(z, state, t, BROKE if through else HELD, min_volume, ratio, out, m)
            best = bid_px[i] if z == 0 else ask_px[i]
            if not st[Z_ACTIVE] and q == best:
                shown = bid_sz[i] if z == 0 else ask_sz[i]
                st[Z_ACTIVE] = 1
                st[Z_PRICE] = q
                st[Z_VOLUME] = size[i]
                st[Z_TRADES] = 1
                st[Z_REFILLS] = 0
                st[Z_INITIAL] = shown
                st[Z_MAX] = shown
                st[Z_SHOWN] = shown
                st[Z_FIRST] = offset + i
                st[Z_FIRST_TS] = t
                st[Z_FIRST_SEQ] = seq[i]
                st[Z_LAST] = offset + i
                st[Z_LAST_TS] = t
                st[Z_LAST_SEQ] = seq[i]
        if flags[i] & F_LAST:
            for z in range(2):
                st = state[z]
                if not st[Z_ACTIVE]:
                    continue
                best = bid_px[i] if z == 0 else ask_px[i]
                if best == UNDEF_PRICE:
                    continue  # that side of the book is empty (cleared): no position to judge
                p = st[Z_PRICE]
                if best == p:
                    shown = bid_sz[i] if z == 0 else ask_sz[i]
                    if shown > st[Z_SHOWN]:
                        st[Z_REFILLS] += 1
                    st[Z_SHOWN] = shown
                    if shown > st[Z_MAX]:
                        st[Z_MAX] = shown
                elif (best < p) == (z == 0):
                    m = _close(z, state, t, BROKE, min_volume, ratio, out, m)
                else:
                    m = _close(z, state, t, HELD, min_volume, ratio, out, m)
    return m


def _zone_table(rows: np.ndarray) -> pa.Table:
    side = np.where(rows[:, 0] == BUY, "B", "A").astype(object)
    start, end = rows[:, 2], rows[:, 3]
    cols = [pa.array(side, pa.string()), pa.array(rows[:, 1]), pa.array(start), pa.array(end),
            pa.array(end - start), *(pa.array(rows[:, j]) for j in (4, 5, 6, 7, 8)),
            pa.array(OUTCOMES[rows[:, 9]], pa.string()), pa.array(rows[:, 10]), pa.array(start),
            pa.array(rows[:, 11]), pa.array(rows[:, 12]), pa.array(rows[:, 13]), pa.array(rows[:, 14]),
            pa.array(np.full(len(rows), RULE, dtype=object), pa.string())]
    return pa.Table.from_arrays(cols, schema=ZONE_SCHEMA)


class AbsorptionDetector:
    """Incremental absorption: feed mbp-10 batches in arrival order; each call returns the zones it closed."""

    def __init__(self, min_volume: int = 50, min_absorbed_ratio: float = 1.0, max_idle_ms: int = 5_000) -> None:
        self.min_volume = int(min_volume)
        self.ratio = float(min_absorbed_ratio)
        self.idle_ns = int(max_idle_ms) * 1_000_000
        self.state = np.zeros((2, N_STATE), np.int64)
        self.seen = 0  # records fed so far: the next record's index in the whole tape

    def feed(self, book: TopOfBook) -> pa.Table:
        out = np.empty((len(book) + 2, N_OUT), np.int64)
        m = _absorption_kernel(book.ts, book.sequence, book.action, book.side, book.price, book.size, book.flags,
                               book.bid_px, book.bid_sz, book.ask_px, book.ask_sz, self.seen, self.state,
                               self.min_volume, self.ratio, self.idle_ns, out)
        self.seen += len(book)
        return _zone_table(out[:m])

    def flush(self) -> pa.Table:
        """Zones still standing at the end of the tape, outcome `open` (end = their last trade)."""
        out = np.empty((2, N_OUT), np.int64)
        m = 0
        for z in range(2):
            if self.state[z, Z_ACTIVE]:
                m = _close(z, self.state, int(self.state[z, Z_LAST_TS]), OPEN, self.min_volume, self.ratio, out, m)
        return _zone_table(out[:m])


def absorption_zones(book: TopOfBook, min_volume: int = 50, min_absorbed_ratio: float = 1.0,
                     max_idle_ms: int = 5_000) -> pa.Table:
    """Every absorption zone of a whole mbp-10 tape (see the module docstring for the rule)."""
    detector = AbsorptionDetector(min_volume, min_absorbed_ratio, max_idle_ms)
    return pa.concat_tables([detector.feed(book), detector.flush()])
