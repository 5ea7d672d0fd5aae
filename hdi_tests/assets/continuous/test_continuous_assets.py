"""The continuous-futures graph end to end through Dagster, with the local gateway as the Databento source."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dagster import AssetKey, DagsterInstance, materialize
from exchange_oracle import trade_date_of

from hdi_assets.definitions import PIPELINE_ASSETS, build_resources
from hdi_assets.partitions import LATER_WINDOWS, partition_key, symbol_windows
from hdi_resources import lake
from hdi_resources.db.server import stop_embedded_server

NS = 1_000_000_000
WINDOWS = ("2024-01-01", "2024-07-01")
CHECKPOINTS = {
    "session_alignment",
    "ohlc_integrity",
    "indicator_sanity",
    "timestamp_continuity",
    "no_nan_or_inf",
}


@pytest.fixture(scope="module")
def built_es(synthetic_gateway_env, tmp_path_factory):
    """ES materialized for two consecutive windows, later window first (what a backfill of both does)."""
    home = tmp_path_factory.mktemp("hdi_home")
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"HDI_HOME": str(home), **synthetic_gateway_env}.items():
            env.setenv(name, value)
        instance = DagsterInstance.ephemeral()
        results = {}
        try:
            for window in sorted(WINDOWS, reverse=True):
                results[window] = materialize(
                    PIPELINE_ASSETS,
                    partition_key=partition_key("ES", window),
                    instance=instance,
                    resources=build_resources(),
                )
            yield home, instance, results
        finally:
            stop_embedded_server(home)


def test_every_checkpoint_passes_per_partition(built_es):
    _, _, results = built_es
    for window, result in results.items():
        assert result.success, window
        evaluations = result.get_asset_check_evaluations()
        names = {e.check_name for e in evaluations if e.asset_key == AssetKey("ohlcv_1s")}
        assert names == CHECKPOINTS | {"volume_reconciliation", "ohlcv_1m_reconciliation"}
        bar_checks = {e.check_name for e in evaluations if e.asset_key == AssetKey("ohlcv_bars")}
        assert bar_checks == {"session_alignment", "no_nan_or_inf"}
        assert all(e.passed for e in evaluations), [
            (e.check_name, e.metadata) for e in evaluations if not e.passed
        ]
        report = json.loads(
            (
                lake.partition_dir("ohlcv_1s", symbol="ES", window=window) / "_validation_report.json"
            ).read_text()
        )
        assert report and all(entry["passed"] for entry in report["checkpoints"])
        by_name = {entry["checkpoint"]: entry for entry in report["checkpoints"]}
        # each check lists its thresholds and counts (configs/checks.yaml)
        assert by_name["timestamp_continuity"]["thresholds"]["max_silence_minutes"] == 30
        assert by_name["timestamp_continuity"]["details"]["missing_trade_dates"] == 0
        assert by_name["ohlc_integrity"]["thresholds"]["min_jump_ticks"] == 40
        assert by_name["volume_reconciliation"]["details"]["dates_with_cleared_volume"] > 0
        assert by_name["ohlcv_1m_reconciliation"]["severity"] == "warn"
        assert by_name["ohlcv_1m_reconciliation"]["details"]["minutes_compared"] > 0


def test_roll_gap_is_the_same_moment_settlement_difference(built_es, synthetic_market):
    """Each ES roll's gap equals new - old settlement of the last session before the switch; not last-vs-first."""
    events = lake.read_table("roll_events", symbol="ES", window="2024-01-01").to_pylist()
    assert [(e["old_raw_symbol"], e["new_raw_symbol"]) for e in events] == [
        ("ESH4", "ESM4"),
        ("ESM4", "ESU4"),
    ]
    stats = synthetic_market.records(
        "GLBX.MDP3", "statistics", None, (events[0]["switch_ns"] - 10 * 86_400 * NS), events[-1]["switch_ns"]
    )
    settle = stats[stats["stat_type"] == 3]
    ticks = lake.read_table("raw_ticks", symbol="ES", window="2024-01-01")
    ref_days = settle["ts_ref"].astype("datetime64[ns]").astype("datetime64[D]")

    def settlement(iid: int, day: np.datetime64) -> int:
        return int(settle["price"][(settle["instrument_id"] == iid) & (ref_days == day)][-1])

    for event in events:
        assert event["method"] == "settlement"
        ref_day = np.datetime64(event["reference_trade_date"], "D")
        assert event["old_price"] == settlement(event["old_instrument_id"], ref_day)
        assert event["new_price"] == settlement(event["new_instrument_id"], ref_day)
        assert event["roll_gap"] == event["new_price"] - event["old_price"]
        # The reference session closed before the switch, both contracts priced at that same close.
        assert event["reference_ns"] < event["switch_ns"]
        last_old = ticks.filter(pc.less(ticks["ts_event"], event["switch_ns"]))["price"][-1].as_py()
        first_new = ticks.filter(pc.greater_equal(ticks["ts_event"], event["switch_ns"]))["price"][0].as_py()
        assert event["roll_gap"] != first_new - last_old  # the seed's overnight-contaminated gap


def test_backward_adjustment_joins_contracts_and_keeps_the_newest(built_es):
    """Adjusted = raw + sum of later gaps (every later window's too); the newest contract is unchanged."""
    rolls_all = [
        r for w in WINDOWS for r in lake.read_table("roll_events", symbol="ES", window=w).to_pylist()
    ]
    for window in WINDOWS:
        table = lake.read_table("panama_adjusted_ticks", symbol="ES", window=window)
        ts, raw, adj = (table[c].to_numpy() for c in ("ts_event", "price", "adjusted_price"))
        expected = raw.copy()
        for r in rolls_all:  # plain loop: independent of adjust.py's searchsorted/cumsum
            expected[ts < r["switch_ns"]] += r["roll_gap"]
        assert np.array_equal(adj, expected)
    latest = lake.read_table("panama_adjusted_ticks", symbol="ES", window=WINDOWS[-1])
    newest = latest.filter(pc.greater_equal(latest["ts_event"], rolls_all[-1]["switch_ns"]))
    assert newest.num_rows and newest["price"].equals(newest["adjusted_price"])


def test_bars_never_mix_sessions_and_match_the_ticks(built_es):
    window = WINDOWS[0]
    bars = lake.read_table("ohlcv_1s", symbol="ES", window=window)
    ticks = lake.read_table("panama_adjusted_ticks", symbol="ES", window=window)
    # Against the exchange's own calendar (pandas_market_calendars directly, not HDI's calendar code).
    ts = bars["ts_event"].to_numpy()
    trade_dates = trade_date_of("ES", ts)
    assert not np.isnat(trade_dates).any()
    assert (trade_date_of("ES", ts + NS - 1) == trade_dates).all()  # no bar runs past a segment's end
    assert int(pc.sum(bars["volume"]).as_py()) == int(pc.sum(ticks["size"]).as_py())
    assert int(pc.sum(bars["trade_count"]).as_py()) == ticks.num_rows
    daily = lake.read_table("ohlcv_1d", symbol="ES", window=window)
    assert daily["trade_date"].to_numpy().astype("datetime64[D]").tolist() == np.unique(trade_dates).tolist()


def test_later_windows_mapping_marks_only_older_windows():
    """roll_events of window W feed the adjustment of W and every earlier window, never a later one."""
    upstream = LATER_WINDOWS.get_upstream_mapped_partitions_result_for_partitions(
        symbol_windows.subset_with_partition_keys([partition_key("ES", "2024-01-01")]),
        symbol_windows,
        symbol_windows,
    ).partitions_subset.get_partition_keys()
    windows = {k.keys_by_dimension["window"] for k in upstream}
    symbols = {k.keys_by_dimension["symbol"] for k in upstream}
    assert symbols == {"ES"} and "2024-01-01" in windows and "2024-07-01" in windows
    assert all(w >= "2024-01-01" for w in windows)


def test_two_windows_from_the_dagster_cli(synthetic_gateway_env, tmp_path):
    """`dagster asset materialize` over two consecutive ES windows, the gateway as source."""
    env = {**os.environ, "HDI_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path), **synthetic_gateway_env}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    selection = ",".join(a.key.to_user_string() for a in PIPELINE_ASSETS)
    try:
        for window in sorted(WINDOWS, reverse=True):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dagster",
                    "asset",
                    "materialize",
                    "-m",
                    "hdi_assets.definitions",
                    "--select",
                    selection,
                    "--partition",
                    f"ES|{window}",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            assert (
                tmp_path / "lake" / "ohlcv_1s" / "symbol=ES" / f"window={window}" / "part-0.parquet"
            ).exists()
    finally:
        stop_embedded_server(tmp_path)


def test_lake_is_readable_by_pyarrow_polars_and_duckdb(built_es):
    """The lake is plain Hive-partitioned Parquet with int64 fixed-point prices."""
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds

    root = lake.lake_root() / "raw_ticks"
    expected = sum(lake.read_table("raw_ticks", symbol="ES", window=w).num_rows for w in WINDOWS)
    arrow = ds.dataset(root, format="parquet", partitioning="hive").to_table(filter=ds.field("symbol") == "ES")
    assert arrow.num_rows == expected and arrow.schema.field("price").type == "int64"
    frame = pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True).filter(pl.col("symbol") == "ES")
    assert frame.select(pl.len()).collect().item() == expected
    rows = duckdb.sql(
        f"SELECT \"window\", count(*) FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning = true) "
        "WHERE symbol = 'ES' GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert [str(w) for w, _ in rows] == list(WINDOWS) and sum(n for _, n in rows) == expected


def test_corrupted_ticks_fail_the_right_checkpoint_and_nothing_downstream_runs(built_es, tmp_path, monkeypatch):
    """Trades printed inside the daily halt (one of size 0) make bars outside any session with zero volume:
    session alignment and OHLC integrity fail, blocking, so ohlcv_bars and the database load never run.
    (NaN, duplicate-second and high-below-low bars cannot come from ticks; test_continuous_validation feeds them
    to the checkpoints directly.)"""
    from hdi_assets.continuous.assets import ohlcv_1s, ohlcv_bars, panama_adjusted_ticks
    from hdi_assets.storage.assets import continuous_bars_table

    window = "2024-07-01"
    raw = lake.read_table("raw_ticks", symbol="ES", window=window)
    events = lake.read_table("roll_events", symbol="ES", window=window)
    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    halt = 1_719_955_800 * NS  # 2024-07-02 16:30 CT: inside the daily 16:00-17:00 halt
    bad = raw.slice(0, 2).to_pydict()
    bad["ts_event"] = [halt + NS // 2, halt + 300 * NS]
    bad["size"] = [1, 0]
    corrupted = pa.concat_tables([raw, pa.table(bad, schema=raw.schema)]).sort_by("ts_event")
    lake.write_table(corrupted, "raw_ticks", symbol="ES", window=window)
    lake.write_table(events, "roll_events", symbol="ES", window=window)
    result = materialize(
        [panama_adjusted_ticks, ohlcv_1s, ohlcv_bars, continuous_bars_table],
        partition_key=partition_key("ES", window),
        instance=DagsterInstance.ephemeral(),
        resources=build_resources(),
        raise_on_error=False,
    )
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert {"session_alignment", "ohlc_integrity"} <= failed
    assert not failed & {"indicator_sanity", "no_nan_or_inf"}
    made = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "ohlcv_1s" in made and not made & {"ohlcv_bars", "continuous_bars_table"}


def test_every_trade_date_and_daily_bar_comes_from_one_contract(built_es):
    """The series switches at the open of the trade date Databento switches in (not at its 00:00 UTC), so no
    trade date of the exchange's calendar (read from the library, not HDI) mixes two contracts."""
    for window in WINDOWS:
        ticks = lake.read_table("raw_ticks", symbol="ES", window=window)
        events = lake.read_table("roll_events", symbol="ES", window=window).to_pylist()
        days = trade_date_of("ES", ticks["ts_event"].to_numpy())
        ids = ticks["instrument_id"].to_numpy()
        per_day = {d: set(ids[days == d].tolist()) for d in np.unique(days)}
        assert all(len(contracts) == 1 for contracts in per_day.values()), window
        assert len({c for contracts in per_day.values() for c in contracts}) == len(events) + 1
        for event in events:  # both instants recorded: HDI's at a trade-date open, before Databento's
            assert event["switch_ns"] < event["databento_switch_ns"]
            assert trade_date_of("ES", np.array([event["switch_ns"]]))[0] == \
                trade_date_of("ES", np.array([event["databento_switch_ns"]]))[0]
            before = ticks.filter(pc.less(ticks["ts_event"], event["switch_ns"]))["instrument_id"].to_numpy()
            after = ticks.filter(pc.greater_equal(ticks["ts_event"], event["switch_ns"]))["instrument_id"].to_numpy()
            assert event["new_instrument_id"] not in set(before.tolist())
            assert event["old_instrument_id"] not in set(after.tolist())
