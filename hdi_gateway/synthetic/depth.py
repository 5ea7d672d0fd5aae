"""Market by price (mbp-1, mbp-10) derived from MBO records, as Databento defines them.

One mbp-N record per MBO event that changes the book within its top N levels, plus every trade ('T') and
clear ('R'): action, side, price, size, flags and times of the MBO record, `depth` the level it changed (the
count of non-empty levels better than its price on its side, after the event; for a trade, the level of the
trade price on the resting side), and the top N levels of both sides AFTER the event (trades and fills do not
change the book, so a trade's record holds the book just before it). Fills ('F') have no mbp record. F_LAST
stays on the last record kept of each event. Works on any MBO records with ids, prices and sizes consistent
(the synthetic market's, or a capture's).
"""

from __future__ import annotations

import threading

import databento_dbn as dbn
import numpy as np
from numba import njit

from hdi_core.errors import HdiError

MBP_DTYPES = {1: np.dtype(dbn.v3.MBP1Msg._dtypes), 10: np.dtype(dbn.v3.MBP10Msg._dtypes)}
MBP_RTYPES = {1: 0x01, 10: 0x0A}
UNDEF_PRICE = dbn.UNDEF_PRICE
F_LAST = 128
BID, ASK = 0, 1
LEVEL_BYTES = MBP_DTYPES[10].fields["bid_px_01"][1] - MBP_DTYPES[10].fields["bid_px_00"][1]  # a BidAskPair


@njit(cache=True, nogil=True)
def _better_levels(lsize: np.ndarray, best: int, lvl: int, side: int, total: int, cap: int) -> int:  # pragma: no cover
    """Non-empty levels strictly better than lvl on a side (at most cap)."""
    if best < 0:
        return 0
    count = 0
    step = -1 if side == BID else 1
    at = best
    while count < cap and ((side == BID and at > lvl) or (side == ASK and at < lvl)):
        if lsize[side * total + at] > 0:
            count += 1
        at += step
    return count


@njit(cache=True, nogil=True)
def _rescan(best: np.ndarray, lsize: np.ndarray, off: np.ndarray, total: int, k: int,
            side: int) -> None:  # pragma: no cover - compiled
    lvl = best[2 * k + side]
    while off[k] <= lvl < off[k + 1] and lsize[side * total + lvl] == 0:
        lvl += -1 if side == BID else 1
    best[2 * k + side] = lvl if off[k] <= lvl < off[k + 1] else -1


@njit(cache=True, nogil=True)
def _write_levels(n: int, k: int, best: np.ndarray, lsize: np.ndarray, lcount: np.ndarray, base: np.ndarray,
                  off: np.ndarray, tick: np.ndarray, total: int, depth_n: int, px: np.ndarray, sz: np.ndarray,
                  ct: np.ndarray, sd: int) -> None:  # pragma: no cover - compiled
    """The depth_n best non-empty levels of one side into row n (UNDEF_PRICE, 0, 0 past the last)."""
    at = best[2 * k + sd]
    j = 0
    while j < depth_n and at >= off[k] and at < off[k + 1]:
        g = sd * total + at
        if lsize[g] > 0:
            px[n, j] = base[k] + (at - off[k]) * tick[k]
            sz[n, j] = lsize[g]
            ct[n, j] = lcount[g]
            j += 1
        at += -1 if sd == BID else 1
    for jj in range(j, depth_n):
        px[n, jj] = UNDEF_PRICE
        sz[n, jj] = 0
        ct[n, jj] = 0


@njit(cache=True, nogil=True)
def replay_mbp(inst: np.ndarray, oidx: np.ndarray, price: np.ndarray, size: np.ndarray, action: np.ndarray,
               side: np.ndarray, flags: np.ndarray, base: np.ndarray, off: np.ndarray, tick: np.ndarray,
               lsize: np.ndarray, lcount: np.ndarray, best: np.ndarray, o_lvl: np.ndarray, o_size: np.ndarray,
               o_epoch: np.ndarray, epoch: np.ndarray, cursor: np.ndarray, depth_n: int, emit_lo: int,
               emit_hi: int, src: np.ndarray, out_depth: np.ndarray, out_flags: np.ndarray, bid_px: np.ndarray,
               ask_px: np.ndarray, bid_sz: np.ndarray, ask_sz: np.ndarray, bid_ct: np.ndarray,
               ask_ct: np.ndarray) -> int:  # pragma: no cover - compiled
    """Replay records [cursor[0], emit_hi) on the book state (lsize ... epoch), writing the mbp records of
    those in [emit_lo, emit_hi): source row, depth, flags and top levels ([record, level] views into the
    output records). cursor = [next row, first row of the current event]; returns the mbp record count."""
    total = off[len(off) - 1]
    n = 0
    event_start = cursor[1]
    for r in range(cursor[0], emit_hi):
        k = inst[r]
        a = action[r]
        s = BID if side[r] == 66 else (ASK if side[r] == 65 else -1)
        emit = False
        depth = 0
        if a == 82:  # R: clear the contract's book; its orders' ids are free again (a snapshot re-adds them)
            for g in range(off[k], off[k + 1]):
                lsize[g] = lcount[g] = lsize[total + g] = lcount[total + g] = 0
            best[2 * k] = best[2 * k + 1] = -1
            epoch[k] += 1
            emit = True
        elif (a == 65 or a == 67 or a == 77) and s >= 0:  # A, C, M
            o = oidx[r]
            lvl = off[k] + (price[r] - base[k]) // tick[k]
            g = s * total + lvl
            old = o_lvl[o] if o_epoch[o] == epoch[k] else -1
            moved = False
            if a == 67:
                if old >= 0:
                    lsize[old] -= size[r]
                    o_size[o] -= size[r]
                    if o_size[o] <= 0:
                        lcount[old] -= 1
                        o_lvl[o] = -1
            else:
                if old >= 0:  # a modify (or a re-add): the order leaves its old level
                    old_side = old // total
                    lsize[old] -= o_size[o]
                    lcount[old] -= 1
                    if lsize[old] == 0 and best[2 * k + old_side] == old - old_side * total:
                        _rescan(best, lsize, off, total, k, old_side)
                    moved = old != g
                lsize[g] += size[r]
                lcount[g] += 1
                o_lvl[o] = g
                o_size[o] = size[r]
                o_epoch[o] = epoch[k]
                b = best[2 * k + s]
                if b < 0 or (s == BID and lvl > b) or (s == ASK and lvl < b):
                    best[2 * k + s] = lvl
            if lsize[g] == 0 and best[2 * k + s] == lvl:
                _rescan(best, lsize, off, total, k, s)
            depth = _better_levels(lsize, best[2 * k + s], lvl, s, total, depth_n)
            emit = depth < depth_n
            if moved:  # a price change counts at its old level too
                old_side = old // total
                emit = emit or _better_levels(lsize, best[2 * k + old_side], old - old_side * total, old_side,
                                              total, depth_n) < depth_n
        elif a == 84:  # T: depth of the trade price on the resting side (0 when no side is given)
            if s >= 0:
                rest = ASK if s == BID else BID
                lvl = off[k] + (price[r] - base[k]) // tick[k]
                depth = _better_levels(lsize, best[2 * k + rest], lvl, rest, total, depth_n)
            emit = True
        if r >= emit_lo:
            if emit:
                src[n] = r
                out_depth[n] = min(depth, 255)
                out_flags[n] = flags[r]
                _write_levels(n, k, best, lsize, lcount, base, off, tick, total, depth_n, bid_px, bid_sz,
                              bid_ct, BID)
                _write_levels(n, k, best, lsize, lcount, base, off, tick, total, depth_n, ask_px, ask_sz,
                              ask_ct, ASK)
                n += 1
            elif flags[r] & F_LAST and n > 0 and src[n - 1] >= event_start:
                out_flags[n - 1] |= F_LAST  # the event's last record was dropped: its last kept one ends it
        if flags[r] & F_LAST:
            event_start = r + 1
    cursor[0] = max(cursor[0], emit_hi)
    cursor[1] = event_start
    return n


def mbp_from_mbo(mbo: np.ndarray, depth_n: int, ticks: dict[int, int], emit_lo: int = 0,
                 emit_hi: int | None = None) -> np.ndarray:
    """mbp-`depth_n` records (1 or 10) of MBO records `mbo` (one session or more, in stream order), for the
    MBO rows [emit_lo, emit_hi) after replaying the book from the first row. `ticks`: instrument_id -> tick
    (1e-9 units) of every instrument in `mbo`."""
    return MbpCursor(mbo, depth_n, ticks).records(emit_lo, len(mbo) if emit_hi is None else emit_hi)


class MbpCursor:
    """A resumable mbp-N replay of one MBO stream: windows asked in stream order cost only the rows between
    them (a live gateway pacing a session), an earlier window replays from the start. Thread-safe."""

    def __init__(self, mbo: np.ndarray, depth_n: int, ticks: dict[int, int]) -> None:
        if depth_n not in MBP_DTYPES:
            raise HdiError(f"mbp depth {depth_n} is not a Databento schema; use 1 or 10")
        self.mbo, self.depth_n = mbo, depth_n
        ids = np.unique(mbo["instrument_id"])
        self.inst = np.searchsorted(ids, mbo["instrument_id"]).astype(np.int32)
        try:
            self.tick = np.array([ticks[int(i)] for i in ids], dtype=np.int64)
        except KeyError as missing:
            raise HdiError(f"mbp_from_mbo: no tick for instrument_id {missing}") from None
        price = mbo["price"]
        priced = price != UNDEF_PRICE
        lo = np.full(len(ids), np.iinfo(np.int64).max)
        hi = np.full(len(ids), np.iinfo(np.int64).min)
        np.minimum.at(lo, self.inst[priced], price[priced])
        np.maximum.at(hi, self.inst[priced], price[priced])
        self.base = np.where(lo > hi, 0, lo)
        hi = np.maximum(hi, self.base)
        self.off = np.concatenate([[0], np.cumsum((hi - self.base) // self.tick + 1)]).astype(np.int64)
        self.oidx, self.n_orders = order_index(mbo["order_id"])
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        total, n_inst = int(self.off[-1]), len(self.off) - 1
        self.lsize = np.zeros(2 * total, np.int64)
        self.lcount = np.zeros(2 * total, np.int64)
        self.best = np.full(2 * n_inst, -1, np.int64)
        self.o_lvl = np.full(self.n_orders, -1, np.int64)
        self.o_size = np.zeros(self.n_orders, np.int64)
        self.o_epoch = np.zeros(self.n_orders, np.int32)
        self.epoch = np.zeros(n_inst, np.int32)
        self.cursor = np.zeros(2, np.int64)

    def records(self, emit_lo: int, emit_hi: int) -> np.ndarray:
        """The mbp records of MBO rows [emit_lo, emit_hi)."""
        dtype = MBP_DTYPES[self.depth_n]
        emit_lo, emit_hi = max(int(emit_lo), 0), min(int(emit_hi), len(self.mbo))
        # at most one record a row: untouched rows of the zeroed block are never paged in
        out = np.zeros(max(emit_hi - emit_lo, 0), dtype=dtype)
        if not len(out):
            return out
        src, depth, flags = np.empty(len(out), np.int64), np.empty(len(out), np.uint8), np.empty(len(out), np.uint8)
        views = [_level_view(out, f"{name}_00", self.depth_n)
                 for name in ("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct")]
        mbo = self.mbo
        with self._lock:
            if emit_lo < self.cursor[0]:
                self._reset()
            n = replay_mbp(self.inst, self.oidx, mbo["price"], mbo["size"], mbo["action"].view(np.uint8),
                           mbo["side"].view(np.uint8), mbo["flags"], self.base, self.off, self.tick, self.lsize,
                           self.lcount, self.best, self.o_lvl, self.o_size, self.o_epoch, self.epoch,
                           self.cursor, self.depth_n, emit_lo, emit_hi, src, depth, flags, *views)
        out = out[:n]
        src = src[:n]
        out["length"] = dtype.itemsize // 4
        out["rtype"] = MBP_RTYPES[self.depth_n]
        for field in ("publisher_id", "instrument_id", "ts_event", "price", "size", "action", "side", "ts_recv",
                      "ts_in_delta", "sequence"):
            out[field] = mbo[field][src]
        out["flags"] = flags[:n]
        out["depth"] = depth[:n]
        return out


def order_index(order_id: np.ndarray) -> tuple[np.ndarray, int]:
    """A dense index of each order id: an offset when the ids are dense (the synthetic market's; id 0, no
    order, gets a slot of its own), else a sort."""
    real = order_id != 0
    if not real.any():
        return np.zeros(len(order_id), np.int64), 1
    lo, hi = int(order_id[real].min()), int(order_id.max())
    if hi - lo < 4 * len(order_id):
        return np.where(real, order_id - np.uint64(lo), np.uint64(hi - lo + 1)).astype(np.int64), hi - lo + 2
    ids, index = np.unique(order_id, return_inverse=True)
    return index.astype(np.int64), len(ids)


def _level_view(out: np.ndarray, first_field: str, depth_n: int) -> np.ndarray:
    """[record, level] view of one level field (bid_px_00, bid_px_01, ... are LEVEL_BYTES apart)."""
    field_dtype, offset = out.dtype.fields[first_field][:2]
    return np.ndarray((len(out), depth_n), dtype=field_dtype, buffer=out, offset=offset,
                      strides=(out.dtype.itemsize, LEVEL_BYTES))
