"""ZB trades in 1/32 of a point: exact in fixed point (31,250,000 units), so Panama-adjusted ZB prices are exact
multiples of 1/32 (raw ticks on the grid plus gaps that are differences of settlements on the grid), with no
rounding anywhere. Checked on the synthetic market's ZB trades and settlements around a real roll."""

from __future__ import annotations

import datetime as dt

import numpy as np

from hdi_assets.partitions import products
from hdi_core.continuous import adjust, rolls
from hdi_core.dbn import records_to_table
from hdi_core.units import DAY_NS, NS

DATASET = "GLBX.MDP3"
THIRTY_SECOND = 31_250_000  # 1/32 of a point in 1e-9 units


def _ns(day: str) -> int:
    return int(dt.datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp()) * NS


def test_adjusted_zb_prices_stay_on_the_thirty_second_grid(synthetic_market) -> None:
    zb = products()["ZB"]
    assert zb.tick_size == THIRTY_SECOND
    listed = sorted((i for i in synthetic_market.instruments(DATASET, _ns("2024-02-12"), _ns("2024-02-13"))
                     if i.parent == "ZB.FUT"), key=lambda i: i.expiration_ns)
    old, new = listed[0].instrument_id, listed[1].instrument_id
    start, end = _ns("2024-02-05"), _ns("2024-02-24")
    sessions = zb.sessions(start - 12 * DAY_NS, end)
    switches = rolls.switch_at(rolls.switches_from_mappings([("2024-01-20", "2024-02-16", old),
                                                             ("2024-02-16", "2024-03-10", new)]),
                               sessions, "trade_date_open")
    stats = records_to_table(synthetic_market.records(DATASET, "statistics", np.array([old, new]),
                                                      start - 12 * DAY_NS, end))
    events = rolls.roll_events(switches, sessions, rolls.settlements_from_statistics(stats), methods=("settlement",))
    gap = int(events["roll_gap"][0].as_py())
    assert gap != 0 and gap % THIRTY_SECOND == 0
    trades = records_to_table(synthetic_market.records(DATASET, "trades", np.array([old, new]), start, end))
    ts, ids = trades["ts_event"].to_numpy(), trades["instrument_id"].to_numpy()
    switch = int(events["switch_ns"][0].as_py())
    lead = np.where(ts < switch, old, new)  # the continuous series: the old contract before the switch
    price = trades["price"].to_numpy()[ids == lead]
    assert len(price) > 1_000 and (price % THIRTY_SECOND == 0).all()
    adjusted = adjust.adjust("panama_backward", ts[ids == lead], price, events["switch_ns"].to_numpy(),
                             events["roll_gap"].to_numpy(), events["old_price"].to_numpy(),
                             events["new_price"].to_numpy())
    assert (adjusted % THIRTY_SECOND == 0).all()
    assert (adjusted[ts[ids == lead] < switch] == price[ts[ids == lead] < switch] + gap).all()  # exact, no rounding
