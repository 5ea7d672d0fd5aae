"""Tapes for the order-flow tests: random trades inside real CME sessions, and book records built by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np

from hdi_core.calendar import CHICAGO, NS, Sessions, calendar_sessions
from hdi_core.orderflow import Trades

TICK = 250_000_000  # 0.25 in fixed point
B, A, N = ord("B"), ord("A"), ord("N")


def ct(y: int, m: int, d: int, hh: int, mm: int = 0, ss: float = 0.0) -> int:
    base = dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO)
    return int(base.timestamp()) * NS + int(round(ss * NS))


def week_sessions() -> Sessions:
    """ES sessions of 2024-03-05..2024-03-12 (a DST change on the Sunday in between)."""
    return calendar_sessions("CME Globex Equity", ct(2024, 3, 5, 0), ct(2024, 3, 12, 16))


def random_trades(seed: int = 3, n: int = 5_000, sessions: Sessions | None = None) -> Trades:
    """Sorted random trades clustered in a few minutes of each session, all three sides, ties in time."""
    sessions = sessions or week_sessions()
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(sessions), n)
    ts = sessions.open_ns[k] + rng.integers(0, 30, n) * 600 * NS + rng.integers(0, 200 * NS, n)
    ts = np.sort(np.minimum(ts, sessions.close_ns[k] - 1))
    ts[1::7] = ts[0::7][: len(ts[1::7])]  # several trades at one timestamp
    ts = np.sort(ts)
    price = (5000 * NS + np.cumsum(rng.integers(-3, 4, n)) * TICK).astype(np.int64)
    size = rng.integers(1, 40, n).astype(np.int64)
    side = rng.choice(np.array([B, A, N], np.uint8), n, p=[0.45, 0.45, 0.1])
    return Trades(ts, price, size, side)


MBP_FIELDS = ("ts", "sequence", "action", "side", "price", "size", "flags", "bid_px", "bid_sz", "ask_px", "ask_sz")


def mbp_tape(rows: list[tuple]) -> dict[str, np.ndarray]:
    """Columns from (ms, action, side, price ticks, size, bid ticks, bid size, ask ticks, ask size) rows."""
    out: dict[str, list] = {f: [] for f in MBP_FIELDS}
    for i, (ms, action, side, px, sz, bpx, bsz, apx, asz) in enumerate(rows):
        out["ts"].append(1_700_000_000 * NS + ms * 1_000_000)
        out["sequence"].append(1000 + i)
        out["action"].append(ord(action))
        out["side"].append(ord(side))
        out["price"].append(px * TICK)
        out["size"].append(sz)
        out["flags"].append(128)
        out["bid_px"].append(bpx * TICK)
        out["bid_sz"].append(bsz)
        out["ask_px"].append(apx * TICK)
        out["ask_sz"].append(asz)
    return {f: np.array(v, np.uint8 if f in ("action", "side") else np.int64) for f, v in out.items()}


MBO_FIELDS = ("ts", "sequence", "order_id", "action", "side", "price", "size")


def mbo_tape(rows: list[tuple]) -> dict[str, np.ndarray]:
    """Columns from (ms, action, side, order id, price ticks, size) rows."""
    out: dict[str, list] = {f: [] for f in MBO_FIELDS}
    for i, (ms, action, side, oid, px, sz) in enumerate(rows):
        out["ts"].append(1_700_000_000 * NS + ms * 1_000_000)
        out["sequence"].append(5000 + i)
        out["order_id"].append(oid)
        out["action"].append(ord(action))
        out["side"].append(ord(side))
        out["price"].append(px * TICK)
        out["size"].append(sz)
    return {f: np.array(v, np.uint8 if f in ("action", "side") else np.int64) for f, v in out.items()}


def random_book(seed: int, n: int) -> list[tuple]:
    """A top-of-book walk as mbp rows: trades against the best levels, cancels that show them, refills, level
    changes when a side empties. Plain Python (a test tape, not code under test)."""
    rng = np.random.default_rng(seed)
    bid, bsz, ask, asz = 100, 20, 101, 20
    rows: list[tuple] = []
    ms = 0
    while len(rows) < n:
        ms += int(rng.integers(1, 900))
        roll = rng.random()
        if roll < 0.4:  # a sell aggressor at the bid, then the cancel that shows it
            q = int(rng.integers(1, bsz + 1))
            rows.append((ms, "T", "A", bid, q, bid, bsz, ask, asz))
            bsz -= q
            if bsz == 0:
                bid, bsz = bid - 1, int(rng.integers(5, 40))
            rows.append((ms, "C", "B", bid, q, bid, bsz, ask, asz))
        elif roll < 0.8:
            q = int(rng.integers(1, asz + 1))
            rows.append((ms, "T", "B", ask, q, bid, bsz, ask, asz))
            asz -= q
            if asz == 0:
                ask, asz = ask + 1, int(rng.integers(5, 40))
            rows.append((ms, "C", "A", ask, q, bid, bsz, ask, asz))
        elif roll < 0.9:
            q = int(rng.integers(1, 30))
            bsz += q
            rows.append((ms, "A", "B", bid, q, bid, bsz, ask, asz))
        elif ask - bid > 1 and roll < 0.95:
            bid, bsz = bid + 1, int(rng.integers(1, 30))
            rows.append((ms, "A", "B", bid, bsz, bid, bsz, ask, asz))
        else:
            q = int(rng.integers(1, 30))
            asz += q
            rows.append((ms, "A", "A", ask, q, bid, bsz, ask, asz))
    return rows
