"""Records/s of fetching a large synthetic trades request through the local gateway and decoding it to columns.

Starts `hdi replay serve` (synthetic market, default volume) as a child process, asks for ALL_SYMBOLS trades
over enough sessions for >= 5M records with the unmodified databento client, then decodes the DBNStore into
NumPy (`to_ndarray`) and Arrow. Prints figures only. Usage: python bench/bench_fetch.py [--days N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

from hdi_resources.replay.tls import ensure_certificate

# aiohttp/requests read the CA bundle when imported: trust the gateway certificate first.
_BUNDLE = str(ensure_certificate().bundle_path)
os.environ["REQUESTS_CA_BUNDLE"] = _BUNDLE
os.environ["SSL_CERT_FILE"] = _BUNDLE

import databento as db  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from hdi_resources.replay.server import start_gateway_process  # noqa: E402


def to_arrow(records: np.ndarray) -> pa.Table:
    """One Arrow column per record field (prices stay int64 fixed point)."""
    return pa.table({name: pa.array(np.ascontiguousarray(records[name])) for name in records.dtype.names
                     if not name.startswith("_")})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", default="2024-03-04")
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    gateway = start_gateway_process([])
    try:
        client = db.Historical("db-bench", gateway=gateway.url)
        start = np.datetime64(args.start, "D")
        end = start + np.timedelta64(args.days, "D")
        request = {"dataset": "GLBX.MDP3", "start": str(start), "end": str(end), "schema": "trades"}
        print(f"request: ALL_SYMBOLS trades {start}..{end}")
        for attempt in range(args.repeat):
            t0 = time.perf_counter()
            store = client.timeseries.get_range(**request)
            t1 = time.perf_counter()
            records = store.to_ndarray()
            t2 = time.perf_counter()
            table = to_arrow(records)
            t3 = time.perf_counter()
            n = len(records)
            mb = n * records.dtype.itemsize / 1e6
            print(f"run {attempt + 1}: {n:,} records ({mb:,.0f} MB DBN) | fetch {t1 - t0:.2f} s "
                  f"({n / (t1 - t0) / 1e6:.2f} M rec/s) | to_ndarray {t2 - t1:.2f} s | arrow {t3 - t2:.2f} s "
                  f"({table.num_columns} cols) | fetch+decode {n / (t2 - t0) / 1e6:.2f} M rec/s | "
                  f"fetch+decode+arrow {n / (t3 - t0) / 1e6:.2f} M rec/s")
    finally:
        gateway.stop()


if __name__ == "__main__":
    main()
