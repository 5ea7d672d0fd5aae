"""Lake benchmark: write (publish) and read MB/s of one tick partition on a folder and on an S3-compatible bucket
(moto's server on loopback, so the bucket figure measures the protocol and HDI's path, not a real network).
Prints figures only.

    python bench/bench_lake.py [--rows 2000000] [--repeat 3] [--no-bucket]

MB/s counts the Arrow table's in-memory bytes (what the pipeline hands over), with the zstd file size beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "hdi_tests"))  # the loopback S3 server helper the tests use


def synthetic_ticks(n: int) -> pa.Table:
    """n ES trades as raw_ticks holds them (int64 fixed-point prices, nanosecond times)."""
    rng = np.random.default_rng(7)
    ts = 1_704_067_200_000_000_000 + np.cumsum(rng.integers(1, 50_000_000, n))
    price = 4_500_000_000_000 + np.cumsum(rng.integers(-1, 2, n)) * 250_000_000
    return pa.table({
        "ts_event": ts, "price": price, "size": rng.integers(1, 20, n),
        "instrument_id": np.full(n, 5002, dtype=np.int64),
    })


def measure(label: str, table: pa.Table, repeat: int) -> None:
    from hdi_resources import lake

    mb = table.nbytes / 1e6
    writes, reads = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        lake.write_table(table, "bench_ticks", symbol="ES", window="2024-01-01")
        writes.append(time.perf_counter() - start)
        start = time.perf_counter()
        back = lake.read_table("bench_ticks", symbol="ES", window="2024-01-01")
        reads.append(time.perf_counter() - start)
        assert back.num_rows == table.num_rows
    store = lake.lake_store()
    view = store.info(store.join(store.root, "bench_ticks", "symbol=ES", "window=2024-01-01", "part-0.parquet"))
    print(
        f"{label:<7} {table.num_rows:>11,} rows  {mb:8.1f} MB in memory  {view.size / 1e6:7.1f} MB zstd   "
        f"write {mb / min(writes):8.1f} MB/s   read {mb / min(reads):8.1f} MB/s   (best of {repeat})",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-bucket", action="store_true", help="Only the folder lake.")
    args = parser.parse_args()
    table = synthetic_ticks(args.rows)
    os.environ.pop("HDI_LAKE_URL", None)
    measure("folder", table, args.repeat)
    if args.no_bucket:
        return 0
    try:
        from moto_s3 import start_moto
    except ImportError as exc:
        print(f"bucket: skipped ({exc}; pip install moto[server])")
        return 0
    server = start_moto()
    try:
        os.environ.update(server.env(server.create_bucket()))
        measure("bucket", table, args.repeat)
    finally:
        server.stop()
        for name in server.env("x"):
            os.environ.pop(name, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
