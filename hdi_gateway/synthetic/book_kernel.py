"""The numba kernel behind the synthetic order book: one product's session of MBO events around its trades.

One pass over the session's trades (all of the product's contracts, in trade order). Before each trade, a few
background events (adds, cancels, size-down modifies near the touch), then the set-up the trade needs (orders
through the trade price cancelled, enough resting size at the trade price, a quote on the other side); then the
trade's packet: 'T' (aggressor side), one 'F' per resting order filled in FIFO order, one 'C' per fill (Databento:
trades and fills do not change the book, the cancels that follow them do). Each price level is a doubly linked
FIFO list of order slots on a per-contract price grid.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BID, ASK = 0, 1
A_ADD, A_CANCEL, A_MODIFY, A_FILL, A_TRADE, A_CLEAR = ord("A"), ord("C"), ord("M"), ord("F"), ord("T"), ord("R")
S_BID, S_ASK, S_NONE = ord("B"), ord("A"), ord("N")
F_LAST, F_SNAPSHOT, F_BAD_TS_RECV = 128, 32, 8
SNAPSHOT_LEVELS = 10  # levels a side of every contract's opening book
NOISE_MAX = 5  # background events before a trade: 1..NOISE_MAX
NEAR_LEVELS = 10  # background adds land within this many ticks of the touch
QUOTE_GAP = 1  # ticks: the side opposite a trade is quoted at least this close to the trade price
INSIDE_ODDS = 3  # one background add in INSIDE_ODDS improves a touch when the spread is wider than a tick
UNDEF_PRICE = np.iinfo(np.int64).max


@njit(inline="always")
def _next(state: np.ndarray) -> np.uint64:  # pragma: no cover - compiled
    """splitmix64: a fast seeded stream, the same on every machine."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _below(state: np.ndarray, n: int) -> int:  # pragma: no cover - compiled
    return int(_next(state) % np.uint64(n))


@njit(cache=True, nogil=True)
def _rescan(best: np.ndarray, lsize: np.ndarray, off: np.ndarray, total: int, k: int,
            side: int) -> None:  # pragma: no cover - compiled
    """The best level of (contract k, side) after its best level emptied: scan towards worse prices."""
    lvl = best[2 * k + side]
    if side == BID:
        while lvl >= off[k] and lsize[lvl] == 0:
            lvl -= 1
        best[2 * k + side] = lvl if lvl >= off[k] else -1
    else:
        while lvl < off[k + 1] and lsize[total + lvl] == 0:
            lvl += 1
        best[2 * k + side] = lvl if lvl < off[k + 1] else -1


@njit(cache=True, nogil=True)
def _link(slot: int, k: int, side: int, lvl: int, qty: int, head: np.ndarray, tail: np.ndarray,
          nxt: np.ndarray, prv: np.ndarray, osize: np.ndarray, olvl: np.ndarray, lsize: np.ndarray,
          lcount: np.ndarray, best: np.ndarray, total: int) -> None:  # pragma: no cover - compiled
    g = side * total + lvl
    osize[slot] = qty
    olvl[slot] = g
    nxt[slot] = -1
    prv[slot] = tail[g]
    if tail[g] >= 0:
        nxt[tail[g]] = slot
    else:
        head[g] = slot
    tail[g] = slot
    lsize[g] += qty
    lcount[g] += 1
    b = best[2 * k + side]
    if b < 0 or (side == BID and lvl > b) or (side == ASK and lvl < b):
        best[2 * k + side] = lvl


@njit(cache=True, nogil=True)
def _reduce(slot: int, k: int, qty: int, head: np.ndarray, tail: np.ndarray, nxt: np.ndarray,
            prv: np.ndarray, osize: np.ndarray, olvl: np.ndarray, lsize: np.ndarray, lcount: np.ndarray,
            best: np.ndarray, off: np.ndarray, total: int) -> None:  # pragma: no cover - compiled
    """Take qty off an order (a cancel, or the cancel after a fill); unlink it at zero."""
    g = olvl[slot]
    osize[slot] -= qty
    lsize[g] -= qty
    if osize[slot] > 0:
        return
    if prv[slot] >= 0:
        nxt[prv[slot]] = nxt[slot]
    else:
        head[g] = nxt[slot]
    if nxt[slot] >= 0:
        prv[nxt[slot]] = prv[slot]
    else:
        tail[g] = prv[slot]
    lcount[g] -= 1
    olvl[slot] = -1
    side = g // total
    if lsize[g] == 0 and best[2 * k + side] == g - side * total:
        _rescan(best, lsize, off, total, k, side)


@njit(cache=True, nogil=True)
def generate_book(ts_event: np.ndarray, ts_recv: np.ndarray, price: np.ndarray, size: np.ndarray,
                  inst: np.ndarray, aggressor: np.ndarray, ts_in_delta: np.ndarray, sequence: np.ndarray,
                  base: np.ndarray, off: np.ndarray, tick: int, open_ns: int, seed: np.uint64,
                  cap: int, out_i8: np.ndarray, out_u8: np.ndarray, out_u4: np.ndarray, out_u1: np.ndarray,
                  bbo_px: np.ndarray, bbo_sz: np.ndarray, bbo_ct: np.ndarray) -> int:  # pragma: no cover
    """Fill the MBO columns (out_i8: ts_event, ts_recv, price; out_u8: slot (order id offset, -1: none);
    out_u4: size, sequence, contract index, ts_in_delta; out_u1: flags, action, side) and per trade the BBO
    just before it (bbo_*: [trade, bid/ask]). Returns the record count; more than cap means: call again
    with a larger cap (nothing past cap was written)."""
    n_inst = len(off) - 1
    total = off[n_inst]
    state = np.empty(1, np.uint64)
    state[0] = seed
    head = np.full(2 * total, -1, np.int64)
    tail = np.full(2 * total, -1, np.int64)
    lsize = np.zeros(2 * total, np.int64)
    lcount = np.zeros(2 * total, np.int64)
    best = np.full(2 * n_inst, -1, np.int64)
    nxt = np.empty(cap, np.int64)
    prv = np.empty(cap, np.int64)
    osize = np.zeros(cap, np.int64)
    olvl = np.full(cap, -1, np.int64)
    filled = np.empty(cap, np.int64)
    fills = np.empty(cap, np.int64)
    n = 0
    slots = 0

    # the opening book: per contract a clear then SNAPSHOT_LEVELS levels a side around its first trade
    first = np.full(n_inst, -1, np.int64)
    for i in range(len(price)):
        if first[inst[i]] < 0:
            first[inst[i]] = i
    for k in range(n_inst):
        if first[k] < 0:
            continue
        if n < cap:
            out_i8[n, 0], out_i8[n, 1], out_i8[n, 2] = open_ns, open_ns, UNDEF_PRICE
            out_u8[n] = -1
            out_u4[n, 0], out_u4[n, 1], out_u4[n, 2], out_u4[n, 3] = 0, 0, k, 0
            out_u1[n, 0], out_u1[n, 1], out_u1[n, 2] = F_SNAPSHOT | F_BAD_TS_RECV, A_CLEAR, S_NONE
        n += 1
        mid = off[k] + (price[first[k]] - base[k]) // tick
        for d in range(1, SNAPSHOT_LEVELS + 1):
            for side in (BID, ASK):
                lvl = mid - d if side == BID else mid + d
                for _ in range(1 + _below(state, 3)):
                    qty = 1 + _below(state, 20)
                    if n < cap and slots < cap:
                        _link(slots, k, side, lvl, qty, head, tail, nxt, prv, osize, olvl, lsize, lcount,
                              best, total)
                        out_i8[n, 0], out_i8[n, 1], out_i8[n, 2] = open_ns, open_ns, base[k] + (lvl - off[k]) * tick
                        out_u8[n] = slots
                        out_u4[n, 0], out_u4[n, 1], out_u4[n, 2], out_u4[n, 3] = qty, 0, k, 0
                        out_u1[n, 0], out_u1[n, 1] = F_SNAPSHOT | F_BAD_TS_RECV, A_ADD
                        out_u1[n, 2] = S_BID if side == BID else S_ASK
                    slots += 1
                    n += 1
        if n <= cap:
            out_u1[n - 1, 0] |= F_LAST

    te_prev, tr_prev, seq_prev = open_ns, open_ns, 0
    for i in range(len(price)):
        if n >= cap or slots >= cap:
            return cap + 1 + (len(price) - i) * 16
        k = inst[i]
        lp = off[k] + (price[i] - base[k]) // tick
        buy = aggressor[i] == S_BID
        passive = ASK if buy else BID
        g0 = n
        # background: adds, cancels and size-down modifies near the touch
        for _ in range(1 + _below(state, NOISE_MAX)):
            r = _below(state, 100)
            side = _below(state, 2)
            if r < 55:
                bb, ba = best[2 * k + BID], best[2 * k + ASK]
                inside = bb >= 0 and ba >= 0 and ba - bb > 1 and _below(state, INSIDE_ODDS) == 0
                if side == BID:
                    ref = bb if bb >= 0 else (ba - 1 if ba >= 0 else lp - 1)
                    lvl = bb + 1 if inside else ref - _below(state, NEAR_LEVELS)
                else:
                    ref = ba if ba >= 0 else (bb + 1 if bb >= 0 else lp + 1)
                    lvl = ba - 1 if inside else ref + _below(state, NEAR_LEVELS)
                if lvl < off[k] or lvl >= off[k + 1]:
                    continue
                qty = 1 + _below(state, 10) + (_below(state, 50) if _below(state, 8) == 0 else 0)
                if n < cap and slots < cap:
                    _link(slots, k, side, lvl, qty, head, tail, nxt, prv, osize, olvl, lsize, lcount, best, total)
                    out_i8[n, 2] = base[k] + (lvl - off[k]) * tick
                    out_u8[n] = slots
                    out_u4[n, 0] = qty
                    out_u1[n, 1], out_u1[n, 2] = A_ADD, S_BID if side == BID else S_ASK
                slots += 1
                n += 1
                continue
            lvl = best[2 * k + side]
            if lvl < 0:
                continue
            if r >= 93:  # the newest order at the touch moves one tick away: a new price, so the back of the queue
                slot = tail[side * total + lvl]
                to = lvl - 1 if side == BID else lvl + 1
                if to < off[k] or to >= off[k + 1]:
                    continue
                qty = osize[slot]
                if n < cap:
                    out_i8[n, 2] = base[k] + (to - off[k]) * tick
                    out_u8[n] = slot
                    out_u4[n, 0] = qty
                    out_u1[n, 1], out_u1[n, 2] = A_MODIFY, S_BID if side == BID else S_ASK
                n += 1
                _reduce(slot, k, qty, head, tail, nxt, prv, osize, olvl, lsize, lcount, best, off, total)
                _link(slot, k, side, to, qty, head, tail, nxt, prv, osize, olvl, lsize, lcount, best, total)
                continue
            if r < 85:  # cancel the newest order a few non-empty levels from the touch
                for _ in range(_below(state, 4)):
                    step = lvl
                    while True:
                        step = step - 1 if side == BID else step + 1
                        if step < off[k] or step >= off[k + 1] or lsize[side * total + step] > 0:
                            break
                    if step < off[k] or step >= off[k + 1]:
                        break
                    lvl = step
                slot = tail[side * total + lvl]
                qty = osize[slot]
                action = A_CANCEL
            else:  # an order at the touch reduces its size: it keeps its priority (85 <= r < 93)
                slot = head[side * total + lvl]
                if osize[slot] < 2:
                    continue
                qty = osize[slot] - 1 - _below(state, osize[slot] - 1)  # taken off, new size >= 1
                action = A_MODIFY
            if n < cap:
                out_i8[n, 2] = base[k] + (lvl - off[k]) * tick
                out_u8[n] = slot
                out_u4[n, 0] = qty if action == A_CANCEL else osize[slot] - qty
                out_u1[n, 1], out_u1[n, 2] = action, S_BID if side == BID else S_ASK
            n += 1
            _reduce(slot, k, qty, head, tail, nxt, prv, osize, olvl, lsize, lcount, best, off, total)
        # set-up: nothing at or through the trade price on the other side, nothing better on the passive side
        for side in (BID, ASK):
            while True:
                lvl = best[2 * k + side]
                if lvl < 0:
                    break
                if side == BID and not ((buy and lvl >= lp) or (not buy and lvl > lp)):
                    break
                if side == ASK and not ((not buy and lvl <= lp) or (buy and lvl < lp)):
                    break
                slot = tail[side * total + lvl]
                if n < cap:
                    out_i8[n, 2] = base[k] + (lvl - off[k]) * tick
                    out_u8[n] = slot
                    out_u4[n, 0] = osize[slot]
                    out_u1[n, 1], out_u1[n, 2] = A_CANCEL, S_BID if side == BID else S_ASK
                n += 1
                _reduce(slot, k, osize[slot], head, tail, nxt, prv, osize, olvl, lsize, lcount, best, off, total)
        g = passive * total + lp
        if lsize[g] < size[i]:
            qty = size[i] - lsize[g] + _below(state, 5)
            if n < cap and slots < cap:
                _link(slots, k, passive, lp, qty, head, tail, nxt, prv, osize, olvl, lsize, lcount, best, total)
                out_i8[n, 2] = price[i]
                out_u8[n] = slots
                out_u4[n, 0] = qty
                out_u1[n, 1], out_u1[n, 2] = A_ADD, S_ASK if buy else S_BID
            slots += 1
            n += 1
        other = BID if buy else ASK
        ob = best[2 * k + other]
        if ob < 0 or (buy and ob < lp - QUOTE_GAP) or (not buy and ob > lp + QUOTE_GAP):
            lvl = lp - 1 if buy else lp + 1
            qty = 1 + _below(state, 10)
            if n < cap and slots < cap:
                _link(slots, k, other, lvl, qty, head, tail, nxt, prv, osize, olvl, lsize, lcount, best, total)
                out_i8[n, 2] = base[k] + (lvl - off[k]) * tick
                out_u8[n] = slots
                out_u4[n, 0] = qty
                out_u1[n, 1], out_u1[n, 2] = A_ADD, S_BID if buy else S_ASK
            slots += 1
            n += 1
        # the gap's events: each its own event (F_LAST) at times between the previous trade and this one when
        # the venue's sequence numbers leave room between the two trades, else the first records of the trade's
        m = n - g0
        own = int(sequence[i]) - seq_prev - 1 >= m
        if n <= cap:
            for j in range(m):
                r = g0 + j
                if own:
                    out_i8[r, 0] = te_prev + (ts_event[i] - te_prev) * (j + 1) // (m + 1)
                    out_i8[r, 1] = tr_prev + (ts_recv[i] - tr_prev) * (j + 1) // (m + 1)
                    out_u4[r, 1] = seq_prev + j + 1
                    out_u1[r, 0] = F_LAST
                else:
                    out_i8[r, 0], out_i8[r, 1], out_u4[r, 1] = ts_event[i], ts_recv[i], sequence[i]
                    out_u1[r, 0] = 0
                out_u4[r, 2] = k
                out_u4[r, 3] = ts_in_delta[i]
        # the BBO just before the trade (tbbo)
        for side in (BID, ASK):
            lvl = best[2 * k + side]
            if lvl >= 0:
                gg = side * total + lvl
                bbo_px[i, side] = base[k] + (lvl - off[k]) * tick
                bbo_sz[i, side] = lsize[gg]
                bbo_ct[i, side] = lcount[gg]
            else:
                bbo_px[i, side] = UNDEF_PRICE
                bbo_sz[i, side] = 0
                bbo_ct[i, side] = 0
        # the trade's packet: T, the fills in priority order, then the cancels they imply
        t0 = n
        if n < cap:
            out_i8[n, 2] = price[i]
            out_u8[n] = -1
            out_u4[n, 0] = size[i]
            out_u1[n, 0], out_u1[n, 1], out_u1[n, 2] = 0, A_TRADE, aggressor[i]
        n += 1
        left = int(size[i])
        nf = 0
        slot = head[g]
        while left > 0 and slot >= 0:
            q = min(left, osize[slot])
            filled[nf], fills[nf] = slot, q
            nf += 1
            left -= q
            slot = nxt[slot]
        for action in (A_FILL, A_CANCEL):
            for f in range(nf):
                if n < cap:
                    out_i8[n, 2] = price[i]
                    out_u8[n] = filled[f]
                    out_u4[n, 0] = fills[f]
                    out_u1[n, 0], out_u1[n, 1], out_u1[n, 2] = 0, action, S_ASK if buy else S_BID
                n += 1
        for f in range(nf):
            _reduce(filled[f], k, fills[f], head, tail, nxt, prv, osize, olvl, lsize, lcount, best, off, total)
        if n <= cap:
            for r in range(t0, n):
                out_i8[r, 0], out_i8[r, 1] = ts_event[i], ts_recv[i]
                out_u4[r, 1], out_u4[r, 2], out_u4[r, 3] = sequence[i], k, ts_in_delta[i]
            out_u1[n - 1, 0] = F_LAST
        te_prev, tr_prev, seq_prev = ts_event[i], ts_recv[i], int(sequence[i])
    return n
