"""Iceberg candidates from mbo: executed volume beyond the displayed size through repeated refills at one price.

Two rules, each row labelled `inference` with its rule (parameters: configs/orderflow.yaml `icebergs`):
- `price_level_refill`: at one side and price, a resting order is eaten by fills (its fills reach its displayed
  size before it leaves the book) and within `refill_window_ms` a new order of similar size (within
  `size_tolerance` of the eaten one) is added there; repeated, the chain is a candidate once it has at least
  `min_refills` refills and executed more than the most it ever showed. The level follows one order at a time
  (the first added while it is idle); other orders resting there do not join the chain.
- `order_refill`: one order id whose shown size is topped up by modifies after fills (`min_refills` times) and whose
  fills exceed the most it showed.
Evidence: refills, max displayed, executed, the first event (the chain's first add) and the last fill as (index in
the tape, ts_recv, sequence), and the order ids. Fill ('F') records carry the resting order's id (Databento), and
the book changes only through add/cancel/modify, so fills count execution and cancels remove.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit, types
from numba.typed import Dict

from hdi_core.orderflow import iceberg_kernel as k
from hdi_core.orderflow.book import OrderEvents

LABEL = "inference"
RULES = np.array(["price_level_refill", "order_refill"], dtype=object)
ICEBERG_SCHEMA = pa.schema([
    ("rule", pa.string()), ("label", pa.string()), ("side", pa.string()), ("price", pa.int64()),
    ("refills", pa.int64()), ("max_displayed", pa.int64()), ("executed", pa.int64()), ("first_ts", pa.int64()),
    ("last_ts", pa.int64()), ("first_index", pa.int64()), ("first_sequence", pa.int64()),
    ("last_index", pa.int64()), ("last_sequence", pa.int64()), ("orders", pa.int64()),
    ("order_ids", pa.list_(pa.uint64())),
])


@njit(cache=True, nogil=True)
def _sweep(levels: np.ndarray, n_levels: int, now: int, everything: bool, min_refills: int, out: np.ndarray,
           m: int) -> int:  # pragma: no cover - compiled
    """Close chains whose refill window ended before `now` (or every chain, at the end of the tape)."""
    for j in range(n_levels):
        lv = levels[j]
        if (lv[k.L_STATUS] == k.WAITING and lv[k.L_DEADLINE] < now) or (everything and lv[k.L_STATUS] != k.IDLE):
            m = k.close_chain(lv, min_refills, out, m)
    return m


class IcebergDetector:
    """Incremental icebergs: feed mbo batches in arrival order; each call returns the candidates it closed."""

    def __init__(self, refill_window_ms: int = 100, size_tolerance: float = 0.25, min_refills: int = 3) -> None:
        self.window = int(refill_window_ms) * 1_000_000
        self.tolerance = float(size_tolerance)
        self.min_refills = int(min_refills)
        self.seen = 0
        self._reset()

    def _reset(self) -> None:
        """An empty book (a new session); `seen` keeps counting, so indexes stay those of the whole tape."""
        self.orders = np.zeros((1024, k.N_ORDER), np.int64)
        self.free = np.arange(1023, -1, -1, dtype=np.int64)  # slots to take, popped from the end
        self.levels = np.zeros((256, k.N_LEVEL), np.int64)
        self.members = np.zeros((256, 2), np.int64)  # (chain serial, order id) of chains that refilled
        self.counters = np.array([1024, 0, 0, 0], np.int64)
        self.ids = Dict.empty(types.int64, types.int64)
        self.level_ids = Dict.empty(types.int64, types.int64)

    def _grow(self, status: int) -> None:
        if status == k.GROW_ORDERS:
            cap = len(self.orders)
            self.orders = np.concatenate([self.orders, np.zeros_like(self.orders)])
            self.free = np.concatenate([np.arange(2 * cap - 1, cap - 1, -1, dtype=np.int64), np.zeros(cap, np.int64)])
            self.counters[k.C_FREE] = cap
        elif status == k.GROW_LEVELS:
            self.levels = np.concatenate([self.levels, np.zeros_like(self.levels)])
        elif status == k.GROW_MEMBERS:
            self.members = np.concatenate([self.members, np.zeros_like(self.members)])

    def feed(self, events: OrderEvents) -> pa.Table:
        out = np.zeros((1024, k.N_ROW), np.int64)  # candidates are rare: grown when full
        start, m = 0, 0
        while True:
            status, start, m = k.iceberg_kernel(
                events.ts, events.sequence, events.order_id, events.action, events.side, events.price,
                events.size, start, self.seen, self.orders, self.ids, self.free, self.levels, self.level_ids,
                self.members, self.counters, self.window, self.tolerance, self.min_refills, out, m)
            if status == k.DONE:
                break
            if status == k.GROW_OUT:
                out = np.concatenate([out, np.zeros_like(out)])
            self._grow(status)
        if len(events):
            out = self._room(out, m)
            m = _sweep(self.levels, int(self.counters[k.C_LEVELS]), int(events.ts[-1]), False, self.min_refills,
                       out, m)
        self.seen += len(events)
        return self._table(out[:m])

    def flush(self) -> pa.Table:
        """Every chain and resting order still open at the end of the tape (or session), closed and judged; the
        detector then starts empty."""
        out = self._room(np.zeros((16, k.N_ROW), np.int64), 0)
        m = _sweep(self.levels, int(self.counters[k.C_LEVELS]), 0, True, self.min_refills, out, 0)
        rows = [out[:m]]
        in_use = np.ones(len(self.orders), bool)
        in_use[self.free[: self.counters[k.C_FREE]]] = False
        o = self.orders[in_use]
        hit = o[(o[:, k.O_UPS] >= self.min_refills) & (o[:, k.O_FILLED] > o[:, k.O_MAX])]
        if len(hit):
            extra = np.zeros((len(hit), k.N_ROW), np.int64)
            extra[:, k.R_RULE] = k.RULE_ORDER
            pairs = ((k.R_SIDE, k.O_SIDE), (k.R_PRICE, k.O_PRICE), (k.R_REFILLS, k.O_UPS), (k.R_MAX, k.O_MAX),
                     (k.R_EXEC, k.O_FILLED), (k.R_FIRST, k.O_FIRST), (k.R_FIRST_TS, k.O_FIRST_TS),
                     (k.R_FIRST_SEQ, k.O_FIRST_SEQ), (k.R_LAST, k.O_LAST), (k.R_LAST_TS, k.O_LAST_TS),
                     (k.R_LAST_SEQ, k.O_LAST_SEQ), (k.R_ORDER, k.O_ID))
            for r, f in pairs:
                extra[:, r] = hit[:, f]
            extra[:, k.R_SERIAL] = -1
            extra[:, k.R_ORDERS] = 1
            rows.append(extra)
        table = self._table(np.concatenate(rows))
        self._reset()  # everything open was judged: the next feed starts a new session
        return table

    def _room(self, out: np.ndarray, m: int) -> np.ndarray:
        need = m + int(self.counters[k.C_LEVELS]) + 1
        return out if len(out) >= need else np.concatenate([out[:m], np.zeros((need, k.N_ROW), np.int64)])

    def _table(self, rows: np.ndarray) -> pa.Table:
        rows = rows[np.lexsort((rows[:, k.R_RULE], rows[:, k.R_FIRST]))] if len(rows) else rows
        n_members = int(self.counters[k.C_MEMBERS])
        serial, member = self.members[:n_members, 0], self.members[:n_members, 1]
        order = np.argsort(serial, kind="stable")
        serial, member = serial[order], member[order]
        lists: list[np.ndarray] = []
        for row in rows:  # one list per candidate (a few per session), not per record
            if row[k.R_SERIAL] < 0:
                lists.append(np.array([row[k.R_ORDER]], np.int64))
            else:
                lo, hi = np.searchsorted(serial, row[k.R_SERIAL], "left"), np.searchsorted(serial, row[k.R_SERIAL],
                                                                                          "right")
                lists.append(member[lo:hi])
        self._prune()
        offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int32)
        flat = np.concatenate(lists).view(np.uint64) if lists else np.empty(0, np.uint64)
        side = np.where(rows[:, k.R_SIDE] == 66, "B", "A").astype(object)
        cols = [pa.array(RULES[rows[:, k.R_RULE]], pa.string()), pa.array([LABEL] * len(rows), pa.string()),
                pa.array(side, pa.string()),
                *(pa.array(rows[:, c]) for c in (k.R_PRICE, k.R_REFILLS, k.R_MAX, k.R_EXEC, k.R_FIRST_TS,
                                                 k.R_LAST_TS, k.R_FIRST, k.R_FIRST_SEQ, k.R_LAST, k.R_LAST_SEQ,
                                                 k.R_ORDERS)),
                pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.uint64()))]
        return pa.Table.from_arrays(cols, schema=ICEBERG_SCHEMA)

    def _prune(self) -> None:
        """Drop the evidence of chains no longer open (closed ones were written out above or never qualified)."""
        n = int(self.counters[k.C_MEMBERS])
        n_levels = int(self.counters[k.C_LEVELS])
        open_serials = self.levels[:n_levels][self.levels[:n_levels, k.L_STATUS] != k.IDLE, k.L_SERIAL]
        keep = np.isin(self.members[:n, 0], open_serials)
        kept = self.members[:n][keep]
        self.members[: len(kept)] = kept
        self.counters[k.C_MEMBERS] = len(kept)


def iceberg_candidates(events: OrderEvents, refill_window_ms: int = 100, size_tolerance: float = 0.25,
                       min_refills: int = 3) -> pa.Table:
    """Every iceberg candidate of a whole mbo tape (see the module docstring for the rules)."""
    detector = IcebergDetector(refill_window_ms, size_tolerance, min_refills)
    table = pa.concat_tables([detector.feed(events), detector.flush()])
    return table.take(np.lexsort((table["rule"].to_numpy(zero_copy_only=False),
                                  table["first_index"].to_numpy()))) if table.num_rows else table
