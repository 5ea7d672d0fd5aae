"""Benchmark of the live order flow (hdi_core.live.flow.ProductFlow): one ES day of trades fed in arrival-order
batches (all five trade measures: delta 1s and 1m, footprint 1m, profile with its provisional state each minute),
and a day of mbo events through the iceberg detector per batch (figures printed, never asserted).

What matters live is that the work per batch stays far below the feed's pace: the capture reads 10k-100k records/s.

    python bench/bench_live_orderflow.py [--trades 1500000] [--events 3000000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hdi_core.calendar import NS, calendar_sessions
from hdi_core.config.orderflow import OrderflowParams
from hdi_core.dbn.schemas import SCHEMA_DTYPES
from hdi_core.live.flow import ProductFlow

TICK = 250_000_000
DAY_OPEN = np.datetime64("2024-03-04T23:00", "ns").astype(np.int64).item()  # ES trade date 2024-03-05


def _trades(n: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    span = 22 * 3600 * NS  # 17:00 CT to 16:00 CT the next day
    ts = np.sort(DAY_OPEN + (rng.random(n) * (span - NS)).astype(np.int64))
    price = 5_000 * NS + np.cumsum(rng.integers(-1, 2, n, dtype=np.int8), dtype=np.int64) * TICK // 4
    price -= price % TICK
    size = rng.integers(1, 20, n, dtype=np.int64)
    side = rng.choice(np.array([b"B", b"A", b"N"], "S1"), n, p=[0.45, 0.45, 0.10])
    return ts, price, size, side


def _mbo(n: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, SCHEMA_DTYPES["mbo"])
    rec["ts_recv"] = np.sort(DAY_OPEN + (rng.random(n) * 22 * 3600 * NS).astype(np.int64))
    rec["instrument_id"] = 42
    rec["sequence"] = np.arange(n)
    rec["order_id"] = rng.integers(1, n // 4, n)
    rec["action"] = rng.choice(np.array([b"A", b"C", b"F", b"T", b"M"], "S1"), n, p=[0.4, 0.3, 0.1, 0.1, 0.1])
    rec["side"] = rng.choice(np.array([b"B", b"A"], "S1"), n)
    rec["price"] = 5_000 * NS + rng.integers(-20, 20, n) * TICK
    rec["size"] = rng.integers(1, 50, n)
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trades", type=int, default=1_500_000)
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--batch", type=int, default=2_000)
    args = ap.parse_args()
    sessions = calendar_sessions("CME Globex Equity", DAY_OPEN - 3 * 86400 * NS, DAY_OPEN + 5 * 86400 * NS)
    warm = ProductFlow(sessions, TICK, OrderflowParams())  # compile (or load) the kernels first
    t = _trades(20_000)
    warm.on_trades(*t, int(t[0][-1]))
    warm.on_book("mbo", _mbo(20_000), 42, "ESH4")
    warm.flush()

    ts, price, size, side = _trades(args.trades)
    flow = ProductFlow(sessions, TICK, OrderflowParams())
    started = time.perf_counter()
    for lo in range(0, len(ts), args.batch):
        hi = lo + args.batch
        flow.on_trades(ts[lo:hi], price[lo:hi], size[lo:hi], side[lo:hi], int(ts[min(hi, len(ts)) - 1]))
    flow.flush()
    took = time.perf_counter() - started
    print(f"trades: {len(ts):,} in batches of {args.batch:,}: {took:.2f} s, {len(ts) / took / 1e6:.2f}M trades/s "
          "(delta 1s + 1m, footprint 1m, profile + provisional profile each minute)")

    events = _mbo(args.events)
    flow = ProductFlow(sessions, TICK, OrderflowParams())
    started = time.perf_counter()
    for lo in range(0, len(events), args.batch):
        flow.on_book("mbo", events[lo:lo + args.batch], 42, "ESH4")
    flow.flush_book()
    took = time.perf_counter() - started
    print(f"mbo: {len(events):,} events in batches of {args.batch:,}: {took:.2f} s, "
          f"{len(events) / took / 1e6:.2f}M events/s (icebergs, per trade date)")


if __name__ == "__main__":
    main()
