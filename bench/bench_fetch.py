"""Records/s of fetching a large synthetic trades request through the local gateway, decoded into Arrow columns.

The measured path is the product's own: `DatabentoResource.get_range` (the unmodified `databento.Historical`
client over TLS to `hdi replay serve` in a child process, zstd body, decode into one Arrow table, disk cache).
Three cases, each split into where the time goes:
  (a) cold     - fresh gateway process: it generates the synthetic ticks (get_cost counts them, get_range
                 encodes and compresses them) and the resource's disk cache is empty;
  (b) warm     - the same request again with an empty resource cache: the gateway streams the compressed
                 body it kept from (a) (its body cache; like Databento serving stored data, NOT generating);
  (c) cache    - the same request once more: the resource reads its own .dbn.zst cache file, no network.
For comparison: the raw client (`timeseries.get_range` + `DBNStore.to_ndarray` + Arrow) against the warm
gateway, and `--source files` serves the same records from a DBN file (`--data`).
Times are wall seconds; `cpu` is this process's CPU seconds, `gw cpu` the gateway process's (the box is
shared, so wall >> cpu means we waited for a core). Prints figures only.
Usage: python bench/bench_fetch.py [--days N] [--repeat N] [--source synthetic|files|both] [--no-raw]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hdi_gateway.tls import ensure_certificate

# aiohttp/requests read the CA bundle when imported: trust the gateway certificate first.
_BUNDLE = str(ensure_certificate().bundle_path)
os.environ["REQUESTS_CA_BUNDLE"] = _BUNDLE
os.environ["SSL_CERT_FILE"] = _BUNDLE

import databento as db  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

import hdi_core.dbn as codec_module  # noqa: E402
import hdi_resources.databento.resource as resource_module  # noqa: E402
from hdi_core.dbn import encode_stream  # noqa: E402
from hdi_gateway.server import Gateway, parse_time, start_gateway_process  # noqa: E402
from hdi_resources.databento import DatabentoResource  # noqa: E402
from hdi_resources.settings import hdi_home  # noqa: E402

DATASET = "GLBX.MDP3"
GOAL_RECORDS_PER_S = 5e6


class StageTimer:
    """Wall seconds spent inside the resource's decode stages, by patching the functions it calls."""

    STAGES: tuple[tuple[Any, str, str], ...] = (  # (module, function, stage)
        (codec_module, "decompress", "decompress"),
        (codec_module, "decode_dbn", "view"),
        (resource_module, "_concat_tables", "columns"),
    )

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)  # wall; "<stage> cpu" holds CPU seconds
        self._originals: dict[str, Callable[..., Any]] = {}

    def install(self) -> None:
        for module, name, stage in self.STAGES:
            original = getattr(module, name)
            self._originals[name] = original
            setattr(module, name, self._timed(original, stage))
        original_price = DatabentoResource._price
        self._originals["_price"] = original_price
        DatabentoResource._price = self._timed(original_price, "cost")  # type: ignore[method-assign]

    def _timed(self, fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - t0
                self.seconds[f"{stage} cpu"] += time.process_time() - c0

        return timed

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        self.seconds.clear()
        out: dict[str, float] = {}
        yield out
        out.update(self.seconds)


def process_cpu_s(pid: int | None) -> float:
    """User+system CPU seconds of another process (Linux /proc), 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def write_dbn_folder(start: str, end: str) -> str:
    """The synthetic request's records as one DBN file under hdi_home()/bench, for the --data gateway."""
    from hdi_gateway.synthetic import SyntheticMarket

    folder = hdi_home() / "bench" / f"trades-{start}-{end}"
    path = folder / "trades.dbn"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        s_ns, e_ns = parse_time("start", start)[0], parse_time("end", end)[0]
        records = SyntheticMarket(seed=7).records(DATASET, "trades", None, s_ns, e_ns)
        data = encode_stream(
            DATASET, "trades", records, s_ns, e_ns, ["ALL_SYMBOLS"], "raw_symbol", "instrument_id", None, None
        )
        path.with_suffix(".tmp").write_bytes(data)
        path.with_suffix(".tmp").rename(path)
    return str(folder)


def raw_to_arrow(records: np.ndarray) -> pa.Table:
    """The obvious client-side conversion: one contiguous copy per field, then Arrow."""
    return pa.table(
        {name: pa.array(np.ascontiguousarray(records[name])) for name in records.dtype.names if name != "length"}
    )


def resource_run(
    label: str, gateway: Gateway, cache_dir: Path, start: str, end: str, timer: StageTimer
) -> dict[str, float]:
    resource = DatabentoResource(
        api_key="db-bench", gateway=gateway.url, ca_path=str(gateway.ca_path), cache_dir=str(cache_dir),
        budget_usd=1_000.0,
    )
    gw_cpu0, cpu0 = process_cpu_s(gateway.pid), time.process_time()
    with timer.measure() as stages:
        t0 = time.perf_counter()
        result = resource.get_range(DATASET, "trades", None, start, end)
        wall = time.perf_counter() - t0
    cpu, gw_cpu = time.process_time() - cpu0, process_cpu_s(gateway.pid) - gw_cpu0
    n = result.table.num_rows
    decode = sum(stages.get(k, 0.0) for k in ("decompress", "view", "columns"))
    decode_cpu = sum(stages.get(f"{k} cpu", 0.0) for k in ("decompress", "view", "columns"))
    cost, cost_cpu = stages.get("cost", 0.0), stages.get("cost cpu", 0.0)
    fetch, fetch_cpu = wall - decode - cost, cpu - decode_cpu - cost_cpu
    print(
        f"  {label:5s} {n:,} rec | wire {result.bytes / 1e6:5.1f} MB | wall {wall:5.2f} s = cost {cost:4.2f} + "
        f"fetch {fetch:4.2f} + decode {decode:4.2f} (zstd {stages.get('decompress', 0):.2f}, view "
        f"{stages.get('view', 0):.2f}, columns {stages.get('columns', 0):.2f}) | client cpu {cpu:4.2f} s = fetch "
        f"{fetch_cpu:4.2f} + decode {decode_cpu:4.2f} (zstd {stages.get('decompress cpu', 0):.2f}, columns "
        f"{stages.get('columns cpu', 0):.2f}); gw cpu {gw_cpu:4.2f} s | {n / wall / 1e6:4.2f} M rec/s wall, "
        f"{n / max(cpu + gw_cpu, 1e-9) / 1e6:4.1f} M rec/cpu-s (decode alone {n / max(decode_cpu, 1e-9) / 1e6:4.1f})",
        flush=True,
    )
    return {"n": n, "wall": wall, "cost": cost, "fetch": fetch, "decode": decode, "cpu": cpu + gw_cpu}


def raw_client_run(gateway: Gateway, start: str, end: str) -> None:
    client = db.Historical("db-bench", gateway=gateway.url)
    t0 = time.perf_counter()
    store = client.timeseries.get_range(dataset=DATASET, start=start, end=end, schema="trades")
    t1 = time.perf_counter()
    records = store.to_ndarray()
    t2 = time.perf_counter()
    table = raw_to_arrow(records)
    t3 = time.perf_counter()
    n = table.num_rows
    print(
        f"  raw client (warm gw): {n:,} rec | fetch {t1 - t0:.2f} s | to_ndarray {t2 - t1:.2f} s | arrow "
        f"{t3 - t2:.2f} s | {n / (t3 - t0) / 1e6:.2f} M rec/s",
        flush=True,
    )


def run(label: str, serve_args: list[str], start: str, end: str, repeat: int, raw: bool, timer: StageTimer) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{label}: ALL_SYMBOLS trades {start}..{end} via DatabentoResource.get_range "
          f"({os.cpu_count()} cores, load average {load})", flush=True)
    gateway = start_gateway_process(serve_args)
    try:
        with tempfile.TemporaryDirectory(dir=hdi_home()) as scratch:
            cold = resource_run("cold", gateway, Path(scratch) / "cold", start, end, timer)
            warm = [resource_run("warm", gateway, Path(scratch) / f"warm{i}", start, end, timer) for i in range(repeat)]
            hits = [resource_run("cache", gateway, Path(scratch) / "warm0", start, end, timer) for _ in range(repeat)]
            if raw:
                raw_client_run(gateway, start, end)
        summarize(cold, warm, hits)
    finally:
        gateway.stop()


def summarize(cold: dict[str, float], warm: list[dict[str, float]], hits: list[dict[str, float]]) -> None:
    def best(runs: list[dict[str, float]]) -> dict[str, float]:
        return min(runs, key=lambda r: r["wall"])

    n = cold["n"]
    for label, r in (("cold", cold), ("warm", best(warm)), ("cache", best(hits))):
        parts = {"cost call (gw counts records)": r["cost"], "fetch (HTTP/TLS, cache write)": r["fetch"],
                 "decode (zstd + columns)": r["decode"]}
        top = max(parts, key=lambda k: parts[k])
        verdict = "meets" if n / r["wall"] >= GOAL_RECORDS_PER_S else "misses"
        print(f"  -> {label}: best {n / r['wall'] / 1e6:.2f} M rec/s wall ({verdict} the 5 M goal), "
              f"{n / r['cpu'] / 1e6:.1f} M rec per cpu-s (client + gateway); dominated by {top} "
              f"({parts[top] / r['wall']:.0%} of wall)")
    if len(warm) > 1:
        print(f"  -> warm median {n / statistics.median(r['wall'] for r in warm) / 1e6:.2f} M rec/s, cache-hit median "
              f"{n / statistics.median(r['wall'] for r in hits) / 1e6:.2f} M rec/s")
    print("  note: wall figures depend on what else runs on this shared box; cpu-s figures much less so.")
    print("  note: 'warm' means the gateway already holds this exact request's compressed body in memory (served "
          "like stored data); any other range or symbol set is cold. 'cache' never touches the network.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", default="2024-03-04")
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source", choices=("synthetic", "files", "both"), default="synthetic")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw-client comparison")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    start = np.datetime64(args.start, "D")
    end = start + np.timedelta64(args.days, "D")
    timer = StageTimer()
    timer.install()
    if args.source in ("synthetic", "both"):
        run("synthetic market", [], str(start), str(end), args.repeat, not args.no_raw, timer)
    if args.source in ("files", "both"):
        folder = write_dbn_folder(str(start), str(end))
        run("DBN file (--data)", ["--data", folder], str(start), str(end), args.repeat, not args.no_raw, timer)


if __name__ == "__main__":
    main()
