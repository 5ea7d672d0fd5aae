"""Benchmark of the continuous-futures chain: raw ticks -> adjusted -> 1 s bars -> all checks.

Generates one partition (default 20 M ticks, ~6 months of Globex sessions, 2 rolls with both contracts
trading around each roll), writes it as Arrow IPC under HDI_HOME/bench, then runs the chain in a child
process so peak memory is the chain's alone (psutil samples RSS every 2 ms; ru_maxrss as a cross-check).
Prints ticks/s end to end, per-stage timings, peak memory vs the raw Arrow size, and the speed-up over a
straightforward pandas version of seed 000's algorithm timed on a subset and extrapolated per tick.

    python bench/bench_continuous.py [--ticks 20000000] [--pandas-ticks 2000000] [--runs 3]

Two child processes share a fresh NUMBA_CACHE_DIR: the first compiles the kernels (compile time shown),
the second loads them from the cache and is the one reported as "cold process" and "steady state".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hdi_core import checks as validation
from hdi_core.calendar import NS, Sessions, calendar_sessions
from hdi_core.config.checks import thresholds_for
from hdi_core.continuous import adjust, bars, rolls
from hdi_resources.settings import hdi_home

TICK = 250_000_000
START = np.datetime64("2024-01-02", "ns").astype(np.int64).item()
END = np.datetime64("2024-07-01", "ns").astype(np.int64).item()
ES_CALENDAR = "CME Globex Equity"


def es_sessions(start_ns: int, end_ns: int):
    return calendar_sessions(ES_CALENDAR, start_ns, end_ns)


CONTRACTS = [(101, "ESH4"), (202, "ESM4"), (303, "ESU4")]
SWITCH_DATES = ["2024-03-10", "2024-06-16"]  # Sundays: the UTC midnight of each new mapping interval


def generate(n: int, seed: int = 1) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    """Ticks of the continuous symbol, the switches and both contracts' settlements before each roll."""
    rng = np.random.default_rng(seed)
    sessions = es_sessions(START, END)
    keep = (sessions.open_ns >= START) & (sessions.close_ns <= END)
    opens, closes = sessions.open_ns[keep], sessions.close_ns[keep]
    # ~70 % of trades in the 6.5 h of regular hours (08:30-15:00 CT = open + 15.5 h), the rest spread out
    per_session = rng.multinomial(n, np.full(len(opens), 1 / len(opens)))
    k = np.repeat(np.arange(len(opens)), per_session)
    regular = rng.random(n) < 0.7
    length = closes[k] - opens[k]
    offset = np.where(regular, 55_800 * NS + (rng.random(n) * 23_400 * NS).astype(np.int64),
                      (rng.random(n) * length).astype(np.int64))
    # a short (holiday) session gets its 'regular hours' trades spread over it, not piled into its last second
    offset = np.where(offset < length, offset, (rng.random(n) * length).astype(np.int64))
    ts = np.sort(opens[k] + offset)
    del k, regular, length, offset
    steps = rng.integers(-1, 2, n, dtype=np.int8)
    front = 4700 * NS + np.cumsum(steps, dtype=np.int64) * TICK
    del steps
    switch_ns = np.array([np.datetime64(d, "ns").astype(np.int64) for d in SWITCH_DATES], dtype=np.int64)
    contract = np.searchsorted(switch_ns, ts, side="right")
    spread = np.array([0, 55, 105]) * NS  # each deferred contract trades above the front (carry)
    price = front + spread[contract]
    size = rng.integers(1, 20, n, dtype=np.int64)
    ids = np.array([c[0] for c in CONTRACTS], dtype=np.int64)
    symbols = pa.DictionaryArray.from_arrays(pa.array(contract.astype(np.int32)),
                                             pa.array([c[1] for c in CONTRACTS])).cast(pa.string())
    ticks = pa.table({"ts_event": ts, "price": price, "size": size, "instrument_id": ids[contract],
                      "raw_symbol": symbols, "ts_recv": ts + 20_000,  # index time, as Databento's ts_recv
                      "sequence": np.arange(n, dtype=np.int64)})
    switches = rolls.switches_from_mappings([("2024-01-01", SWITCH_DATES[0], int(ids[0])),
                                             (SWITCH_DATES[0], SWITCH_DATES[1], int(ids[1])),
                                             (SWITCH_DATES[1], "2024-09-01", int(ids[2]))])
    # settlements of both contracts for the last session before each switch, at the same moment
    rows = {"instrument_id": [], "trade_date": [], "price": []}
    for r, sw in enumerate(switch_ns):
        s = int(np.searchsorted(sessions.close_ns, sw, side="right")) - 1
        last_front = front[np.searchsorted(ts, sessions.close_ns[s]) - 1]
        for c in (r, r + 1):
            rows["instrument_id"].append(int(ids[c]))
            rows["trade_date"].append(sessions.trade_date[s].astype(object))
            rows["price"].append(int(last_front + spread[c]))
    settlements = pa.table({"instrument_id": pa.array(rows["instrument_id"], pa.int64()),
                            "trade_date": pa.array(rows["trade_date"], pa.date32()),
                            "price": pa.array(rows["price"], pa.int64())})
    return ticks, switches, settlements, pa.table({"s": [0]})


def _arrow_nbytes(table: pa.Table) -> int:
    return int(table.nbytes)


class PeakRss:
    """Samples this process's RSS every 2 ms in a thread (NumPy temporaries come and go in milliseconds)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Stages(dict[str, float]):
    """Wall and CPU seconds per stage (CPU time shows what other processes on the 2 shared cores cost us)."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: dict[str, float] = {}

    def time(self, name: str, work: Callable[[], Any]) -> Any:
        w, c = time.perf_counter(), time.process_time()
        result = work()
        self[name], self.cpu[name] = time.perf_counter() - w, time.process_time() - c
        return result


def run_chain(ticks: pa.Table, events: pa.Table, per_check: bool = False) -> Stages:
    """raw -> adjusted -> 1 s bars -> the five checkpoints as ohlcv_1s runs them (with the ticks: bad ticks,
    record order; calendar coverage, silences, return outliers; configs/checks.yaml's ES thresholds) +
    adjustment checks. The reconciliations fetch from Databento and are not part of the compute benchmark."""
    sessions = es_sessions(START, END)
    limits = thresholds_for("ES")
    t = Stages()
    adjusted = t.time("adjust", lambda: adjust.adjust_ticks(ticks, events))
    price_ticks = pa.table({"ts_event": adjusted["ts_event"], "price": adjusted["adjusted_price"],
                            "size": adjusted["size"]})
    one = t.time("bars_1s", lambda: bars.ohlcv_1s(price_ticks, sessions))
    iid = adjusted["instrument_id"].to_numpy()
    ts = adjusted["ts_event"].to_numpy()
    # the calendar the ticks cover whole (the warm-up run takes a slice): coverage and silences against it
    whole = (sessions.open_ns >= ts[0]) & (sessions.close_ns <= ts[-1])
    covered = Sessions(sessions.open_ns[whole], sessions.close_ns[whole], sessions.trade_date[whole])
    expected = np.unique(covered.trade_date)
    explained = np.unique(np.concatenate([events["switch_ns"].to_numpy(), ts[np.flatnonzero(iid[1:] != iid[:-1]) + 1]]))
    cont = limits.continuity
    jobs: dict[str, Callable[[], validation.CheckOutcome]] = {  # run_checkpoints' order
        "session_alignment": lambda: validation.session_alignment(one, sessions, NS),
        "ohlc_integrity": lambda: validation.ohlc_integrity(one, adjusted, TICK, limits.bad_tick.min_jump_ticks,
                                                            limits.bad_tick.jump_sigmas),
        "indicator_sanity": lambda: validation.indicator_sanity(
            one, limits.indicators.period, explained_ns=explained, tick_size=TICK,
            max_return_sigmas=limits.indicators.max_return_sigmas, session=one["session_id"].to_numpy()),
        "timestamp_continuity": lambda: validation.timestamp_continuity(
            one, sessions, NS, False, expected_dates=expected, regular_minutes=cont.regular_minutes,
            max_silence_minutes=cont.max_silence_minutes, ticks=adjusted, calendar=covered),
        "no_nan_or_inf": lambda: validation.no_nan_or_inf(one),
        "within_contract_changes": lambda: validation.within_contract_changes(
            adjusted["price"].to_numpy(), adjusted["adjusted_price"].to_numpy(),
            adjusted["instrument_id"].to_numpy()),
        "roll_continuity": lambda: validation.roll_continuity(adjusted, None, events),
    }
    if per_check:  # each alone, for the per-check figures (not part of the chain's time)
        for name, job in jobs.items():
            t.time(f"  {name}", job)
    # as the assets run them: side by side on the cores (the kernels release the GIL)
    outcomes = t.time("checks", lambda: validation.run_side_by_side(list(jobs.values())))
    for name, outcome in zip(jobs, outcomes, strict=True):
        if not outcome.passed:
            raise SystemExit(f"check {name} failed on the generated partition: {outcome.first_violations[:3]}")
    t["bars"] = one.num_rows
    return t


def pandas_seed(ticks: pa.Table, events: pa.Table) -> float:
    """Seed 000's algorithm in plain pandas: mask-subtract per roll, groupby-resample, pandas checks."""
    import pandas as pd

    t0 = time.perf_counter()
    df = ticks.select(["ts_event", "price", "size"]).to_pandas()
    df.index = pd.to_datetime(df.pop("ts_event"), utc=True)
    df["price"] = df["price"] / 1e9
    for sw, gap in zip(events["switch_ns"].to_pylist()[::-1], events["roll_gap"].to_pylist()[::-1],
                       strict=True):  # one pass per roll, as the seed
        mask = df.index < pd.Timestamp(sw, tz="UTC")
        df.loc[mask, "price"] += gap / 1e9
    session = (df.index.to_series().diff() > pd.Timedelta("5min")).cumsum()
    grouped = df.groupby(session.values).resample("1s")
    ohlcv = grouped.agg({"price": ["first", "max", "min", "last"], "size": "sum"}).dropna()
    ohlcv.columns = ["open", "high", "low", "close", "volume"]
    ok = ((ohlcv.high >= ohlcv[["open", "close", "low"]].max(axis=1)) &
          (ohlcv.low <= ohlcv[["open", "close"]].min(axis=1))).all()
    close = ohlcv.close
    delta = close.diff()
    rsi = 100 - 100 / (1 + delta.clip(lower=0).ewm(alpha=1 / 14).mean() /
                       (-delta.clip(upper=0)).ewm(alpha=1 / 14).mean())
    checks = [ok, close.rolling(14).mean().dropna().between(ohlcv.low.min(), ohlcv.high.max()).all(),
              close.ewm(span=14).mean().notna().all(), rsi.dropna().between(0, 100).all(),
              ohlcv.index.get_level_values(1).is_monotonic_increasing, not ohlcv.isna().any().any()]
    del checks
    return time.perf_counter() - t0


def child(path: str, pandas_ticks: int, runs: int) -> None:
    import psutil

    with pa.OSFile(path) as f:
        ticks = pa.ipc.open_file(f).read_all()
    with pa.OSFile(path + ".rolls") as f:
        events = pa.ipc.open_file(f).read_all()
    t0 = time.perf_counter()
    run_chain(ticks.slice(0, 200_000), events)  # compiles every kernel, or loads it from numba's cache
    warmup_s = time.perf_counter() - t0
    raw_bytes = _arrow_nbytes(ticks)
    base_rss = psutil.Process().memory_info().rss
    with PeakRss() as peak:
        t0 = time.perf_counter()
        cold = run_chain(ticks, events)
        total = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    steady: list[tuple[float, Stages]] = []
    for _ in range(runs):  # same process again: freed pages come back without the VM's first-touch cost
        t0 = time.perf_counter()
        stages = run_chain(ticks, events)
        steady.append((time.perf_counter() - t0, stages))
    best_s, best = min(steady, key=lambda r: r[0])
    detail = run_chain(ticks, events, per_check=True)  # each check alone, shown under the side-by-side total
    best.update({k: v for k, v in detail.items() if k.startswith("  ")})
    best.cpu.update({k: v for k, v in detail.cpu.items() if k.startswith("  ")})
    pandas_s = pandas_seed(ticks.slice(0, pandas_ticks), events) if pandas_ticks else 0.0
    print(json.dumps({"ticks": ticks.num_rows, "raw_bytes": raw_bytes, "warmup_s": warmup_s, "total_s": total,
                      "stages": cold, "cpu": cold.cpu,
                      "steady_s": best_s, "steady_all": [r[0] for r in steady], "steady_stages": best,
                      "steady_cpu": best.cpu, "peak_delta": peak.peak - base_rss,
                      "maxrss_delta": maxrss - base_rss, "pandas_s": pandas_s,
                      "pandas_ticks": min(pandas_ticks, ticks.num_rows)}))


def _run_child(path: Path, cache_dir: Path, pandas_ticks: int, runs: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_CACHE_DIR": str(cache_dir)}
    command = [sys.executable, __file__, "--child", str(path), "--pandas-ticks", str(pandas_ticks),
               "--runs", str(runs)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_stages(n: int, wall: dict[str, float], cpu: dict[str, float]) -> None:
    for name, secs in wall.items():
        if name != "bars":
            print(f"  {name:<28} {secs:8.3f} s wall {cpu[name]:8.3f} s cpu  "
                  f"({n / secs / 1e6:7.1f} M ticks/s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=20_000_000)
    ap.add_argument("--pandas-ticks", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3, help="steady-state runs after the cold one (best shown)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.pandas_ticks, args.runs)
        return
    out_dir = hdi_home() / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"continuous_{args.ticks}.arrow"
    t0 = time.perf_counter()
    ticks, switches, settlements, _ = generate(args.ticks)
    events = rolls.gaps_from_settlements(switches, settlements, es_sessions(START - 7 * 86_400 * NS, END))
    for table, target in ((ticks, path), (events, Path(str(path) + ".rolls"))):
        with pa.OSFile(str(target), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table)
    print(f"generated {ticks.num_rows:,} ticks, {events.num_rows} rolls "
          f"(gaps {[g / NS for g in events['roll_gap'].to_pylist()]}) in {time.perf_counter() - t0:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    del ticks
    cache_dir = out_dir / "numba_cache"  # a fresh cache: the first child compiles, the second loads it
    shutil.rmtree(cache_dir, ignore_errors=True)
    first = _run_child(path, cache_dir, 0, 1)
    r = _run_child(path, cache_dir, args.pandas_ticks, args.runs)
    n, total = r["ticks"], r["total_s"]
    print(f"kernels: compile {first['warmup_s']:.2f} s in a first "
          f"process, cache load {r['warmup_s']:.2f} s in a later one (warm-up run on 200k ticks included)")
    print(f"cold process (cached kernels), first run, fresh memory: {total:.3f} s for {n:,} ticks = "
          f"{n / total / 1e6:.1f} M ticks/s ({r['stages']['bars']:,} 1 s bars)")
    _print_stages(n, r["stages"], r["cpu"])
    steady = r["steady_s"]
    print(f"steady state (best of {len(r['steady_all'])} more runs in that process: "
          f"{', '.join(f'{s:.3f}' for s in r['steady_all'])} s): {steady:.3f} s = "
          f"{n / steady / 1e6:.1f} M ticks/s")
    _print_stages(n, r["steady_stages"], r["steady_cpu"])
    print(f"first process (compiling) cold run: {first['total_s']:.3f} s = "
          f"{n / first['total_s'] / 1e6:.1f} M ticks/s, then {first['steady_s']:.3f} s = "
          f"{n / first['steady_s'] / 1e6:.1f} M ticks/s")
    raw = r["raw_bytes"]
    peak = max(r["peak_delta"], r["maxrss_delta"])
    print(f"raw Arrow {raw / 2**20:,.0f} MiB; peak extra RSS of the cold run "
          f"{r['peak_delta'] / 2**20:,.0f} MiB sampled, {r['maxrss_delta'] / 2**20:,.0f} MiB ru_maxrss "
          f"-> {peak / raw:.2f}x the raw size")
    per_tick_pandas = r["pandas_s"] / r["pandas_ticks"]
    print(f"pandas seed algorithm: {r['pandas_s']:.2f} s for {r['pandas_ticks']:,} ticks = "
          f"{1 / per_tick_pandas / 1e6:.2f} M ticks/s, extrapolated {per_tick_pandas * n:.1f} s for {n:,} "
          f"-> speed-up {per_tick_pandas * n / total:.0f}x cold, {per_tick_pandas * n / steady:.0f}x steady")
    for p in (path, Path(str(path) + ".rolls")):
        p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
