"""Which window owns a switch: the one owning the trade date it takes effect in, so a switch on a weekend or
holiday between two windows belongs to exactly one of them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from hdi_assets.continuous.roll_inputs import owned_switches, session_range, switch_trade_dates
from hdi_assets.partitions import products
from hdi_core.calendar import CHICAGO, NS
from hdi_core.continuous.rolls import SWITCH_SCHEMA


def ct(y: int, m: int, d: int, hh: int, mm: int = 0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO).timestamp()) * NS


def test_a_switch_between_windows_belongs_to_exactly_the_window_of_the_next_trade_date() -> None:
    """Saturday 2024-06-29 00:00 UTC (Friday 19:00 CT, after H1's last close) takes effect on trade date
    2024-07-01: window 2024-07-01 owns it and window 2024-01-01 does not; so for Christmas 2024 inside H2."""
    es = products()["ES"]
    h1 = session_range(es, ct(2024, 1, 1, 0) - 6 * 3600 * NS, ct(2024, 7, 1, 0) - 5 * 3600 * NS)
    h2 = session_range(es, ct(2024, 7, 1, 0) - 5 * 3600 * NS, ct(2025, 1, 1, 0) - 6 * 3600 * NS)
    assert h1[1] == ct(2024, 6, 28, 16) and h2[0] == ct(2024, 6, 30, 17)
    saturday = ct(2024, 6, 28, 19)
    assert h1[1] <= saturday < h2[0]
    sessions = es.sessions(ct(2024, 6, 20, 0), ct(2024, 7, 10, 0))
    assert switch_trade_dates(np.array([saturday]), sessions)[0] == np.datetime64("2024-07-01")
    switch = pa.table({"switch_ns": [saturday], "old_instrument_id": [1], "new_instrument_id": [2],
                       "databento_switch_ns": [saturday]}, schema=SWITCH_SCHEMA)
    owners = [owned_switches(es, switch, *span).to_pylist()[0] for span in (h1, h2)]
    assert owners == [False, True]
    late = es.sessions(ct(2024, 12, 20, 0), ct(2025, 1, 3, 0))  # 12-25 00:00 UTC = 12-24 18:00 CT -> 12-26
    assert switch_trade_dates(np.array([ct(2024, 12, 24, 18)]), late)[0] == np.datetime64("2024-12-26")
