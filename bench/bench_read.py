"""Read latency from a running database: a day of 1-minute bars and a month of daily bars, through the Python
read layer, the HTTP API (in-process server, loopback) and the `hdi query` CLI (a fresh process each time).

    hdi db start                       # once: the CLI then reuses the server
    python bench/bench_read.py [--runs 15] [--cli-runs 5] [--symbol ES]

Uses the database running for HDI_HOME (e.g. after `hdi demo` and `hdi db start`). With none running (`make bench`
runs it under a scratch HDI_HOME) it starts one for this run, loads a synthetic month of ES bars and stops it after.
Prints p50 / p90 in milliseconds; "CLI overhead" is the CLI p50 minus the in-process read p50 (interpreter start,
imports, connection and migration check). Goal (issue 13): API p50 under 200 ms."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hdi_app.api import start_api_thread  # noqa: E402
from hdi_resources.db import Database  # noqa: E402
from hdi_resources.db import read as reads  # noqa: E402
from hdi_resources.db.catalog import entries  # noqa: E402
from hdi_resources.db.server import postgres_root, read_postmaster  # noqa: E402


def _timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm: connection pool, catalogue, caches
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _line(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return f"  {label:<34} p50 {statistics.median(samples):8.1f} ms   p90 {p90:8.1f} ms   (n={len(samples)})"


def _load_synthetic(db: Database) -> None:
    """A month of 1-minute and daily ES.v.0 bars (July 2024 sessions: 17:00 Chicago = 22:00 UTC the day before)."""
    import numpy as np
    import pyarrow as pa

    days = [dt.date(2024, 7, d) for d in range(1, 32) if dt.date(2024, 7, d).weekday() < 5]
    minutes, daily = 1380, []
    opens_ns = [int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp() - 7200) * 10**9 for d in days]
    for granularity, step, count in (("1m", 60 * 10**9, minutes), ("1d", 0, 1)):
        ts = np.concatenate([np.int64(o) + np.arange(count, dtype=np.int64) * step for o in opens_ns])
        trade_dates = np.repeat(np.array(days, dtype="datetime64[D]"), count)
        price = 5_500_000_000_000 + np.cumsum(np.random.default_rng(1).integers(-4, 5, ts.size)) * 250_000_000
        daily.append(pa.table({
            "root_symbol": pa.array(["ES"] * ts.size), "granularity": pa.array([granularity] * ts.size),
            "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")), "trade_date": pa.array(trade_dates, pa.date32()),
            "open": price, "high": price + 250_000_000, "low": price - 250_000_000, "close": price,
            "volume": np.ones(ts.size, dtype=np.int64), "trade_count": np.ones(ts.size, dtype=np.int64),
            "vwap": price / 1e9}))
    db.replace_partition("continuous_bars", {"continuous_symbol": "ES.v.0", "window": "2024-07-01",
                                             "adjustment_method": "panama"}, pa.concat_tables(daily))


def _ranges(db: Database, symbol: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """(a day with 1-minute bars, a month with daily bars) from the catalogue."""
    with reads._cursor(db) as cur:
        rows = [e for e in entries(cur, db, ["continuous_bars"])
                if symbol in (e.symbol, e.root_symbol) and e.granularity in ("1m", "1d")]
    by_gran = {e.granularity: e for e in rows}
    if set(by_gran) != {"1m", "1d"}:
        raise SystemExit(f"no 1-minute and daily bars stored for {symbol} under HDI_HOME; run `hdi demo` first")
    day = by_gran["1m"].min_trade_date + dt.timedelta(days=1)
    month = by_gran["1d"].min_trade_date.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    return (day.isoformat(), (day + dt.timedelta(days=1)).isoformat()), (month.isoformat(), next_month.isoformat())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--symbol", default="ES")
    args = parser.parse_args()
    scratch = not os.environ.get("HDI_DATABASE_URL") and read_postmaster(postgres_root() / "data") is None
    db = Database()
    if scratch:
        print("no database was running for HDI_HOME: started one for this run, with a synthetic month of ES bars")
        _load_synthetic(db)
        args.symbol = "ES"
    day, month = _ranges(db, args.symbol)
    cases = [("a day of 1-minute bars", "ohlcv-1m", day), ("a month of daily bars", "ohlcv-1d", month)]
    api = start_api_thread(db)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        for label, schema, (start, end) in cases:
            rows = reads.query(db, args.symbol, schema, start, end).num_rows
            print(f"{label}: {args.symbol} {schema} [{start}, {end}) = {rows:,} rows")
            python = _timed(lambda s=schema, a=start, b=end: reads.query(db, args.symbol, s, a, b), args.runs)
            url = f"{api.url}/api/market-data/{args.symbol}/{schema}/bars?start={start}&end={end}"
            http = _timed(lambda u=url: urllib.request.urlopen(u, timeout=60).read(), args.runs)
            command = [sys.executable, "-c", "from hdi_app.cli import main; main()", "query", "--symbol",
                       args.symbol, "--schema", schema, "--start", start, "--end", end, "--format", "csv"]
            cli = _timed(lambda c=command: subprocess.run(c, env=env, check=True, capture_output=True),
                         args.cli_runs)
            print(_line("Python read layer (in process)", python))
            print(_line("HTTP API (JSON, loopback)", http))
            print(_line("hdi query (new process, CSV)", cli))
            print(f"  CLI overhead over the read itself: {statistics.median(cli) - statistics.median(python):.0f} ms")
    finally:
        api.stop()
        db.close(stop_if_started=scratch)


if __name__ == "__main__":
    main()
