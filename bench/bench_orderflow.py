"""Benchmark of the order-flow kernels on synthetic ES-size arrays (figures printed, never asserted).

- trades: footprint (1m, diagonal imbalances) + aggressor flow (1m and 1s) over ~6 months of ES sessions
  (default 40M trades); goal >= 10M trades/s for footprint + delta;
- book: absorption over a day of mbp-10 top-of-book records and icebergs over a day of mbo (default 3M events
  each); goal >= 2M events/s for the two together.

    python bench/bench_orderflow.py [--trades 40000000] [--events 3000000] [--runs 3]

Kernels are compiled (or loaded from numba's cache) on a small warm-up first; the figures are steady state.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hdi_core.calendar import NS, calendar_sessions
from hdi_core.orderflow import (
    OrderEvents,
    TopOfBook,
    Trades,
    absorption_zones,
    bar_index,
    iceberg_candidates,
)
from hdi_core.orderflow.delta import flow_of_bars
from hdi_core.orderflow.footprint import footprint_of_bars

TICK = 250_000_000
START = np.datetime64("2024-01-02", "ns").astype(np.int64).item()
END = np.datetime64("2024-07-01", "ns").astype(np.int64).item()
B, A, N = ord("B"), ord("A"), ord("N")


def synthetic_trades(n: int, seed: int = 1) -> tuple[Trades, object]:
    """Sorted trades spread over every ES session of H1 2024, a random walk of prices, 45/45/10 sides."""
    sessions = calendar_sessions("CME Globex Equity", START, END)
    rng = np.random.default_rng(seed)
    length = sessions.close_ns - sessions.open_ns
    k = np.sort(rng.choice(len(sessions), n, p=length / length.sum()))
    ts = sessions.open_ns[k] + (rng.random(n) * length[k]).astype(np.int64)
    ts.sort()  # sessions do not overlap, so sorting keeps every trade in its session
    price = 4_800 * NS + np.cumsum(rng.integers(-1, 2, n, dtype=np.int8), dtype=np.int64) * TICK // 4
    price -= price % TICK
    size = rng.integers(1, 20, n, dtype=np.int64)
    side = rng.choice(np.array([B, A, N], np.uint8), n, p=[0.45, 0.45, 0.10])
    return Trades(ts, price, size, side), sessions


def synthetic_mbo(n: int, seed: int = 2) -> OrderEvents:
    """About n mbo events over a day: orders added, most eaten (fill + cancel), some pulled; near a walking mid."""
    rng = np.random.default_rng(seed)
    orders = int(n / 2.53) + 1  # 2.5 events per order on average, plus the planted chains
    t_add = np.sort(rng.integers(0, 82_800 * NS, orders))
    mid = 4_800 * 4 + np.cumsum(rng.integers(-1, 2, orders))
    side = rng.choice(np.array([B, A], np.uint8), orders)
    px = (mid + np.where(side == B, -rng.integers(0, 5, orders), rng.integers(1, 6, orders))) * TICK
    size = rng.integers(1, 30, orders)
    eaten = rng.random(orders) < 0.5
    life = rng.integers(1, 2_000_000_000, orders)
    oid = np.arange(1, orders + 1, dtype=np.int64)
    ts = np.concatenate([t_add, t_add + life, t_add[eaten] + life[eaten]])
    action = np.concatenate([np.full(orders, ord("A"), np.uint8), np.where(eaten, ord("F"), ord("C")).astype(np.uint8),
                             np.full(int(eaten.sum()), ord("C"), np.uint8)])
    pick = np.concatenate([np.arange(orders), np.arange(orders), np.flatnonzero(eaten)])
    rank = np.concatenate([np.zeros(orders), np.ones(orders), np.full(int(eaten.sum()), 2)])
    cols = [ts, action, oid[pick], side[pick], px[pick], size[pick], rank]
    # planted icebergs: one in 200 orders is a 6-order chain (eaten, refilled 20 ms later) at its own price
    chains, length = orders // 200, 6
    t0 = np.repeat(rng.integers(0, 82_000 * NS, chains), length) + np.tile(np.arange(length), chains) * 20_000_000
    chain_oid = orders + 1 + np.arange(chains * length, dtype=np.int64)
    chain_px = np.repeat((4_800 * 4 + 400 + np.arange(chains)) * TICK, length)
    planted = [np.concatenate([t0, t0 + 5_000_000, t0 + 5_000_000]),
               np.repeat(np.array([ord("A"), ord("F"), ord("C")], np.uint8), len(t0)),
               np.tile(chain_oid, 3), np.full(3 * len(t0), B, np.uint8), np.tile(chain_px, 3),
               np.full(3 * len(t0), 10), np.repeat(np.arange(3.0), len(t0))]
    ts, action, oid, side, px, size, rank = (np.concatenate([a, b]) for a, b in zip(cols, planted, strict=True))
    order = np.lexsort((rank, ts))
    return OrderEvents(ts[order], np.arange(len(order), dtype=np.int64), oid[order], action[order], side[order],
                       px[order], size[order])


def synthetic_mbp(n: int, seed: int = 3) -> TopOfBook:
    """n top-of-book records over a day: trades at the best levels, cancels and adds, a walking spread."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 82_800 * NS, n))
    bid = (4_800 * 4 + np.cumsum(rng.random(n) < 0.002) - np.cumsum(rng.random(n) < 0.002)) * TICK
    ask = bid + TICK
    action = rng.choice(np.array([ord("T"), ord("C"), ord("A")], np.uint8), n, p=[0.3, 0.4, 0.3])
    side = rng.choice(np.array([B, A], np.uint8), n)
    price = np.where(side == B, bid, ask)
    price = np.where(action == ord("T"), np.where(side == A, bid, ask), price)
    return TopOfBook(ts, np.arange(n, dtype=np.int64), action, side, price, rng.integers(1, 20, n),
                     np.full(n, 128, np.int64), bid, rng.integers(1, 200, n), ask, rng.integers(1, 200, n))


def best_of(runs: int, fn) -> float:  # noqa: ANN001 - a zero-argument callable
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=40_000_000)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    small, small_sessions = synthetic_trades(10_000)
    t = time.perf_counter()
    footprint_of_bars(small, bar_index(small.ts, small_sessions, "1m"), TICK)
    flow_of_bars(small, bar_index(small.ts, small_sessions, "1s"))
    absorption_zones(synthetic_mbp(10_000))
    iceberg_candidates(synthetic_mbo(10_000))
    print(f"warm-up (compile or load kernels): {time.perf_counter() - t:.2f} s")
    bench_trades(args.trades, args.runs)
    bench_book(args.events, args.runs)


def bench_trades(count: int, runs: int) -> None:
    t = time.perf_counter()
    trades, sessions = synthetic_trades(count)
    print(f"generated {len(trades):,} trades over {len(sessions)} sessions in {time.perf_counter() - t:.1f} s")

    def trade_measures() -> None:
        minute = bar_index(trades.ts, sessions, "1m")
        footprint_of_bars(trades, minute, TICK, 3.0, 10)
        flow_of_bars(trades, minute)

    n = len(trades)
    secs = best_of(runs, trade_measures)
    print(f"footprint 1m + delta 1m: {secs:.2f} s = {n / secs / 1e6:.1f}M trades/s (goal 10M/s)")
    minute = bar_index(trades.ts, sessions, "1m")
    parts = [("bar index 1m", lambda: bar_index(trades.ts, sessions, "1m")),
             ("footprint 1m alone", lambda: footprint_of_bars(trades, minute, TICK)),
             ("delta 1m alone", lambda: flow_of_bars(trades, minute)),
             ("delta 1s (own bar index)", lambda: flow_of_bars(trades, bar_index(trades.ts, sessions, "1s")))]
    for name, fn in parts:
        secs = best_of(runs, fn)
        print(f"  {name}: {secs:.2f} s = {n / secs / 1e6:.1f}M trades/s")


def bench_book(count: int, runs: int) -> None:
    mbp, mbo = synthetic_mbp(count), synthetic_mbo(count)
    t_abs = best_of(runs, lambda: absorption_zones(mbp))
    t_ice = best_of(runs, lambda: iceberg_candidates(mbo))
    zones, icebergs = absorption_zones(mbp).num_rows, iceberg_candidates(mbo).num_rows
    print(f"absorption over {len(mbp):,} mbp-10 records: {t_abs:.2f} s = {len(mbp) / t_abs / 1e6:.1f}M events/s "
          f"({zones:,} zones)")
    print(f"icebergs over {len(mbo):,} mbo events: {t_ice:.2f} s = {len(mbo) / t_ice / 1e6:.1f}M events/s "
          f"({icebergs:,} candidates)")
    day = max(len(mbp), len(mbo))
    print(f"absorption + icebergs over a day: {t_abs + t_ice:.2f} s = {day / (t_abs + t_ice) / 1e6:.1f}M events/s "
          "(goal 2M/s)")


if __name__ == "__main__":
    main()
