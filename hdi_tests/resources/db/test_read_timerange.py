"""The shared time semantics (pure): dates vs instants, UTC vs exchange time, end after start, trade dates."""

from __future__ import annotations

import datetime as dt

import pytest

from hdi_resources.db.readerrors import BadRequest
from hdi_resources.db.timerange import EXCHANGE_TZ, parse_range, trade_date_of


def test_plain_dates_select_trade_dates() -> None:
    span = parse_range("2024-03-01", "2024-03-08")
    assert span.dates_only and span.start_date == dt.date(2024, 3, 1) and span.end_date == dt.date(2024, 3, 8)
    assert span.describe(True) == "trade dates [2024-03-01, 2024-03-08)"
    assert parse_range("2024-03-01").dates_only and not parse_range().dates_only
    assert not parse_range("2024-03-01", "2024-03-01T12:00").dates_only  # mixed: instants


def test_naive_times_are_in_the_zone_asked_for() -> None:
    assert parse_range("2024-03-01T09:30").start == dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)
    local = parse_range("2024-03-01T09:30", tz="exchange").start
    assert local == dt.datetime(2024, 3, 1, 9, 30, tzinfo=EXCHANGE_TZ)
    assert local.astimezone(dt.UTC).hour == 15
    assert parse_range("2024-03-01T09:30:00Z", tz="exchange").start.hour == 9  # an explicit offset wins


@pytest.mark.parametrize(("start", "end", "tz", "words"), [
    ("2024-03-02", "2024-03-01", "utc", "is not after start"),
    ("2024-03-01", "2024-03-01", "utc", "is not after start"),
    ("yesterday", None, "utc", "start 'yesterday' is not an ISO date"),
    (None, "2024-13-45", "utc", "end '2024-13-45' is not an ISO date"),
    ("2024-03-01", None, "mars", "time zone 'mars'"),
])
def test_bad_ranges_are_one_line(start: str | None, end: str | None, tz: str, words: str) -> None:
    with pytest.raises(BadRequest, match=words) as caught:
        parse_range(start, end, tz)
    assert "\n" not in str(caught.value) and caught.value.status == 400


@pytest.mark.parametrize(("instant", "trade_date"), [
    ("2024-02-29T23:00:00Z", "2024-03-01"),  # 17:00 Chicago Thursday: Friday's session
    ("2024-02-29T21:59:00Z", "2024-02-29"),  # 15:59 Chicago Thursday: Thursday's session
    ("2024-03-01T23:30:00Z", "2024-03-04"),  # Friday evening belongs to Monday
    ("2024-03-03T23:00:00Z", "2024-03-04"),  # Sunday 17:00 CST opens Monday
    ("2024-03-10T22:00:00Z", "2024-03-11"),  # Sunday 17:00 CDT (the clocks moved)
])
def test_trade_date_of_an_instant(instant: str, trade_date: str) -> None:
    assert trade_date_of(dt.datetime.fromisoformat(instant)) == dt.date.fromisoformat(trade_date)
