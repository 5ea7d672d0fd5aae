"""Benchmark of the live gateway (`hdi replay live --speed max`): messages/s it sustains to one client.

The gateway runs as its own process (as in use), serving the synthetic market at default volume. Two readers:
  - the unmodified databento.Live client (iterating records: one Python object per record on its side),
  - a bare socket reader that authenticates with the same CRAM and counts DBN bytes (the gateway's own ceiling).
Prints records/s and MB/s over a fixed wall time, after a warm-up (the first windows include generating the
sessions' data, the book for mbo/mbp: seconds per product, not the gateway's streaming speed).

    python bench/bench_live_gateway.py [--seconds 10] [--warmup 8] [--schemas trades,mbo] [--symbols ALL_SYMBOLS]
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import sys
import time
from pathlib import Path

import databento as db

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hdi_gateway.live import DEFAULT_LIVE_KEY, start_live_process  # noqa: E402

DATASET = "GLBX.MDP3"
RECORD_BYTES = {"trades": 48, "tbbo": 80, "mbp-1": 80, "mbp-10": 368, "mbo": 56}


def with_client(port: int, schema: str, symbols: str, seconds: float, warmup: float) -> tuple[int, float]:
    client = db.Live(DEFAULT_LIVE_KEY, gateway="127.0.0.1", port=port)
    client.subscribe(DATASET, schema, symbols)
    count, first, began = 0, None, None
    for _record in client:
        count += 1
        if count & 0x3FF:
            continue
        now = time.perf_counter()
        first = first or now
        if began is None and now - first >= warmup:
            began, count = now, 0
        if began is not None and now - began >= seconds:
            break
    elapsed = time.perf_counter() - (began or time.perf_counter())
    client.terminate()
    return count, elapsed


def with_socket(port: int, schema: str, symbols: str, seconds: float, warmup: float) -> tuple[int, float]:
    """Bytes a bare reader receives: the gateway's throughput without a Python object per record."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    stream = sock.makefile("rb")
    stream.readline()  # greeting
    challenge = stream.readline().decode().strip().partition("=")[2]
    digest = hashlib.sha256(f"{challenge}|{DEFAULT_LIVE_KEY}".encode()).hexdigest()
    sock.sendall(f"auth={digest}-{DEFAULT_LIVE_KEY[-5:]}|dataset={DATASET}|encoding=dbn|ts_out=0\n".encode())
    if not stream.readline().startswith(b"success=1"):
        raise SystemExit("bench: authentication refused")
    sock.sendall(f"schema={schema}|stype_in=raw_symbol|symbols={symbols}\nstart_session=0\n".encode())
    total, first, began = 0, None, None
    while True:
        chunk = stream.read1(1 << 20)
        if not chunk:
            break
        now = time.perf_counter()
        first = first or now
        if began is None and now - first >= warmup:
            began, total = now, 0
        total += len(chunk)
        if began is not None and now - began >= seconds:
            break
    elapsed = time.perf_counter() - (began or time.perf_counter())
    sock.close()
    return total, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--schemas", default="trades,mbo")
    parser.add_argument("--symbols", default="ALL_SYMBOLS")
    parser.add_argument("--at", default="2024-03-05T14:30")  # the US cash open: the busiest stretch
    args = parser.parse_args()
    print(f"live gateway at speed max, {args.symbols} from {args.at}, {args.seconds:g} s per figure after "
          f"{args.warmup:g} s of warm-up")
    for schema in args.schemas.split(","):
        size = RECORD_BYTES.get(schema, 48)
        for name, run in (("databento.Live client", with_client), ("bare socket reader", with_socket)):
            gateway = start_live_process(["--at", args.at, "--speed", "max"])
            try:
                amount, elapsed = run(gateway.port, schema, args.symbols, args.seconds, args.warmup)
            finally:
                gateway.stop()
            records = amount if run is with_client else amount // size
            mb = amount * size / 1e6 if run is with_client else amount / 1e6
            print(f"  {schema:7s} {name:22s} {records / elapsed:12,.0f} records/s  {mb / elapsed:8.1f} MB/s  "
                  f"({records:,} records in {elapsed:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
