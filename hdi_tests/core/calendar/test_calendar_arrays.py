"""Trading segments (CME equity calendar) and the gap-threshold split, against plain loops."""

from __future__ import annotations

import datetime as dt

import numpy as np

from hdi_core.calendar import (
    CHICAGO,
    NS,
    calendar_sessions,
    day_anchor_ns,
    session_index,
    split_on_gaps,
    split_sessions,
)


def ct(y: int, m: int, d: int, hh: int, mm: int = 0, ss: float = 0.0) -> int:
    """Chicago wall time -> ns UTC."""
    base = dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO)
    return int(base.timestamp()) * NS + int(round(ss * NS))


def test_sunday_open_and_dst_week() -> None:
    s = calendar_sessions("CME Globex Equity", ct(2024, 3, 8, 9), ct(2024, 3, 12, 9))
    dates = [str(d) for d in s.trade_date]
    assert dates == ["2024-03-08", "2024-03-11", "2024-03-12"]
    assert s.open_ns[1] == ct(2024, 3, 10, 17)  # Monday's session opens Sunday 17:00 (CDT from this day)
    assert s.open_ns[1] - s.close_ns[0] == (2 * 24 + 1) * 3600 * NS - 3600 * NS  # DST takes one hour away
    assert session_index(np.array([ct(2024, 3, 8, 16, 30), ct(2024, 3, 10, 17)]), s).tolist() == [-1, 1]


def _loop_split(ts: list[int], sid: list[int], gap: int) -> list[int]:
    out, cur, prev_t, prev_s = [], -1, None, None
    for t, s in zip(ts, sid, strict=True):
        if s < 0:
            out.append(-1)
            continue
        if prev_s is None or s != prev_s or t - prev_t > gap:
            cur += 1
        out.append(cur)
        prev_t, prev_s = t, s
    return out


def test_split_on_gaps_matches_loop() -> None:
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(0, 10_000 * NS, 500))
    sid = np.repeat([0, 1, -1, 2], [100, 150, 50, 200])
    gap = 60 * NS
    assert split_on_gaps(ts, sid, gap).tolist() == _loop_split(ts.tolist(), sid.tolist(), gap)


def test_split_sessions_cuts_on_halt() -> None:
    s = calendar_sessions("CME Globex Equity", ct(2024, 3, 5, 9), ct(2024, 3, 5, 12))
    ts = np.array([ct(2024, 3, 5, 9, 0, 0.5), ct(2024, 3, 5, 9, 10, 0.25), ct(2024, 3, 5, 10, 30, 7.5)])
    pieces = split_sessions(ts, s, 15 * 60 * NS)
    assert len(pieces) == len(s) + 1
    k = int(np.searchsorted(pieces.open_ns, ct(2024, 3, 5, 10, 30, 7), side="right")) - 1
    assert pieces.open_ns[k] == ct(2024, 3, 5, 10, 30, 7)
    assert pieces.close_ns[k - 1] == ct(2024, 3, 5, 9, 10, 1)
    assert pieces.trade_date[k] == pieces.trade_date[k - 1] == np.datetime64("2024-03-05")
    assert day_anchor_ns(pieces)[k] == pieces.open_ns[k - 1] == ct(2024, 3, 4, 17)
    assert np.all(pieces.open_ns[1:] >= pieces.close_ns[:-1])
    assert split_sessions(ts[:2], s, 15 * 60 * NS) is s  # no pause: unchanged


def test_holiday_segment_shares_the_next_trade_date_and_its_anchor() -> None:
    """MLK 2024: the holiday segment (Sunday 17:00 - Monday 12:00 CT) and Tuesday's segment are one trade
    date, so the daily bar of 2024-01-16 is anchored at the holiday segment's open."""
    s = calendar_sessions("CME Globex Equity", ct(2024, 1, 14, 0), ct(2024, 1, 17, 0))
    tue = np.flatnonzero(s.trade_date == np.datetime64("2024-01-16"))
    assert len(tue) == 2 and s.close_ns[tue[0]] == ct(2024, 1, 15, 12)
    assert (day_anchor_ns(s)[tue] == ct(2024, 1, 14, 17)).all()
    assert bool(s.early_close[tue[0]]) and not bool(s.early_close[tue[1]])
