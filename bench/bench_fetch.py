"""Records/s of fetching a large synthetic trades request through the local gateway, decoded to columns.

Starts `hdi replay serve` as a child process, asks for ALL_SYMBOLS trades over enough sessions for >= 5M
records with the unmodified databento client, then decodes the DBNStore into NumPy (`to_ndarray`) and Arrow.
Two sources: the synthetic market (default volume; includes generating the ticks) and `--data` over a DBN
file holding the same records (isolates the gateway, TLS, zstd and decoding).
Prints figures only.
Usage: python bench/bench_fetch.py [--days N] [--repeat N] [--source synthetic|files|both]
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

from hdi_resources.replay.dbn import encode_stream  # noqa: E402
from hdi_resources.replay.server import parse_time, start_gateway_process  # noqa: E402
from hdi_resources.settings import hdi_home  # noqa: E402


def to_arrow(records: np.ndarray) -> pa.Table:
    """One Arrow column per record field (prices stay int64 fixed point)."""
    return pa.table(
        {
            name: pa.array(np.ascontiguousarray(records[name]))
            for name in records.dtype.names
            if not name.startswith("_")
        }
    )


def write_dbn_folder(start: str, end: str) -> str:
    """The synthetic request's records as one DBN file under hdi_home()/bench, for the --data gateway."""
    from hdi_resources.replay.synthetic import SyntheticMarket

    folder = hdi_home() / "bench" / f"trades-{start}-{end}"
    path = folder / "trades.dbn"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        s_ns, e_ns = parse_time("start", start)[0], parse_time("end", end)[0]
        records = SyntheticMarket(seed=7).records("GLBX.MDP3", "trades", None, s_ns, e_ns)
        data = encode_stream(
            "GLBX.MDP3",
            "trades",
            records,
            s_ns,
            e_ns,
            ["ALL_SYMBOLS"],
            "raw_symbol",
            "instrument_id",
            None,
            None,
        )
        path.with_suffix(".tmp").write_bytes(data)
        path.with_suffix(".tmp").rename(path)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", default="2024-03-04")
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source", choices=("synthetic", "files", "both"), default="both")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    start = np.datetime64(args.start, "D")
    end = start + np.timedelta64(args.days, "D")
    if args.source in ("synthetic", "both"):
        run("synthetic market", [], str(start), str(end), args.repeat)
    if args.source in ("files", "both"):
        run(
            "DBN file (--data)",
            ["--data", write_dbn_folder(str(start), str(end))],
            str(start),
            str(end),
            args.repeat,
        )


def run(label: str, serve_args: list[str], start: str, end: str, repeat: int) -> None:
    gateway = start_gateway_process(serve_args)
    try:
        client = db.Historical("db-bench", gateway=gateway.url)
        request = {"dataset": "GLBX.MDP3", "start": start, "end": end, "schema": "trades"}
        print(f"{label}: ALL_SYMBOLS trades {start}..{end}", flush=True)
        for attempt in range(repeat):
            t0 = time.perf_counter()
            store = client.timeseries.get_range(**request)
            t1 = time.perf_counter()
            records = store.to_ndarray()
            t2 = time.perf_counter()
            table = to_arrow(records)
            t3 = time.perf_counter()
            n = len(records)
            mb = n * records.dtype.itemsize / 1e6
            print(
                f"run {attempt + 1}: {n:,} records ({mb:,.0f} MB DBN) | fetch {t1 - t0:.2f} s "
                f"({n / (t1 - t0) / 1e6:.2f} M rec/s) | to_ndarray {t2 - t1:.2f} s | arrow {t3 - t2:.2f} s "
                f"({table.num_columns} cols) | fetch+decode {n / (t2 - t0) / 1e6:.2f} M rec/s | "
                f"fetch+decode+arrow {n / (t3 - t0) / 1e6:.2f} M rec/s",
                flush=True,
            )
    finally:
        gateway.stop()


if __name__ == "__main__":
    main()
