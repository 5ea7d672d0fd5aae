"""The compiled pass behind icebergs.py: order tracking and per-level refill chains over mbo records.

All state lives in NumPy arrays and two typed dicts owned by the caller, so a tape fed in any split of batches
goes through exactly the same steps. The kernel stops before a record it has no room for and says which array
to grow (status), and the caller resumes there.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hdi_core.orderflow.book import ADD, CANCEL, CLEAR, FILL, MODIFY

# order slot fields
(O_ID, O_SIDE, O_PRICE, O_SHOWN, O_REMAIN, O_SINCE, O_FILLED, O_MAX, O_UPS, O_FIRST, O_FIRST_TS, O_FIRST_SEQ,
 O_LAST, O_LAST_TS, O_LAST_SEQ, O_PEND, O_LEVEL) = range(17)
N_ORDER = 17  # O_PEND: fills not yet followed by the cancel/modify that shows them; O_LEVEL: its level's slot
# price-level slot fields (one per side and price ever seen)
(L_SIDE, L_PRICE, L_STATUS, L_MEMBER, L_DEADLINE, L_EXHAUSTED, L_REFILLS, L_MAX, L_EXEC, L_FIRST, L_FIRST_TS,
 L_FIRST_SEQ, L_LAST, L_LAST_TS, L_LAST_SEQ, L_SERIAL, L_FIRST_ORDER, L_ORDERS) = range(18)
N_LEVEL = 18
IDLE, LIVE, WAITING = 0, 1, 2
# counters
C_FREE, C_LEVELS, C_MEMBERS, C_SERIAL = range(4)
# output rows
RULE_LEVEL, RULE_ORDER = 0, 1
(R_RULE, R_SIDE, R_PRICE, R_REFILLS, R_MAX, R_EXEC, R_FIRST, R_FIRST_TS, R_FIRST_SEQ, R_LAST, R_LAST_TS,
 R_LAST_SEQ, R_SERIAL, R_ORDER, R_ORDERS) = range(15)
N_ROW = 15
DONE, GROW_ORDERS, GROW_LEVELS, GROW_MEMBERS, GROW_OUT = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True, inline="always")
def _slot(table: dict, key: int) -> int:  # pragma: no cover - compiled
    """The slot a typed dict holds for `key`, -1 when none (its get() is Optional-typed, unusable as an index)."""
    if key in table:
        return table[key]
    return -1


@njit(cache=True, nogil=True)
def close_chain(lv: np.ndarray, min_refills: int, out: np.ndarray, m: int) -> int:  # pragma: no cover
    """End the level's chain; write it out when it refilled often enough and executed more than it showed."""
    status = lv[L_STATUS]
    lv[L_STATUS] = IDLE
    if status == IDLE or lv[L_REFILLS] < min_refills or lv[L_EXEC] <= lv[L_MAX]:
        return m
    out[m, R_RULE] = RULE_LEVEL
    out[m, R_SIDE] = lv[L_SIDE]
    out[m, R_PRICE] = lv[L_PRICE]
    out[m, R_REFILLS] = lv[L_REFILLS]
    out[m, R_MAX] = lv[L_MAX]
    out[m, R_EXEC] = lv[L_EXEC]
    out[m, R_FIRST] = lv[L_FIRST]
    out[m, R_FIRST_TS] = lv[L_FIRST_TS]
    out[m, R_FIRST_SEQ] = lv[L_FIRST_SEQ]
    out[m, R_LAST] = lv[L_LAST]
    out[m, R_LAST_TS] = lv[L_LAST_TS]
    out[m, R_LAST_SEQ] = lv[L_LAST_SEQ]
    out[m, R_SERIAL] = lv[L_SERIAL]
    out[m, R_ORDER] = lv[L_FIRST_ORDER]
    out[m, R_ORDERS] = lv[L_ORDERS]
    return m + 1


@njit(cache=True, nogil=True)
def _start_chain(lv: np.ndarray, o: np.ndarray, counters: np.ndarray) -> None:  # pragma: no cover
    lv[L_STATUS] = LIVE
    lv[L_MEMBER] = o[O_ID]
    lv[L_REFILLS] = 0
    lv[L_MAX] = o[O_SHOWN]
    lv[L_EXEC] = 0
    lv[L_FIRST] = o[O_FIRST]
    lv[L_FIRST_TS] = o[O_FIRST_TS]
    lv[L_FIRST_SEQ] = o[O_FIRST_SEQ]
    lv[L_LAST] = o[O_FIRST]
    lv[L_LAST_TS] = o[O_FIRST_TS]
    lv[L_LAST_SEQ] = o[O_FIRST_SEQ]
    lv[L_SERIAL] = counters[C_SERIAL]
    counters[C_SERIAL] += 1
    lv[L_FIRST_ORDER] = o[O_ID]
    lv[L_ORDERS] = 1


@njit(cache=True, nogil=True)
def _remove_order(slot: int, orders: np.ndarray, ids: dict, free: np.ndarray, counters: np.ndarray, levels: np.ndarray,
                  level_ids: dict, t: int, window: int, min_refills: int, out: np.ndarray,
                  m: int) -> int:  # pragma: no cover - compiled
    """An order leaves the book: a chain member eaten by fills waits for its refill, any other member ends it."""
    o = orders[slot]
    lv = levels[o[O_LEVEL]]  # every order came in through _add_order, which set its level
    if lv[L_STATUS] == LIVE and lv[L_MEMBER] == o[O_ID]:
        if o[O_SINCE] >= o[O_SHOWN] and o[O_SHOWN] > 0:
            lv[L_STATUS] = WAITING
            lv[L_DEADLINE] = t + window
            lv[L_EXHAUSTED] = o[O_SHOWN]
        else:
            m = close_chain(lv, min_refills, out, m)
    if o[O_UPS] >= min_refills and o[O_FILLED] > o[O_MAX]:
        out[m, R_RULE] = RULE_ORDER
        out[m, R_SIDE] = o[O_SIDE]
        out[m, R_PRICE] = o[O_PRICE]
        out[m, R_REFILLS] = o[O_UPS]
        out[m, R_MAX] = o[O_MAX]
        out[m, R_EXEC] = o[O_FILLED]
        out[m, R_FIRST] = o[O_FIRST]
        out[m, R_FIRST_TS] = o[O_FIRST_TS]
        out[m, R_FIRST_SEQ] = o[O_FIRST_SEQ]
        out[m, R_LAST] = o[O_LAST]
        out[m, R_LAST_TS] = o[O_LAST_TS]
        out[m, R_LAST_SEQ] = o[O_LAST_SEQ]
        out[m, R_SERIAL] = -1
        out[m, R_ORDER] = o[O_ID]
        out[m, R_ORDERS] = 1
        m += 1
    del ids[o[O_ID]]
    free[counters[C_FREE]] = slot
    counters[C_FREE] += 1
    return m


@njit(cache=True, nogil=True)
def _add_order(i: int, idx: int, ts: np.ndarray, seq: np.ndarray, oid: np.ndarray, side: np.ndarray,
               price: np.ndarray, size: np.ndarray, orders: np.ndarray, ids: dict, free: np.ndarray,
               levels: np.ndarray, level_ids: dict, members: np.ndarray, counters: np.ndarray, tolerance: float,
               min_refills: int, out: np.ndarray, m: int) -> int:  # pragma: no cover - compiled
    """A new resting order; at a level waiting for a refill, one of similar size in time continues the chain."""
    t = ts[i]
    if size[i] == 0:
        return m
    counters[C_FREE] -= 1
    slot = free[counters[C_FREE]]
    ids[oid[i]] = slot
    o = orders[slot]
    o[O_ID] = oid[i]
    o[O_SIDE] = side[i]
    o[O_PRICE] = price[i]
    o[O_SHOWN] = size[i]
    o[O_REMAIN] = size[i]
    o[O_SINCE] = 0
    o[O_FILLED] = 0
    o[O_MAX] = size[i]
    o[O_UPS] = 0
    o[O_FIRST] = idx
    o[O_FIRST_TS] = t
    o[O_FIRST_SEQ] = seq[i]
    o[O_LAST] = idx
    o[O_LAST_TS] = t
    o[O_LAST_SEQ] = seq[i]
    o[O_PEND] = 0
    key = price[i] * 2 + (1 if side[i] == 66 else 0)
    at = _slot(level_ids, key)
    if at < 0:
        at = counters[C_LEVELS]
        level_ids[key] = at
        counters[C_LEVELS] += 1
        levels[at, :] = 0
        levels[at, L_SIDE] = side[i]
        levels[at, L_PRICE] = price[i]
    o[O_LEVEL] = at
    lv = levels[at]
    if lv[L_STATUS] == WAITING:
        similar = abs(size[i] - lv[L_EXHAUSTED]) <= tolerance * lv[L_EXHAUSTED]
        if t <= lv[L_DEADLINE] and similar:
            lv[L_STATUS] = LIVE
            if lv[L_REFILLS] == 0:  # the chain's first order becomes evidence once it refills
                members[counters[C_MEMBERS], 0] = lv[L_SERIAL]
                members[counters[C_MEMBERS], 1] = lv[L_FIRST_ORDER]
                counters[C_MEMBERS] += 1
            members[counters[C_MEMBERS], 0] = lv[L_SERIAL]
            members[counters[C_MEMBERS], 1] = oid[i]
            counters[C_MEMBERS] += 1
            lv[L_REFILLS] += 1
            lv[L_ORDERS] += 1
            lv[L_MEMBER] = oid[i]
            if size[i] > lv[L_MAX]:
                lv[L_MAX] = size[i]
        else:
            m = close_chain(lv, min_refills, out, m)
            _start_chain(lv, o, counters)
    elif lv[L_STATUS] == IDLE:
        _start_chain(lv, o, counters)
    return m


@njit(cache=True, nogil=True)
def iceberg_kernel(ts: np.ndarray, seq: np.ndarray, oid: np.ndarray, action: np.ndarray, side: np.ndarray,
                   price: np.ndarray, size: np.ndarray, start: int, offset: int, orders: np.ndarray, ids: dict,
                   free: np.ndarray, levels: np.ndarray, level_ids: dict, members: np.ndarray,
                   counters: np.ndarray, window: int, tolerance: float, min_refills: int,
                   out: np.ndarray, m: int) -> tuple[int, int, int]:  # pragma: no cover - compiled
    """Records start.. in arrival order; returns (status, next record, rows written)."""
    for i in range(start, len(ts)):
        a = action[i]
        if counters[C_FREE] < 1:
            return GROW_ORDERS, i, m
        if counters[C_LEVELS] + 1 >= len(levels):
            return GROW_LEVELS, i, m
        if counters[C_MEMBERS] + 2 >= len(members):
            return GROW_MEMBERS, i, m
        if m + 2 + (counters[C_LEVELS] + len(ids) if a == CLEAR else 0) >= len(out):
            return GROW_OUT, i, m
        t = ts[i]
        idx = offset + i
        slot = _slot(ids, oid[i]) if a != CLEAR else -1
        if a == ADD or (a == MODIFY and slot < 0):
            if slot < 0:  # not a duplicate add (the book would already hold it)
                m = _add_order(i, idx, ts, seq, oid, side, price, size, orders, ids, free, levels, level_ids,
                               members, counters, tolerance, min_refills, out, m)
        elif a == FILL or a == CANCEL or a == MODIFY:
            if slot < 0:
                continue  # an order from before the tape began: nothing known about it
            o = orders[slot]
            if a == FILL:
                o[O_SINCE] += size[i]
                o[O_FILLED] += size[i]
                o[O_PEND] += size[i]
                o[O_LAST] = idx
                o[O_LAST_TS] = t
                o[O_LAST_SEQ] = seq[i]
                lv = levels[o[O_LEVEL]]
                if lv[L_STATUS] == LIVE and lv[L_MEMBER] == oid[i]:
                    lv[L_EXEC] += size[i]
                    lv[L_LAST] = idx
                    lv[L_LAST_TS] = t
                    lv[L_LAST_SEQ] = seq[i]
            elif a == CANCEL:
                o[O_REMAIN] -= size[i]
                o[O_PEND] = 0
                if o[O_REMAIN] <= 0:
                    m = _remove_order(slot, orders, ids, free, counters, levels, level_ids, t, window,
                                      min_refills, out, m)
            elif price[i] != o[O_PRICE] or side[i] != o[O_SIDE] or size[i] == 0:
                # moved or emptied: it leaves its level (not eaten there), and may come back as a new order
                o[O_SINCE] = 0
                m = _remove_order(slot, orders, ids, free, counters, levels, level_ids, t, window, min_refills,
                                  out, m)
                m = _add_order(i, idx, ts, seq, oid, side, price, size, orders, ids, free, levels, level_ids,
                               members, counters, tolerance, min_refills, out, m)
            else:
                if size[i] > o[O_REMAIN] - o[O_PEND] and o[O_SINCE] > 0:  # topped up after fills: a refill
                    o[O_UPS] += 1
                    o[O_SHOWN] = size[i]
                    o[O_SINCE] = 0
                    if size[i] > o[O_MAX]:
                        o[O_MAX] = size[i]
                o[O_REMAIN] = size[i]
                o[O_PEND] = 0
        elif a == CLEAR:
            for j in range(counters[C_LEVELS]):
                m = close_chain(levels[j], min_refills, out, m)
            for key in list(ids.keys()):
                free[counters[C_FREE]] = ids[key]
                counters[C_FREE] += 1
            ids.clear()
    return DONE, len(ts), m
