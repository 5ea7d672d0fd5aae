"""Records/s of a vendor trades job: >= 5M trades from the local gateway through the real pipeline (map, two-stage
validation, upsert on the primary key) into the embedded PostgreSQL, against row-by-row inserts.

Starts `hdi replay serve` (synthetic market) as a child process and a private embedded PostgreSQL under
HDI_HOME/bench-vendor (both stopped at the end). Prints figures only, each with the load average and the CPU
seconds spent by this process and by the database server (the machine is shared: compare CPU, not only wall).
Usage: python bench/bench_vendor.py [--days N] [--rowwise N] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import time
from pathlib import Path

import psutil

from hdi_gateway.tls import ensure_certificate

# aiohttp/requests read the CA bundle when imported: trust the gateway certificate first.
_BUNDLE = str(ensure_certificate().bundle_path)
os.environ["REQUESTS_CA_BUNDLE"] = _BUNDLE
os.environ["SSL_CERT_FILE"] = _BUNDLE

import pyarrow as pa  # noqa: E402

from hdi_assets.vendor_schema_jobs.ingest import ingest_records, symbol_labels  # noqa: E402
from hdi_core.vendor_schemas.dbn_files import vendor_rows  # noqa: E402
from hdi_core.vendor_schemas.records import Expectation  # noqa: E402
from hdi_gateway.server import start_gateway_process  # noqa: E402
from hdi_resources.databento import DatabentoResource  # noqa: E402
from hdi_resources.db import Database  # noqa: E402
from hdi_resources.db.server import postgres_root, read_postmaster, stop_embedded_server  # noqa: E402
from hdi_resources.settings import hdi_home  # noqa: E402

SYMBOLS = ["ES.FUT", "NQ.FUT", "GC.FUT"]
START = dt.date(2024, 3, 4)


def server_cpu(home: Path) -> float:
    """CPU seconds of the embedded server so far: postmaster, live backends and exited ones."""
    found = read_postmaster(postgres_root(home) / "data")
    if found is None:
        return 0.0
    try:
        postmaster = psutil.Process(found[0])
        times = postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in postmaster.children(recursive=True):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    except psutil.Error:
        return 0.0
    return total


class Meter:
    """Wall seconds of a step, with the CPU seconds of this process and of the server, and the load average."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __enter__(self) -> Meter:
        self.load = os.getloadavg()[0]
        self.wall, self.cpu, self.server = time.perf_counter(), time.process_time(), server_cpu(self.home)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.server = server_cpu(self.home) - self.server
        self.load = max(self.load, os.getloadavg()[0])

    def cost(self) -> str:
        return (f"[cpu: bench {self.cpu:.1f}s, postgres {self.server:.1f}s; "
                f"load avg {self.load:.2f} of {os.cpu_count()} cpus]")


def rowwise_rate(db: Database, rows: pa.Table) -> float:
    """Rows/s of one INSERT .. ON CONFLICT per row (the naive way) into a scratch copy of trades_data."""
    names = rows.column_names
    records = rows.to_pylist()
    placeholders = ", ".join(["%s"] * len(names))
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE rowwise_trades (LIKE trades_data INCLUDING ALL)")
        statement = (f"INSERT INTO rowwise_trades ({', '.join(names)}) VALUES ({placeholders}) "
                     "ON CONFLICT (instrument_id, ts_event, sequence, price, size, side) DO NOTHING")
        started = time.perf_counter()
        for record in records:
            cur.execute(statement, [record[n] for n in names])
        conn.commit()
        seconds = time.perf_counter() - started
        cur.execute("DROP TABLE rowwise_trades")
    return len(records) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12, help="calendar days of ES+NQ+GC trades (default 12)")
    parser.add_argument("--rowwise", type=int, default=20_000, help="rows for the row-by-row baseline")
    parser.add_argument("--keep", action="store_true", help="keep the bench database folder")
    args = parser.parse_args()

    home = hdi_home() / "bench-vendor"
    shutil.rmtree(home / "postgres", ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    gateway = start_gateway_process(["--port", "0"])
    db = None
    try:
        os.environ.update({"DATABENTO_API_KEY": "db-bench-key", **gateway.client_env()})
        resource = DatabentoResource.from_env(cache_dir=str(home / "cache"), budget_usd=1e9)
        end = START + dt.timedelta(days=args.days)
        with Meter(home) as fetch:
            fetched = resource.get_range("GLBX.MDP3", "trades", SYMBOLS, START.isoformat(), end.isoformat(),
                                         stype_in="parent")
        fetch_s = fetch.seconds
        raw = fetched.table
        raw = raw.append_column("symbol", symbol_labels(raw, fetched.mappings))
        n = raw.num_rows
        print(f"fetched {n:,} trades ({fetched.chunks} chunks, {fetched.from_cache} cached) in {fetch_s:.1f}s "
              f"= {n / fetch_s:,.0f} records/s (gateway, TLS, zstd, decode) {fetch.cost()}")
        if n < 5_000_000:
            print(f"note: fewer than 5M records; raise --days (now {args.days})")
        expect = Expectation(start=fetched_start(START), end=fetched_start(end), symbols=frozenset(SYMBOLS))

        with Meter(home) as validate:
            valid, quarantined = vendor_rows(raw, "trades", dataset="GLBX.MDP3", expect=expect)
        print(f"map + validate: {validate.seconds:.1f}s = {n / validate.seconds:,.0f} records/s "
              f"({valid.num_rows:,} valid, {quarantined.num_rows:,} quarantined) {validate.cost()}")

        db = Database(url="", home=home)
        db.migrate()
        with Meter(home) as first:
            summary = ingest_records(db, raw, "trades", source="bench", dataset="GLBX.MDP3", expect=expect,
                                     partition="bench")
        first_s = first.seconds
        print(f"pipeline, empty table: {summary.line()}")
        print(f"  {first_s:.1f}s = {n / first_s:,.0f} records/s (map + validate + upsert + audit) {first.cost()}")
        with Meter(home) as second:
            again = ingest_records(db, raw, "trades", source="bench", dataset="GLBX.MDP3", expect=expect,
                                   partition="bench")
        print(f"pipeline, re-run (all unchanged): {second.seconds:.1f}s = {n / second.seconds:,.0f} records/s "
              f"(inserted {again.inserted}, updated {again.updated}, unchanged {again.unchanged:,}) "
              f"{second.cost()}")

        sample = valid.slice(0, args.rowwise)
        rowwise = rowwise_rate(db, sample)
        rate = n / first_s
        print(f"row-by-row INSERT baseline ({sample.num_rows:,} rows): {rowwise:,.0f} records/s")
        print(f"RESULT records/s={rate:,.0f} (goal >= 200,000) ratio_vs_row_by_row={rate / rowwise:.1f}x "
              f"end_to_end_with_fetch={n / (first_s + fetch_s):,.0f} records/s")
    finally:
        if db is not None:
            db.close()
        stop_embedded_server(home)
        gateway.stop()
        if not args.keep:
            shutil.rmtree(home / "postgres", ignore_errors=True)


def fetched_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


if __name__ == "__main__":
    main()
