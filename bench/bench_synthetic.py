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

    book_figures(market, market.trade_dates("ES", utc_ns(start), utc_ns(end))[:3])

    t0 = time.perf_counter()
    daily = SyntheticMarket().daily_stats(DATASET, dt.date(2019, 1, 1), dt.date(2024, 1, 1))
    print(f"daily_stats 2019..2023, all products (no ticks): {len(daily):,} rows in "
          f"{time.perf_counter() - t0:.2f} s")


def book_figures(market: SyntheticMarket, days: list[dt.date]) -> None:
    """The order book at default volume: MBO generation (trades cached), then mbp-1 and mbp-10 derived."""
    rows = []
    for day in days:
        trades = len(market._session_trades("ES", day)["price"])
        t0 = time.perf_counter()
        mbo = market.session_mbo("ES", day)
        t_mbo = time.perf_counter() - t0
        t0 = time.perf_counter()
        mbp1 = market.session_mbp("ES", day, 1)
        t_mbp1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        mbp10 = market.session_mbp("ES", day, 10)
        t_mbp10 = time.perf_counter() - t0
        rows.append((trades, len(mbo), t_mbo, len(mbp1), t_mbp1, len(mbp10), t_mbp10))
    for day, (trades, n_mbo, t_mbo, n1, t1, n10, t10) in zip(days, rows, strict=True):
        print(f"ES {day} book: {trades:,} trades -> {n_mbo:,} mbo records ({n_mbo / trades:.1f}/trade) in "
              f"{t_mbo:.2f} s = {n_mbo / t_mbo:,.0f} events/s; mbp-1 {n1:,} in {t1:.2f} s "
              f"({n_mbo / t1:,.0f} mbo events/s replayed); mbp-10 {n10:,} in {t10:.2f} s "
              f"({n_mbo / t10:,.0f} mbo events/s replayed)")


if __name__ == "__main__":
    main()
