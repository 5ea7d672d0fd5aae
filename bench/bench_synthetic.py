"""Generation speed of the synthetic market at default volume: prints figures, asserts nothing.

Run: .venv/bin/python bench/bench_synthetic.py
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np

from hdi_gateway.synthetic import DATASET, SyntheticMarket

NS = 1_000_000_000


def utc_ns(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp()) * NS


def main() -> None:
    start, end = dt.date(2024, 6, 10), dt.date(2024, 6, 24)  # two weeks, across the June ES roll
    listed = SyntheticMarket().instruments(DATASET, utc_ns(start), utc_ns(end))
    es_ids = np.array([i.instrument_id for i in listed if i.parent == "ES.FUT"], dtype=np.uint32)

    market = SyntheticMarket()  # default volume, empty cache
    per_session = []
    for day in market.trade_dates("ES", utc_ns(start), utc_ns(end)):  # the exchange's trade dates
        t0 = time.perf_counter()
        market._session_trades("ES", day)
        per_session.append(time.perf_counter() - t0)
    ms = np.array(per_session) * 1e3
    print(f"ES session generation, {len(ms)} sessions: median {np.median(ms):.1f} ms, "
          f"min {ms.min():.1f} ms, max {ms.max():.1f} ms")

    fresh = SyntheticMarket()
    t0 = time.perf_counter()
    trades = fresh.records(DATASET, "trades", es_ids, utc_ns(start), utc_ns(end))
    elapsed = time.perf_counter() - t0
    print(f"ES trades {start}..{end} (cold): {len(trades):,} records in {elapsed:.2f} s = "
          f"{len(trades) / elapsed:,.0f} records/s, {trades.nbytes / elapsed / 1e6:,.0f} MB/s")

    t0 = time.perf_counter()
    again = fresh.records(DATASET, "trades", es_ids, utc_ns(end) - 3 * 86_400 * NS, utc_ns(end))
    elapsed = time.perf_counter() - t0
    print(f"ES trades last 3 days (cached sessions): {len(again):,} records in {elapsed:.3f} s")

    t0 = time.perf_counter()
    bars = fresh.records(DATASET, "ohlcv-1m", es_ids, utc_ns(end) - 3 * 86_400 * NS, utc_ns(end))
    elapsed = time.perf_counter() - t0
    print(f"ES ohlcv-1m last 3 days (cached sessions): {len(bars):,} bars in {elapsed:.3f} s")

    t0 = time.perf_counter()
    daily = SyntheticMarket().daily_stats(DATASET, dt.date(2019, 1, 1), dt.date(2024, 1, 1))
    print(f"daily_stats 2019..2023, all products (no ticks): {len(daily):,} rows in "
          f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
