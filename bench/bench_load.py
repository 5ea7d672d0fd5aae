"""Bulk-load benchmark: one-second bars through replace_partition into a fresh range and again over the
loaded range (a reload), on the embedded PostgreSQL (native partitioning) and, when a TimescaleDB URL is
given (--timescale-url, else HDI_TEST_TIMESCALE_URL), on TimescaleDB in a scratch database created and
dropped there (a loaded window is compressed, so its reload goes into compressed chunks; the compression
ratio of continuous_bars, as `hdi db info` reports it, is printed after the first load and its reload); then
row-by-row INSERT ... ON CONFLICT measured on a sample and extrapolated.

    python bench/bench_load.py [--rows 5000000] [--sample 20000] [--no-reload] [--workers 2] [--repeat 1]
                               [--timescale-url postgresql://...] [--timescale-rows 2000000]

The machine is shared, so each figure comes with the 1-minute load average and the CPU seconds spent by
this process and by the server's backends when it runs on this machine (what the load costs, whatever the
neighbours do; a shared TimescaleDB server's count includes its other databases' work), and --repeat N
prints the best of N (each repeat a year later, so still a fresh range):

    HDI_TEST_TIMESCALE_URL=postgresql://postgres@127.0.0.1:5433/hdi python bench/bench_load.py --repeat 3"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

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


FRESH_GOAL = 500_000  # rows/s of a load into a fresh range, on either backend
PARTITION = {"continuous_symbol": "ES.v.0", "granularity": "1s", "window": "2024-01-01"}


def shifted(bars: pa.Table, days: int) -> pa.Table:
    """The same bars `days` later (a fresh range for a repeated measurement)."""
    ts = bars.column("ts").cast(pa.int64()).to_numpy() + days * 86_400_000_000_000
    trade_date = bars.column("trade_date").cast(pa.int32()).to_numpy() + days
    moved = bars.set_column(bars.schema.get_field_index("ts"), "ts", pa.array(ts, pa.timestamp("ns", tz="UTC")))
    return moved.set_column(moved.schema.get_field_index("trade_date"), "trade_date",
                            pa.array(trade_date).cast(pa.date32()))


def time_loads(db, label: str, bars: pa.Table, reload: bool, meter: CpuMeter, repeat: int = 1) -> float:
    """Load `bars` into a fresh range, then (reload) over it again, `repeat` times (each a year later); prints
    every figure and, repeated, the best (the machine is shared); returns the best fresh rate. A small load of
    another symbol years earlier goes first: the figures are a running process's, without its one-time costs
    (imports, the validation kernels' JIT cache, the table catalogue read)."""
    warm = {**PARTITION, "continuous_symbol": "WARM.v.0", "window": "2020-01-01"}
    db.replace_partition("continuous_bars", warm, synthetic_bars(1_000, start_unix=1_577_836_800))
    fresh_rates: list[float] = []
    reload_rates: list[float] = []
    into = " into compressed chunks" if db.storage_mode == "timescaledb" else ""
    for i in range(repeat):
        part = {**PARTITION, "window": str(dt.date.fromisoformat(PARTITION["window"]) + dt.timedelta(days=366 * i))}
        rows = shifted(bars, 366 * i) if i else bars
        meter.lap()  # not what came before
        t0 = time.perf_counter()
        result = db.replace_partition("continuous_bars", part, rows)
        fresh_s = time.perf_counter() - t0
        fresh_rates.append(result.inserted / fresh_s)
        print(f"{label} replace_partition (fresh range): {result.inserted:,} rows in {fresh_s:.1f}s "
              f"= {fresh_rates[-1]:,.0f} rows/s {meter.lap()}", flush=True)
        if db.storage_mode == "timescaledb" and i == 0:
            print(f"{label} {compression_summary(db)}", flush=True)
        if reload:
            t0 = time.perf_counter()
            again = db.replace_partition("continuous_bars", part, rows)
            reload_s = time.perf_counter() - t0
            reload_rates.append(again.inserted / reload_s)
            print(f"{label} replace_partition (reload{into}, replacing {again.deleted:,} rows): {again.inserted:,} "
                  f"rows in {reload_s:.1f}s = {reload_rates[-1]:,.0f} rows/s {meter.lap()}", flush=True)
            if db.storage_mode == "timescaledb" and i == 0:
                print(f"{label} after the reload: {compression_summary(db)}", flush=True)
    best = max(fresh_rates)
    print(f"{label} best of {repeat}: fresh {best:,.0f} rows/s"
          + (f", reload{into} {max(reload_rates):,.0f} rows/s" if reload_rates else "")
          + f"; goal {FRESH_GOAL:,} rows/s fresh: {'met' if best >= FRESH_GOAL else 'NOT met'}", flush=True)
    return best


def compression_summary(db) -> str:
    """continuous_bars' chunks (compressed / all) and compression ratio, as `hdi db info` reports them."""
    from hdi_resources.db.compression import compression_sizes

    with db.raw() as conn, conn.cursor() as cur:
        bars = compression_sizes(cur)["continuous_bars"]
    after = bars["after_compression_bytes"]
    ratio = bars["before_compression_bytes"] / after if after else 0.0
    return (f"continuous_bars: {bars['compressed_chunks']} of {bars['chunks']} chunks compressed, "
            f"{bars['before_compression_bytes'] / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB "
            f"(compression ratio {ratio:.1f}x)")


def scratch_timescale_url(url: str) -> tuple[str, Any]:
    """A new database with TimescaleDB on the server `url` names; returns its URL and a function dropping it."""
    import psycopg2
    from sqlalchemy.engine import make_url

    from hdi_resources.db.core import url_string

    name = f"hdi_bench_load_{os.getpid()}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    scratch = url_string(make_url(url).set(database=name))
    conn = psycopg2.connect(scratch)
    conn.autocommit = True
    conn.cursor().execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    conn.close()

    def drop() -> None:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()

    return scratch, drop


def local_postmaster(db) -> int | None:
    """The pid of the server's postmaster when it runs on this machine (its backends' CPU is then counted,
    every database's: the figure is only clean on an otherwise idle server), else None."""
    import psutil

    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    try:
        proc = psutil.Process(backend)
        return proc.ppid() if "postgres" in proc.name() else None
    except psutil.Error:
        return None


def bench_timescale(url: str, bars: pa.Table, reload: bool, repeat: int = 1) -> None:
    """The same loads on TimescaleDB (hypertable continuous_bars), in a scratch database."""
    from hdi_core.errors import HdiError
    from hdi_resources.db import Database

    scratch, drop = scratch_timescale_url(url)
    db = Database(url=scratch)
    try:
        db.migrate()
        time_loads(db, "timescaledb", bars, reload, CpuMeter(local_postmaster(db)), repeat)
    except HdiError as exc:
        print(f"timescaledb: FAILED: {exc}")
    finally:
        db.close()
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--no-reload", dest="reload", action="store_false", help="skip timing a reload")
    parser.add_argument("--repeat", type=int, default=1, help="measure each load this many times, print the best")
    parser.add_argument("--workers", type=int, default=None, help="connections filling months at once")
    parser.add_argument("--timescale-url", default=os.environ.get("HDI_TEST_TIMESCALE_URL", ""),
                        help="a PostgreSQL server with TimescaleDB to bench as well (a scratch database there)")
    parser.add_argument("--timescale-rows", type=int, default=2_000_000,
                        help="bars loaded on TimescaleDB (its reload is slow: keeps make bench within minutes)")
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
        bulk_rate = time_loads(db, "native", bars, args.reload, meter, args.repeat)
        sample = bars.slice(0, args.sample)
        other = {**PARTITION, "continuous_symbol": "ES.v.9"}
        db.replace_partition("continuous_bars", other, sample)  # creates its partitions ...
        db.replace_partition("continuous_bars", other, sample.slice(0, 0))  # ... and empties them
        slow_s = row_by_row(db, sample)
        slow_rate = args.sample / slow_s
        print(f"row-by-row INSERT ... ON CONFLICT: {args.sample:,} rows in {slow_s:.1f}s "
              f"= {slow_rate:,.0f} rows/s"
              f" (extrapolated to {args.rows:,}: {args.rows / slow_rate:,.0f}s); native speed-up: "
              f"{bulk_rate / slow_rate:.1f}x", flush=True)
    finally:
        db.close()
        if db.embedded is not None:
            stop_server(db.embedded.pid)
        shutil.rmtree(bench_home, ignore_errors=True)
    if args.timescale_url:
        bench_timescale(args.timescale_url, bars.slice(0, args.timescale_rows), args.reload, args.repeat)
    else:
        print("timescaledb: not measured (give --timescale-url or set HDI_TEST_TIMESCALE_URL)")


if __name__ == "__main__":
    main()
