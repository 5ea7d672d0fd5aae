"""The defect catalogue (docs/defect_catalogue.md) as tests: each defect class injected into a real partition run
on the synthetic market fails the named check with the named reason, and no other check.

One clean ES window is materialized through the gateway; each case copies the clean lake into a fresh HDI home,
corrupts the lake input of the step under test (raw ticks, roll events, or the 1 s bars) and materializes the
assets downstream of it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from dagster import AssetsDefinition, DagsterInstance, materialize

from hdi_assets.continuous.assets import ohlcv_1s, ohlcv_bars, panama_adjusted_ticks
from hdi_assets.definitions import PIPELINE_ASSETS, build_resources
from hdi_assets.partitions import partition_key
from hdi_resources import lake
from hdi_resources.db.server import stop_embedded_server

NS = 1_000_000_000
MINUTE = 60 * NS
SYMBOL, WINDOW = "ES", "2024-07-01"
KEYS = {"symbol": SYMBOL, "window": WINDOW}
# 2024-08-14, a Wednesday far from both rolls: 13:30-20:00 UTC are its regular hours (08:30-15:00 CDT)
DAY_UTC = np.datetime64("2024-08-14T00:00", "ns").astype(np.int64)
FROM_TICKS = [panama_adjusted_ticks, ohlcv_1s, ohlcv_bars]


def _ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


@pytest.fixture(scope="module")
def clean_run(synthetic_gateway_env, tmp_path_factory):
    """ES 2024-07-01 materialized from the gateway: (home, result)."""
    home = tmp_path_factory.mktemp("defects_clean")
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"HDI_HOME": str(home), **synthetic_gateway_env}.items():
            env.setenv(name, value)
        try:
            result = materialize(PIPELINE_ASSETS, partition_key=partition_key(SYMBOL, WINDOW),
                                 instance=DagsterInstance.ephemeral(), resources=build_resources(),
                                 raise_on_error=False)
            yield home, result
        finally:
            stop_embedded_server(home)


def failures(result) -> dict[str, list[str]]:
    """'asset:check' -> the reasons of its first violations, for every failed check (WARN included)."""
    out = {}
    for e in result.get_asset_check_evaluations():
        if not e.passed:
            meta = e.metadata.get("first_violations")
            rows = meta.value if meta is not None else []
            out[f"{e.asset_key.to_user_string()}:{e.check_name}"] = sorted({str(r.get("reason")) for r in rows})
    return out


def test_clean_partition_passes_every_check(clean_run):
    home, result = clean_run
    assert failures(result) == {}
    assert result.success
    for table, names in (("ohlcv_1s", 7), ("ohlcv_1m", 2)):  # the 1 s checks; the derived bars' (load input)
        path = home / "lake" / table / f"symbol={SYMBOL}" / f"window={WINDOW}" / "_validation_report.json"
        report = json.loads(path.read_text())
        assert report["passed"] and len(report["checkpoints"]) == names
        assert all({"thresholds", "violations", "severity", "details"} <= set(c) for c in report["checkpoints"])


# ------------------------------------------------------------------------------------------------ corruptions


def _rows(table: pa.Table, mask: np.ndarray) -> pa.Table:
    return table.filter(pa.array(mask))


def _insert(ticks: pa.Table, row: pa.Table) -> pa.Table:
    """`row` inserted where its ts_recv belongs (index-time order kept)."""
    at = int(np.searchsorted(ticks["ts_recv"].to_numpy(), row["ts_recv"].to_numpy()[0], side="right"))
    return pa.concat_tables([ticks.slice(0, at), row.cast(ticks.schema), ticks.slice(at)])


def _row_near(ticks: pa.Table, ts: int) -> int:
    return int(np.searchsorted(ticks["ts_event"].to_numpy(), ts))


def _moved(ticks: pa.Table, i: int, ts: int) -> pa.Table:
    """Row i as a new record at ts (its own ts_recv just after)."""
    row = ticks.slice(i, 1).to_pydict()
    row["ts_event"], row["ts_recv"] = [ts], [ts + 1_000]
    row["sequence"] = [row["sequence"][0] + 7_777_777]
    return pa.table(row, schema=ticks.schema)


def outage(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    ts = ticks["ts_event"].to_numpy()
    gone = (ts >= DAY_UTC + 14 * 60 * MINUTE) & (ts < DAY_UTC + 15 * 60 * MINUTE + 5 * MINUTE)
    assert gone.any()
    return _rows(ticks, ~gone), events


def missing_date(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    ts = ticks["ts_event"].to_numpy()
    # trade date 2024-08-14: from 17:00 CDT on the 13th (22:00 UTC) to 16:00 CDT on the 14th (21:00 UTC)
    gone = (ts >= DAY_UTC - 2 * 60 * MINUTE) & (ts < DAY_UTC + 21 * 60 * MINUTE)
    return _rows(ticks, ~gone), events


def closed_day(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    saturday = _ns("2024-08-17T15:00")
    return _insert(ticks, _moved(ticks, _row_near(ticks, saturday) - 1, saturday)), events


def inside_halt(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    halt = DAY_UTC + 21 * 60 * MINUTE + 30 * MINUTE  # 16:30 CDT: the daily 16:00-17:00 halt
    return _insert(ticks, _moved(ticks, _row_near(ticks, halt) - 1, halt)), events


def fat_finger(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    i = _row_near(ticks, DAY_UTC + 15 * 60 * MINUTE)
    price = ticks["price"].to_numpy().copy()
    price[i] += 400 * 250_000_000  # 100 points above the market, for one print
    return ticks.set_column(ticks.schema.get_field_index("price"), "price", pa.array(price)), events


def delivered_twice(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    i = _row_near(ticks, DAY_UTC + 15 * 60 * MINUTE)
    return pa.concat_tables([ticks.slice(0, i + 1), ticks.slice(i, 1), ticks.slice(i + 1)]), events


def out_of_order(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    i = _row_near(ticks, DAY_UTC + 15 * 60 * MINUTE)
    recv = ticks["ts_recv"].to_numpy()
    i += int(np.flatnonzero(recv[i + 1:] > recv[i:-1])[0])  # two records received at different times
    order = np.arange(ticks.num_rows)
    order[i], order[i + 1] = i + 1, i
    return ticks.take(pa.array(order)), events


def split_trade(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Not a defect: one trade printed as two at the same ts_event (own sequence numbers), volume unchanged."""
    size = ticks["size"].to_numpy()
    i = _row_near(ticks, DAY_UTC + 15 * 60 * MINUTE)
    i += int(np.flatnonzero(size[i:] >= 2)[0])
    first, second = ticks.slice(i, 1).to_pydict(), ticks.slice(i, 1).to_pydict()
    first["size"], second["size"] = [size[i] - 1], [1]
    second["sequence"] = [second["sequence"][0] + 1]
    parts = [ticks.slice(0, i), pa.table(first, schema=ticks.schema), pa.table(second, schema=ticks.schema),
             ticks.slice(i + 1)]
    return pa.concat_tables(parts), events


def back_month_leak(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    first = events.sort_by("switch_ns").slice(0, 1).to_pylist()[0]
    i = _row_near(ticks, DAY_UTC + 15 * 60 * MINUTE)
    later = int(np.flatnonzero(ticks["instrument_id"].to_numpy() == first["new_instrument_id"])[0])
    row = _moved(ticks, later, int(ticks["ts_event"][i].as_py()) + 1)
    spread = first["new_price"] - first["old_price"]
    row = row.set_column(row.schema.get_field_index("price"), "price", pa.array([ticks["price"][i].as_py() + spread]))
    return _insert(ticks, row), events


def _first_roll(events: pa.Table, **changes: Callable[[dict, pa.Table], int]) -> Callable:
    def corrupt(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
        rows = events.sort_by("switch_ns").to_pylist()
        for name, fn in changes.items():
            rows[0][name] = fn(rows[0], ticks)
        return ticks, pa.Table.from_pylist(rows, schema=events.schema)
    return corrupt


def missing_roll(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    return ticks, events.sort_by("switch_ns").slice(1)


def _overnight_gap(roll: dict, ticks: pa.Table) -> int:
    ts, price = ticks["ts_event"].to_numpy(), ticks["price"].to_numpy()
    p = int(np.searchsorted(ts, roll["switch_ns"]))
    return int(price[p] - price[p - 1])  # last old trade vs first new trade: the seed's contaminated gap


def wrong_volume(ticks: pa.Table, events: pa.Table) -> tuple[pa.Table, pa.Table]:
    i = _row_near(ticks, DAY_UTC + 15 * 60 * MINUTE)
    size = ticks["size"].to_numpy().copy()
    size[i] += 3
    return ticks.set_column(ticks.schema.get_field_index("size"), "size", pa.array(size)), events


def spanning_bar(bars: pa.Table) -> pa.Table:
    """A 1 s bar stamped half a second before a close: it runs past the end of its session."""
    ts = bars["ts_event"].to_numpy().copy()
    close = DAY_UTC + 21 * 60 * MINUTE  # 16:00 CDT
    k = int(np.searchsorted(ts, close)) - 1
    ts[k] = close - NS // 2
    return bars.set_column(bars.schema.get_field_index("ts_event"), "ts_event", pa.array(ts))


def nan_vwap(bars: pa.Table) -> pa.Table:
    vwap = bars["vwap"].to_numpy().copy()
    vwap[len(vwap) // 2] = np.nan
    return bars.set_column(bars.schema.get_field_index("vwap"), "vwap", pa.array(vwap))


TICK_CASES = {
    "hour-long outage in regular hours": (outage, "ohlcv_1s:timestamp_continuity",
                                          "silence inside regular hours longer than the limit"),
    "missing trade date": (missing_date, "ohlcv_1s:timestamp_continuity", "trade date the exchange had is missing"),
    "tick on a closed day": (closed_day, "ohlcv_1s:session_alignment", "outside every session: closed day"),
    "tick inside a halt": (inside_halt, "ohlcv_1s:session_alignment", "outside every session: inside a halt"),
    "fat-finger print": (fat_finger, "ohlcv_1s:ohlc_integrity", "bad tick: far outside its neighbours, reverts"),
    "record delivered twice": (delivered_twice, "ohlcv_1s:timestamp_continuity", "record delivered twice"),
    "records out of index-time order": (out_of_order, "ohlcv_1s:timestamp_continuity",
                                        "record out of index-time (ts_recv) order"),
    "back-month trade leaking in": (back_month_leak, "panama_adjusted_ticks:roll_continuity",
                                    "instrument change without a roll event"),
    "missing roll event": (missing_roll, "panama_adjusted_ticks:roll_continuity",
                           "instrument change without a roll event"),
    "wrong-sign gap": (_first_roll(None, roll_gap=lambda r, t: -r["roll_gap"]),
                       "panama_adjusted_ticks:roll_continuity", "gap has the wrong sign"),
    "overnight-contaminated gap": (_first_roll(None, roll_gap=_overnight_gap), "panama_adjusted_ticks:roll_continuity",
                                   "gap measured across the overnight move (last old trade vs first new trade)"),
    "unadjusted roll": (_first_roll(None, roll_gap=lambda r, t: 0), "panama_adjusted_ticks:roll_continuity",
                        "roll left unadjusted"),
    "volume not matching the exchange": (wrong_volume, "ohlcv_1s:volume_reconciliation",
                                         "tick volume differs from the exchange's cleared volume"),
}
BAR_CASES = {
    "bar spanning sessions": (spanning_bar, "ohlcv_bars:session_alignment", "ends after its session closes"),
    "NaN/inf in a derived column": (nan_vwap, "ohlcv_bars:no_nan_or_inf", "null, NaN or inf value"),
}


def _copy_lake(clean_home: Path, home: Path, table: str) -> None:
    for window in (clean_home / "lake" / table / f"symbol={SYMBOL}").iterdir():
        shutil.copytree(window, home / "lake" / table / f"symbol={SYMBOL}" / window.name)


def _run(clean_run, tmp_path, monkeypatch, tables: dict[str, pa.Table], assets: list[AssetsDefinition]):
    clean_home, _ = clean_run
    home = tmp_path / "home"
    for table in ("raw_ticks", "roll_events", "panama_adjusted_ticks", "ohlcv_1s"):
        _copy_lake(clean_home, home, table)
    monkeypatch.setenv("HDI_HOME", str(home))
    for name, table in tables.items():
        lake.write_table(table, name, **KEYS)
    try:
        return materialize(assets, partition_key=partition_key(SYMBOL, WINDOW), instance=DagsterInstance.ephemeral(),
                           resources=build_resources(), raise_on_error=False)
    finally:
        stop_embedded_server(home)


def _clean(clean_run, table: str) -> pa.Table:
    clean_home, _ = clean_run
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HDI_HOME", str(clean_home))
        return lake.read_table(table, **KEYS)


@pytest.mark.parametrize("defect", list(TICK_CASES))
def test_tick_defect_fails_its_check_only(defect, clean_run, tmp_path, monkeypatch):
    corrupt, check, reason = TICK_CASES[defect]
    ticks, events = corrupt(_clean(clean_run, "raw_ticks"), _clean(clean_run, "roll_events"))
    result = _run(clean_run, tmp_path, monkeypatch, {"raw_ticks": ticks, "roll_events": events}, FROM_TICKS)
    assert failures(result) == {check: [reason]}, defect
    assert not result.success


@pytest.mark.parametrize("defect", list(BAR_CASES))
def test_bar_defect_fails_its_check_only(defect, clean_run, tmp_path, monkeypatch):
    corrupt, check, reason = BAR_CASES[defect]
    result = _run(clean_run, tmp_path, monkeypatch, {"ohlcv_1s": corrupt(_clean(clean_run, "ohlcv_1s"))},
                  [ohlcv_bars])
    assert failures(result) == {check: [reason]}, defect


def test_trades_sharing_a_timestamp_are_not_a_defect(clean_run, tmp_path, monkeypatch):
    ticks, events = split_trade(_clean(clean_run, "raw_ticks"), _clean(clean_run, "roll_events"))
    result = _run(clean_run, tmp_path, monkeypatch, {"raw_ticks": ticks, "roll_events": events}, FROM_TICKS)
    assert failures(result) == {} and result.success
