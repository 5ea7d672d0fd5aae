"""Schedules: the still-open window daily after the CME close, and each window once more after it closes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from hdi_assets.automation.jobs import refresh_window_job
from hdi_assets.partitions import (
    FIRST_WINDOW,
    is_configured_window,
    partition_key,
    previous_window,
    products,
    window_of,
)

CME_TIMEZONE = "America/Chicago"
# CME Globex equity/rates futures close 16:00 CT; 17:30 leaves time for the day's data and settlements.
DAILY_AFTER_CLOSE_CRON = "30 17 * * 1-5"
# Two days after a half-year ends (its last session closed on the last trade date): Jan 3 and Jul 3.
CLOSED_WINDOW_CRON = "0 6 3 1,7 *"


def _in_cme_time(moment: dt.datetime) -> dt.datetime:
    """A naive time is taken as CME (Chicago) time, as the daily schedule's tick times are."""
    tz = ZoneInfo(CME_TIMEZONE)
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


def _requests(window: str, reason: str, day: dt.date) -> list[RunRequest]:
    return [
        RunRequest(
            run_key=f"{reason}:{symbol}|{window}:{day.isoformat()}",
            partition_key=partition_key(symbol, window),
            tags={"hdi/trigger": reason},
        )
        for symbol in products()
    ]


def open_window_requests(scheduled: dt.datetime) -> list[RunRequest] | SkipReason:
    """One run per symbol for the window that holds today's CME trade date."""
    day = _in_cme_time(scheduled).date()
    window = window_of(day)
    if not is_configured_window(window):
        return SkipReason(f"{day} is before the first configured window {FIRST_WINDOW}")
    return _requests(window, "daily_open_window", day)


def closed_window_requests(scheduled: dt.datetime) -> list[RunRequest] | SkipReason:
    """One run per symbol for the window that ended most recently: its final, complete refresh."""
    day = scheduled.date()
    window = previous_window(window_of(day))
    if window is None or not is_configured_window(window):
        return SkipReason(f"the window before {day} is before the first configured window {FIRST_WINDOW}")
    return _requests(window, "closed_window", day)


@schedule(
    job=refresh_window_job,
    cron_schedule=DAILY_AFTER_CLOSE_CRON,
    execution_timezone=CME_TIMEZONE,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Each trading day after the CME close: refresh the still-open window of every symbol.",
)
def daily_open_window_schedule(context: ScheduleEvaluationContext):
    return open_window_requests(context.scheduled_execution_time)


@schedule(
    job=refresh_window_job,
    cron_schedule=CLOSED_WINDOW_CRON,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Every 6 months, once a half-year has closed: its final refresh, every symbol.",
)
def closed_window_schedule(context: ScheduleEvaluationContext):
    return closed_window_requests(context.scheduled_execution_time)


AUTOMATION_SCHEDULES = [daily_open_window_schedule, closed_window_schedule]
