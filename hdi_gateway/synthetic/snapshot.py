"""An MBO snapshot of the book at any row of an MBO stream, as Databento sends one (live `snapshot=True`, or an
intraday replay that starts mid-session): per instrument a clear ('R') then one add per resting order, level by
level from the best price, in priority order inside a level; every record F_SNAPSHOT | F_BAD_TS_RECV with
ts_recv the snapshot time, the instrument's last record F_LAST. Replaying the snapshot rebuilds the same book,
queue positions included."""

from __future__ import annotations

import numpy as np
from numba import njit

from hdi_gateway.synthetic.book import MBO_DTYPE, RTYPE_MBO
from hdi_gateway.synthetic.book_kernel import F_BAD_TS_RECV, F_LAST, F_SNAPSHOT
from hdi_gateway.synthetic.depth import order_index
from hdi_gateway.synthetic.products import PUBLISHER_ID

UNDEF_PRICE = np.iinfo(np.int64).max


@njit(cache=True, nogil=True)
def _resting(inst: np.ndarray, oidx: np.ndarray, price: np.ndarray, size: np.ndarray, action: np.ndarray,
             n_orders: int, n_inst: int, upto: int) -> tuple:  # pragma: no cover - compiled
    """Per order (dense index): its size, price and priority row (the add, or the last modify that lost its
    place; -1: not resting) after rows [0, upto)."""
    o_size = np.zeros(n_orders, np.int64)
    o_price = np.zeros(n_orders, np.int64)
    o_prio = np.full(n_orders, -1, np.int64)
    o_epoch = np.zeros(n_orders, np.int64)
    epoch = np.zeros(n_inst, np.int64)
    for r in range(upto):
        a, k, o = action[r], inst[r], oidx[r]
        if a == 82:  # R
            epoch[k] += 1
        elif a == 65:  # A
            o_size[o], o_price[o], o_prio[o], o_epoch[o] = size[r], price[r], r, epoch[k]
        elif (a == 67 or a == 77) and o_prio[o] >= 0 and o_epoch[o] == epoch[k]:
            if a == 67:
                o_size[o] -= size[r]
                if o_size[o] <= 0:
                    o_prio[o] = -1
            else:
                if price[r] != o_price[o] or size[r] > o_size[o]:
                    o_prio[o] = r  # a new price or a larger size: the back of the queue
                o_price[o], o_size[o] = price[r], size[r]
    for o in range(n_orders):
        if o_prio[o] >= 0 and o_epoch[o] != epoch[inst[o_prio[o]]]:
            o_prio[o] = -1  # cleared since
    return o_size, o_prio


def mbo_snapshot(mbo: np.ndarray, upto: int, ts_recv: int, instrument_ids: np.ndarray | None = None) -> np.ndarray:
    """The snapshot (MBO_DTYPE records) of the book after rows [0, upto) of `mbo`, stamped `ts_recv`; only
    `instrument_ids` when given (every instrument seen so far otherwise)."""
    head = mbo[:upto]
    ids = np.unique(head["instrument_id"])
    if instrument_ids is not None:
        ids = ids[np.isin(ids, instrument_ids)]
    if not len(ids) or upto <= 0:
        return np.zeros(0, dtype=MBO_DTYPE)
    all_ids = np.unique(head["instrument_id"])
    inst = np.searchsorted(all_ids, head["instrument_id"]).astype(np.int64)
    oidx, n_orders = order_index(head["order_id"])
    o_size, o_prio = _resting(inst, oidx, head["price"], head["size"].astype(np.int64), head["action"].view(np.uint8),
                              n_orders, len(all_ids), upto)
    live = np.flatnonzero(o_prio >= 0)
    rows = o_prio[live]
    live_iid = head["instrument_id"][rows]
    keep = np.isin(live_iid, ids)
    live, rows, live_iid = live[keep], rows[keep], live_iid[keep]
    side = head["side"][rows]
    bid = side == b"B"
    price = head["price"][rows]
    # instrument, bids before asks, best price first, then priority
    order = np.lexsort((rows, np.where(bid, -price, price), ~bid, live_iid))
    rows, live = rows[order], live[order]
    clears = np.zeros(len(ids), dtype=MBO_DTYPE)
    clears["instrument_id"] = ids
    clears["action"], clears["side"], clears["price"] = b"R", b"N", UNDEF_PRICE
    clears["ts_event"] = ts_recv
    adds = np.zeros(len(rows), dtype=MBO_DTYPE)
    for field in ("instrument_id", "ts_event", "order_id", "price", "side", "sequence"):  # of its priority event
        adds[field] = head[field][rows]
    adds["action"] = b"A"
    adds["size"] = o_size[live]
    out = np.concatenate([clears, adds])
    out = out[np.argsort(out["instrument_id"], kind="stable")]  # each instrument: its clear, then its adds
    out["length"] = MBO_DTYPE.itemsize // 4
    out["rtype"] = RTYPE_MBO
    out["publisher_id"] = PUBLISHER_ID
    out["ts_recv"] = ts_recv
    out["flags"] = F_SNAPSHOT | F_BAD_TS_RECV
    last = np.ones(len(out), dtype=bool)
    last[:-1] = out["instrument_id"][1:] != out["instrument_id"][:-1]
    out["flags"][last] |= F_LAST
    return out
