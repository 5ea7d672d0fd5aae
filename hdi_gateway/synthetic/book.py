"""The synthetic market's order book: one product's session of MBO records built around its trades.

`session_book` is a pure function of (seed, product, trade date) through its inputs: the session's trade
columns (prices.session_trades, left untouched), the product's tick and a seed. The kernel is in
book_kernel.py; the mbp-1/mbp-10 views derived from these records are in depth.py.

What a session's MBO holds (DBN v3 MboMsg layout, in ts_recv order):
- at the session open, per contract: a clear ('R') then the opening book (adds), all flagged
  F_SNAPSHOT | F_BAD_TS_RECV, the contract's last one F_LAST, as Databento's MBO snapshots;
- between trades, single-record events (each F_LAST; when the trades' sequence numbers leave no room for them
  they open the next trade's packet instead, at its times and sequence): adds, cancels (full or partial,
  size = the size removed), size-down modifies (size = the new size; the order keeps its priority) and the
  set-up of the next trade;
- each trade of the `trades` schema as one packet at its ts_event/ts_recv/sequence: 'T' (aggressor side,
  trade price and size, order_id 0), an 'F' per resting order filled in FIFO order (resting side), then a 'C'
  per fill (the fills' book change, as Databento normalizes CME), the last one F_LAST.
Order ids are unique per product and trade date; priority is the order of the adds in the stream.
"""

from __future__ import annotations

import databento_dbn as dbn
import numpy as np

from hdi_gateway.synthetic import book_kernel
from hdi_gateway.synthetic.products import PUBLISHER_ID

MBO_DTYPE = np.dtype(dbn.v3.MBOMsg._dtypes)
RTYPE_MBO = 0xA0
GRID_MARGIN_TICKS = 64  # price levels kept beyond a contract's session range on both sides
EVENTS_PER_TRADE_GUESS = 12  # first output capacity; the kernel says when it needs more
ORDER_ID_ORIGIN = 6_000_000_000_000  # CME-like order id magnitudes
ORDER_IDS_PER_DATE = 100_000_000


def session_book(trades: dict[str, np.ndarray], tick: int, open_ns: int, seed: int, product_code: int,
                 trade_date_ordinal: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(MBO records of one product's session, the BBO just before each trade as columns bid_px, ask_px,
    bid_sz, ask_sz, bid_ct, ask_ct aligned with `trades`)."""
    n_trades = len(trades["price"])
    ids, inst = np.unique(trades["instrument_id"], return_inverse=True)
    inst = inst.astype(np.int64)
    price = trades["price"].astype(np.int64)
    lo = np.full(len(ids), np.iinfo(np.int64).max)
    hi = np.full(len(ids), np.iinfo(np.int64).min)
    np.minimum.at(lo, inst, price)
    np.maximum.at(hi, inst, price)
    base = lo - GRID_MARGIN_TICKS * tick
    levels = (hi - lo) // tick + 2 * GRID_MARGIN_TICKS + 1
    off = np.concatenate([[0], np.cumsum(levels)]).astype(np.int64)
    seed_word = np.uint64((seed * 1_000_003 + product_code) * 10_000_019 + trade_date_ordinal) & np.uint64(2**63 - 1)
    cap = n_trades * EVENTS_PER_TRADE_GUESS + len(ids) * 128 + 1024
    bbo_px = np.empty((n_trades, 2), np.int64)
    bbo_sz = np.empty((n_trades, 2), np.uint32)
    bbo_ct = np.empty((n_trades, 2), np.uint32)
    while True:
        out_i8 = np.empty((cap, 3), np.int64)
        out_u8 = np.empty(cap, np.int64)
        out_u4 = np.empty((cap, 4), np.uint32)
        out_u1 = np.zeros((cap, 3), np.uint8)
        n = book_kernel.generate_book(
            trades["ts_event"], trades["ts_recv"], price, trades["size"], inst, trades["side"],
            trades["ts_in_delta"], trades["sequence"], base, off, int(tick), int(open_ns), seed_word, cap,
            out_i8, out_u8, out_u4, out_u1, bbo_px, bbo_sz, bbo_ct)
        if n <= cap:
            break
        cap = int(n * 1.25)
    out = np.zeros(n, dtype=MBO_DTYPE)
    out["length"] = MBO_DTYPE.itemsize // 4
    out["rtype"] = RTYPE_MBO
    out["publisher_id"] = PUBLISHER_ID
    out["instrument_id"] = ids[out_u4[:n, 2]]
    out["ts_event"] = out_i8[:n, 0]
    out["ts_recv"] = out_i8[:n, 1]
    out["price"] = out_i8[:n, 2]
    slot = out_u8[:n]
    first_id = ORDER_ID_ORIGIN + (trade_date_ordinal % 100_000) * ORDER_IDS_PER_DATE
    out["order_id"] = np.where(slot >= 0, first_id + slot, 0).astype(np.uint64)
    out["size"] = out_u4[:n, 0]
    out["sequence"] = out_u4[:n, 1]
    out["ts_in_delta"] = out_u4[:n, 3].astype(np.int32)
    out["flags"] = out_u1[:n, 0]
    out["action"] = out_u1[:n, 1].view("S1")
    out["side"] = out_u1[:n, 2].view("S1")
    bbo = {"bid_px": bbo_px[:, 0], "ask_px": bbo_px[:, 1], "bid_sz": bbo_sz[:, 0], "ask_sz": bbo_sz[:, 1],
           "bid_ct": bbo_ct[:, 0], "ask_ct": bbo_ct[:, 1]}
    return out, bbo

