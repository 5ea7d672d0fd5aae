"""Rolls that survive holidays, on the synthetic market (which follows the exchange's calendar library, not HDI's
code): each hard switch date of 2024 and its 2025 counterpart gives a settlement roll whose two prices are both
contracts' FINAL settlements of one trade date: the last CME trade date before the switch's (from the library)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from exchange_oracle import cme_trade_dates, trade_date_of

from hdi_assets.partitions import products
from hdi_core.continuous import rolls
from hdi_core.dbn import records_to_table
from hdi_core.units import DAY_NS, NS

DATASET = "GLBX.MDP3"
SETTLEMENT, FINAL = 3, 1
# The days after CME holidays and long weekends (and the weekend days themselves) where "the last session
# before the switch" has no settlement: the issue's 2024 list and the same holidays in 2025.
SWITCH_DATES = [
    "2024-01-02", "2024-01-16", "2024-02-20", "2024-03-30", "2024-03-31", "2024-04-01", "2024-05-28",
    "2024-06-20", "2024-07-05", "2024-09-03", "2024-11-29", "2024-12-26",
    "2025-01-02", "2025-01-21", "2025-02-18", "2025-04-19", "2025-04-20", "2025-04-21", "2025-05-27",
    "2025-06-20", "2025-07-05", "2025-09-02", "2025-11-28", "2025-12-26",
]


def _midnight_ns(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * NS


def _front_and_next(market, day: dt.date) -> tuple[int, int]:
    """The two nearest ES contracts still listed a week after the switch."""
    listed = [i for i in market.instruments(DATASET, _midnight_ns(day), _midnight_ns(day) + DAY_NS)
              if i.parent == "ES.FUT" and i.expiration_ns > _midnight_ns(day) + 7 * DAY_NS]
    first, second = sorted(listed, key=lambda i: i.expiration_ns)[:2]
    return first.instrument_id, second.instrument_id


@pytest.mark.parametrize("switch_date", SWITCH_DATES)
def test_a_switch_on_a_holiday_edge_rolls_on_final_settlements_of_one_trade_date(synthetic_market, switch_date):
    day = dt.date.fromisoformat(switch_date)
    product = products()["ES"]
    old, new = _front_and_next(synthetic_market, day)
    # Databento's mapping switches at 00:00 UTC of `day`; HDI moves it to the open of that trade date.
    intervals = [(str(day - dt.timedelta(days=20)), switch_date, old), (switch_date, str(day + dt.timedelta(20)), new)]
    start, end = _midnight_ns(day) - 12 * DAY_NS, _midnight_ns(day) + 4 * DAY_NS
    sessions = product.sessions(start, end)
    switches = rolls.switch_at(rolls.switches_from_mappings(intervals), sessions, "trade_date_open")
    stats = records_to_table(synthetic_market.records(DATASET, "statistics", np.array([old, new]), start, end))

    event = rolls.roll_events(switches, sessions, rolls.settlements_from_statistics(stats),
                              methods=("settlement",)).to_pylist()[0]

    # The oracle: the exchange's trade date of the switch, and the last trade date before it, from the library.
    switch_day = trade_date_of("ES", np.array([event["switch_ns"]]))[0]
    trade_dates = cme_trade_dates(str(day - dt.timedelta(days=20)), str(day + dt.timedelta(days=10)))
    expected_day = trade_dates[trade_dates < switch_day][-1]
    assert event["method"] == "settlement"
    assert np.datetime64(event["reference_trade_date"], "D") == expected_day
    stat = stats.to_pandas()
    finals = stat[(stat.stat_type == SETTLEMENT) & ((stat.stat_flags & FINAL) != 0)
                  & (stat.ts_ref.astype("datetime64[ns]").dt.normalize() == np.datetime64(expected_day, "ns"))]
    by_contract = finals.groupby("instrument_id").price.last()
    assert (by_contract[old], by_contract[new]) == (event["old_price"], event["new_price"])
