"""Schedules' run requests for given dates, and the roll-staleness sensor over a real Dagster event log."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    MetadataValue,
    RunRequest,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from hdi_assets.automation.definitions import defs as automation_defs
from hdi_assets.automation.jobs import readjust_window_job, refresh_window_job
from hdi_assets.automation.schedules import closed_window_schedule, daily_open_window_schedule
from hdi_assets.automation.sensors import ADJUSTED, ROLL_EVENTS, roll_staleness_sensor
from hdi_assets.definitions import defs
from hdi_assets.partitions import ROLL_HASH_METADATA, products, symbol_windows
from hdi_core.digest import table_digest

CHICAGO = ZoneInfo("America/Chicago")
SYMBOLS = sorted(products())


def _keys(requests: list[RunRequest]) -> list[str]:
    return sorted(str(r.partition_key) for r in requests)


def _daily(when: dt.datetime) -> list[RunRequest]:
    return list(daily_open_window_schedule(build_schedule_context(scheduled_execution_time=when)))


def _closed(when: dt.datetime) -> list[RunRequest]:
    return list(closed_window_schedule(build_schedule_context(scheduled_execution_time=when)))


def test_automation_is_part_of_the_code_location():
    Definitions.validate_loadable(defs)
    assert {s.name for s in automation_defs.schedules} == {"daily_open_window_schedule", "closed_window_schedule"}
    assert defs.get_sensor_def("roll_staleness_sensor").job_name == "readjust_window"
    assert defs.resolve_job_def("refresh_window").tags["hdi/databento"] == "fetch"
    # The readjustment never fetches from Databento.
    readjust = {k.to_user_string() for k in defs.resolve_job_def("readjust_window").asset_layer.executable_asset_keys}
    assert "raw_ticks" not in readjust and "roll_events" not in readjust


def test_daily_schedule_runs_after_the_cme_close_on_trading_days():
    assert daily_open_window_schedule.cron_schedule == "30 17 * * 1-5"
    assert daily_open_window_schedule.execution_timezone == "America/Chicago"
    assert daily_open_window_schedule.job_name == refresh_window_job.name


@pytest.mark.parametrize(
    ("when", "window"),
    [
        (dt.datetime(2024, 3, 15, 17, 30, tzinfo=CHICAGO), "2024-01-01"),
        (dt.datetime(2024, 6, 28, 17, 30, tzinfo=CHICAGO), "2024-01-01"),  # last trade date of H1 2024
        (dt.datetime(2024, 7, 1, 17, 30, tzinfo=CHICAGO), "2024-07-01"),  # first trade date of H2 2024
        (dt.datetime(2024, 12, 31, 17, 30, tzinfo=CHICAGO), "2024-07-01"),  # 23:30 UTC, still Dec 31 in Chicago
    ],
)
def test_daily_schedule_refreshes_the_open_window_of_every_symbol(when, window):
    requests = _daily(when)
    assert _keys(requests) == sorted(f"{s}|{window}" for s in SYMBOLS)
    for request in requests:
        # The open window is a real partition at that moment (end_offset=1), not one the UI would reject.
        assert str(request.partition_key) in symbol_windows.get_partition_keys(current_time=when)
        assert request.tags["hdi/trigger"] == "daily_open_window"
    # One run per symbol per day: the run key makes a re-evaluated tick launch nothing twice.
    assert len({r.run_key for r in requests}) == len(SYMBOLS)
    assert {r.run_key for r in requests}.isdisjoint(r.run_key for r in _daily(when + dt.timedelta(days=1)))


@pytest.mark.parametrize(
    ("when", "window"),
    [
        (dt.datetime(2024, 7, 3, 6, 0, tzinfo=dt.UTC), "2024-01-01"),
        (dt.datetime(2025, 1, 3, 6, 0, tzinfo=dt.UTC), "2024-07-01"),
    ],
)
def test_six_month_schedule_refreshes_the_window_that_just_closed(when, window):
    assert closed_window_schedule.cron_schedule == "0 6 3 1,7 *"
    requests = _closed(when)
    assert _keys(requests) == sorted(f"{s}|{window}" for s in SYMBOLS)
    for request in requests:
        assert str(request.partition_key) in symbol_windows.get_partition_keys(current_time=when)


def test_six_month_schedule_skips_before_the_first_window():
    first = symbol_windows.get_partitions_def_for_dimension("window").start
    result = closed_window_schedule(build_schedule_context(scheduled_execution_time=first + dt.timedelta(days=2)))
    assert isinstance(result, SkipReason)


# ------------------------------------------------------------------------------------- roll staleness


def _roll(instance, key: str, rows: str, rolls: int = 1, shown: str = "") -> None:
    """A roll_events materialization whose roll rows are `rows` (their digest), displayed as `shown`."""
    instance.report_runless_asset_event(
        AssetMaterialization(
            ROLL_EVENTS,
            partition=key,
            metadata={
                "rolls": rolls,
                "roll_table": MetadataValue.md(shown or rows),
                ROLL_HASH_METADATA: table_digest(pa.table({"rows": [rows]})),
            },
        )
    )


def _adjusted(instance, key: str) -> None:
    instance.report_runless_asset_event(AssetMaterialization(ADJUSTED, partition=key))


def _evaluate(instance, cursor: str | None) -> SensorResult | SkipReason:
    return roll_staleness_sensor(build_sensor_context(instance=instance, cursor=cursor))


def test_a_new_roll_requests_the_older_adjusted_windows_of_that_symbol_only():
    with instance_for_test() as instance:
        # ES and NQ built for H1 and H2 2024, later windows first (as a backfill does).
        for symbol in ("ES", "NQ"):
            _roll(instance, f"{symbol}|2024-07-01", "| ESU4 -> ESZ4 |")
            _adjusted(instance, f"{symbol}|2024-07-01")
            _roll(instance, f"{symbol}|2024-01-01", "| ESH4 -> ESM4 |")
            _adjusted(instance, f"{symbol}|2024-01-01")
        first = _evaluate(instance, None)
        assert isinstance(first, SensorResult) and first.run_requests == []  # all built after their rolls

        # The still-open window H1 2025 gets its first roll: every built ES window before it is stale.
        _roll(instance, "ES|2025-01-01", "| ESZ4 -> ESH5 |")
        second = _evaluate(instance, first.cursor)
        assert _keys(second.run_requests) == ["ES|2024-01-01", "ES|2024-07-01"]
        assert {r.job_name for r in second.run_requests} == {readjust_window_job.name}
        assert int(second.cursor) > int(first.cursor)

        # A daily refresh that finds the same rolls launches nothing.
        _roll(instance, "ES|2025-01-01", "| ESZ4 -> ESH5 |")
        third = _evaluate(instance, second.cursor)
        assert third.run_requests == []

        # A first materialization without any roll changes nothing either.
        _roll(instance, "NQ|2025-01-01", "", rolls=0)
        assert _evaluate(instance, third.cursor).run_requests == []


def test_a_changed_roll_requests_its_own_and_earlier_windows_once_readjusted_they_are_fresh():
    with instance_for_test() as instance:
        for window in ("2024-07-01", "2024-01-01"):
            _roll(instance, f"ES|{window}", f"rolls of {window}")
            _adjusted(instance, f"ES|{window}")
        cursor = _evaluate(instance, None).cursor
        # Only roll_events[ES|2024-07-01] re-materialized with a new roll (e.g. from the UI).
        _roll(instance, "ES|2024-07-01", "rolls of 2024-07-01, one more")
        result = _evaluate(instance, cursor)
        assert _keys(result.run_requests) == ["ES|2024-01-01", "ES|2024-07-01"]
        # The readjustment ran: nothing is stale any more, even re-reading the same roll change.
        _adjusted(instance, "ES|2024-07-01")
        _adjusted(instance, "ES|2024-01-01")
        assert _evaluate(instance, cursor).run_requests == []


def test_only_the_roll_rows_decide_not_their_display():
    with instance_for_test() as instance:
        _roll(instance, "ES|2024-07-01", "ESU4 -> ESZ4 gap 12.25", shown="| ESU4 -> ESZ4 | +12.25 |")
        _adjusted(instance, "ES|2024-07-01")
        _roll(instance, "ES|2024-01-01", "ESH4 -> ESM4")
        _adjusted(instance, "ES|2024-01-01")
        cursor = _evaluate(instance, None).cursor
        # A cosmetic change of the rendered table with the same rows launches nothing.
        _roll(instance, "ES|2024-07-01", "ESU4 -> ESZ4 gap 12.25", shown="ESU4 to ESZ4, gap 12.25 points")
        cosmetic = _evaluate(instance, cursor)
        assert cosmetic.run_requests == []
        # A sub-cent change of a gap, invisible in a table rounded to 2 decimals, re-adjusts.
        _roll(instance, "ES|2024-07-01", "ESU4 -> ESZ4 gap 12.250000001", shown="| ESU4 -> ESZ4 | +12.25 |")
        assert _keys(_evaluate(instance, cosmetic.cursor).run_requests) == ["ES|2024-01-01", "ES|2024-07-01"]


def test_the_sensor_waits_while_a_run_that_adjusts_is_in_flight():
    with instance_for_test() as instance:
        _roll(instance, "ES|2024-01-01", "a")
        _adjusted(instance, "ES|2024-01-01")
        cursor = _evaluate(instance, None).cursor
        _roll(instance, "ES|2024-07-01", "b")
        run = instance.add_run(
            DagsterRun(job_name="__ASSET_JOB", status=DagsterRunStatus.STARTED, asset_selection=frozenset({ADJUSTED}))
        )
        waiting = _evaluate(instance, cursor)
        assert isinstance(waiting, SkipReason) and run.run_id in waiting.skip_message
        instance.report_run_failed(run)
        resumed = _evaluate(instance, cursor)
        assert _keys(resumed.run_requests) == ["ES|2024-01-01"]


def test_roll_events_is_the_asset_the_sensor_watches():
    keys = {k for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {ROLL_EVENTS, ADJUSTED} <= keys
    assert AssetKey("roll_events") in defs.resolve_asset_graph().get(ADJUSTED).parent_keys


def test_a_forward_adjusted_product_re_adjusts_the_changed_window_and_the_later_ones(monkeypatch):
    import dataclasses

    import hdi_assets.automation.sensors as sensors_module

    forward = {s: dataclasses.replace(p, adjustment="panama_forward") for s, p in products().items()}
    monkeypatch.setattr(sensors_module, "products", lambda: forward)
    with instance_for_test() as instance:
        for window in ("2024-01-01", "2024-07-01", "2025-01-01"):
            _roll(instance, f"ES|{window}", f"rolls of {window}")
            _adjusted(instance, f"ES|{window}")
        cursor = _evaluate(instance, None).cursor
        _roll(instance, "ES|2024-07-01", "rolls of 2024-07-01, re-measured")
        assert _keys(_evaluate(instance, cursor).run_requests) == ["ES|2024-07-01", "ES|2025-01-01"]
