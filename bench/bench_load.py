"""Bulk-load benchmark: >= 5M one-second bars through replace_partition into a fresh embedded PostgreSQL,
against row-by-row INSERT ... ON CONFLICT measured on a sample and extrapolated. Prints figures only.

    python bench/bench_load.py [--rows 5000000] [--sample 20000] [--reload] [--workers 2]

The machine is shared, so each figure comes with the 1-minute load average and the CPU seconds spent by
this process and by the server's backends (what the load costs, whatever the neighbours do)."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from hdi_resources.settings import hdi_home

ROW_BY_ROW_SQL = """
INSERT INTO continuous_bars (continuous_symbol, root_symbol, granularity, ts, trade_date, open, high, low,
                             close, volume, trade_count, vwap, adjustment_method, "window")
VALUES (%s, %s, %s, to_timestamp(%s), %s, %s * 0.000000001, %s * 0.000000001, %s * 0.000000001,
        %s * 0.000000001, %s, %s, %s, %s, %s)
ON CONFLICT (continuous_symbol, granularity, adjustment_method, ts) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, trade_count = EXCLUDED.trade_count, vwap = EXCLUDED.vwap
"""


def synthetic_bars(n: int, start_unix: int = 1_704_067_200) -> pa.Table:
    """n consecutive 1-second ES bars as the continuous-bars asset hands them over (int64 1e-9 prices)."""
    rng = np.random.default_rng(7)
    ts_ns = (start_unix + np.arange(n, dtype=np.int64)) * 1_000_000_000
    close = 4_500_000_000_000 + np.cumsum(rng.integers(-2, 3, n)) * 250_000_000
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) + rng.integers(0, 3, n) * 250_000_000
    low = np.minimum(open_, close) - rng.integers(0, 3, n) * 250_000_000
    volume = rng.integers(1, 400, n)
    zeros = np.zeros(n, dtype=np.int32)
    return pa.table({
        "root_symbol": pa.DictionaryArray.from_arrays(zeros, pa.array(["ES"])),
        "ts": pa.array(ts_ns, pa.timestamp("ns", tz="UTC")),
        "trade_date": pa.array((ts_ns // 86_400_000_000_000).astype(np.int32)).cast(pa.date32()),
        "open": open_, "high": high, "low": low, "close": close,
        "volume": volume, "trade_count": volume // 3 + 1,
        "vwap": (low + high) / 2e9,
        "adjustment_method": pa.DictionaryArray.from_arrays(zeros, pa.array(["panama"])),
    })


class CpuMeter:
    """CPU seconds of this process and of the embedded server's backends since the last reading."""

    def __init__(self, server_pid: int | None) -> None:
        import psutil

        self.server = psutil.Process(server_pid) if server_pid else None
        self.last = self._read()

    def _read(self) -> tuple[float, dict[int, float]]:
        import psutil

        backends: dict[int, float] = {}
        for proc in self.server.children() if self.server else []:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            backends[proc.pid] = times.user + times.system
        return time.process_time(), backends

    def lap(self) -> str:
        client, backends = self._read()
        last_client, last_backends = self.last
        server = sum(cpu - last_backends.get(pid, 0.0) for pid, cpu in backends.items())
        self.last = (client, backends)
        return (f"[load avg {os.getloadavg()[0]:.1f}; CPU s: client {client - last_client:.1f}, "
                f"server {server:.1f}]")


def row_by_row(db, table: pa.Table) -> float:
    """Seconds to upsert `table` one INSERT ... ON CONFLICT per row, committed once at the end."""
    cols = table.to_pydict()
    started = time.perf_counter()
    with db.raw() as conn, conn.cursor() as cur:
        for i in range(table.num_rows):
            cur.execute(ROW_BY_ROW_SQL, (
                "ES.v.9", "ES", "1s", cols["ts"][i].timestamp(), cols["trade_date"][i], cols["open"][i],
                cols["high"][i], cols["low"][i], cols["close"][i], cols["volume"][i], cols["trade_count"][i],
                cols["vwap"][i], "panama", "2024-01-01"))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--reload", action="store_true", help="also time replacing the loaded partition")
    parser.add_argument("--workers", type=int, default=None, help="connections filling months at once")
    args = parser.parse_args()

    bench_home = Path(tempfile.mkdtemp(prefix="bench-load-", dir=hdi_home()))
    os.environ.pop("HDI_DATABASE_URL", None)
    from hdi_resources.db import Database, replace, stop_server

    if args.workers:
        replace.LOAD_WORKERS = args.workers
    db = Database(url="", home=bench_home)
    try:
        db.migrate()
        meter = CpuMeter(db.embedded.pid if db.embedded else None)
        print(f"load workers: {replace.LOAD_WORKERS}; {meter.lap()}")
        t0 = time.perf_counter()
        bars = synthetic_bars(args.rows)
        print(f"generated {args.rows:,} bars in {time.perf_counter() - t0:.1f}s")
        partition = {"continuous_symbol": "ES.v.0", "granularity": "1s", "window": "2024-01-01"}
        meter.lap()  # not the generation
        t0 = time.perf_counter()
        result = db.replace_partition("continuous_bars", partition, bars)
        bulk_s = time.perf_counter() - t0
        bulk_rate = result.inserted / bulk_s
        print(f"replace_partition (fresh): {result.inserted:,} rows in {bulk_s:.1f}s "
              f"= {bulk_rate:,.0f} rows/s {meter.lap()}")
        if args.reload:
            t0 = time.perf_counter()
            again = db.replace_partition("continuous_bars", partition, bars)
            reload_s = time.perf_counter() - t0
            print(f"replace_partition (replacing {again.deleted:,} rows): {again.inserted:,} rows in "
                  f"{reload_s:.1f}s = {again.inserted / reload_s:,.0f} rows/s {meter.lap()}")
        sample = bars.slice(0, args.sample)
        other = {**partition, "continuous_symbol": "ES.v.9"}
        db.replace_partition("continuous_bars", other, sample)  # creates its partitions ...
        db.replace_partition("continuous_bars", other, sample.slice(0, 0))  # ... and empties them
        slow_s = row_by_row(db, sample)
        slow_rate = args.sample / slow_s
        print(f"row-by-row INSERT ... ON CONFLICT: {args.sample:,} rows in {slow_s:.1f}s "
              f"= {slow_rate:,.0f} rows/s"
              f" (extrapolated to {args.rows:,}: {args.rows / slow_rate:,.0f}s)")
        print(f"speed-up: {bulk_rate / slow_rate:.1f}x; goal 300,000 rows/s: "
              f"{'met' if bulk_rate >= 300_000 else 'NOT met'}")
    finally:
        db.close()
        if db.embedded is not None:
            stop_server(db.embedded.pid)
        shutil.rmtree(bench_home, ignore_errors=True)


if __name__ == "__main__":
    main()
