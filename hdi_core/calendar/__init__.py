"""Exchange calendars for HDI products: per-product trading segments and CME trade dates as arrays.

Built from pandas_market_calendars (a maintained library), corrected only in configs/calendar_overrides.yaml.
"""

from hdi_core.calendar.arrays import (
    CHICAGO,
    DAY_NS,
    NS,
    Sessions,
    day_anchor_ns,
    session_index,
    session_spans,
    split_on_gaps,
    split_sessions,
)
from hdi_core.calendar.schedule import CALENDARS, CalendarName, calendar_sessions
from hdi_core.calendar.trade_dates import cme_trade_dates, next_trade_date

__all__ = [
    "CALENDARS", "CHICAGO", "DAY_NS", "NS", "CalendarName", "Sessions", "calendar_sessions", "cme_trade_dates",
    "day_anchor_ns", "next_trade_date", "session_index", "session_spans", "split_on_gaps", "split_sessions",
]
