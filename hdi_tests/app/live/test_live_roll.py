"""A capture across a roll: the continuous subscription is made afresh where Databento's mapping changes
(00:00 UTC), so the captured records equal the historical get_range of ES.v.0 on both sides of the roll, and
the series follows the new front contract."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from conftest import TEST_API_KEY

from hdi_app.live.service import CaptureConfig, CaptureService
from hdi_gateway.live import make_state, start_live_thread
from hdi_resources.lake.live import read_live

NS = 1_000_000_000
FIELDS = ("ts_recv", "ts_event", "instrument_id", "sequence", "price", "size")


def _roll(market) -> tuple[dt.date, int, int]:
    """The first UTC day the next ES contract is ES.v.0 (the lead of the previous day's volume), by hand."""
    daily = market.daily_stats("GLBX.MDP3", dt.date(2024, 3, 1), dt.date(2024, 3, 20))
    volume = daily[daily["instrument_id"] // 10_000 == 1].pivot(index="date", columns="instrument_id",
                                                                  values="volume").fillna(0)
    leaders = volume.idxmax(axis=1)
    switch = next(d for d, prev in zip(leaders.index[1:], leaders.iloc[:-1], strict=True) if leaders[d] != prev)
    return switch + dt.timedelta(days=1), int(leaders.iloc[0]), int(leaders[switch])


def test_capture_across_a_roll_equals_history(synthetic_market, synthetic_client, tmp_path) -> None:
    day, old_id, new_id = _roll(synthetic_market)
    roll_ns = int(np.datetime64(day, "ns").astype(np.int64))
    start, end = roll_ns - 3 * 3600 * NS, roll_ns + 2 * 3600 * NS
    gateway = start_live_thread(make_state(synthetic_market, start, 1800.0, [TEST_API_KEY], None))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HDI_HOME", str(tmp_path))
        env.delenv("HDI_LAKE_URL", raising=False)
        env.setenv("DATABENTO_API_KEY", TEST_API_KEY)
        try:
            service = CaptureService(CaptureConfig(products=["ES"], schemas=["trades"],
                                                   gateway=f"127.0.0.1:{gateway.port}", start_ns=start,
                                                   end_ns=end), None)
            service.run()
        finally:
            gateway.stop()
        days = sorted({str(d) for d in np.unique(np.array([start, roll_ns, end - 1]).astype("datetime64[ns]")
                                                  .astype("datetime64[D]"))} | {str(day)})
        live = pa.concat_tables([t for d in days if (t := read_live("trades", "ES", d)).num_rows])
    assert service.health.resubscribes >= 1 and service.series["ES"].instrument_id == new_id
    recv = live["ts_recv"].to_numpy()
    ids = live["instrument_id"].to_numpy()
    assert set(ids[recv < roll_ns]) == {old_id} and set(ids[recv >= roll_ns]) == {new_id}
    hist = synthetic_client.timeseries.get_range(dataset="GLBX.MDP3", schema="trades", symbols=["ES.v.0"],
                                                 stype_in="continuous", start=start - NS,
                                                 end=int(recv.max()) + NS).to_ndarray()
    hist_recv = hist["ts_recv"].astype(np.int64)  # the same instants: the gateway's range is on ts_event
    hist = hist[(hist_recv >= start) & (hist_recv < recv.max())]  # up to the last instant captured, exclusive
    live = live.filter(pa.array(recv < recv.max()))
    want = pa.table({name: hist[name] for name in FIELDS})
    got = live.select(list(FIELDS)).cast(want.schema)
    assert got.num_rows == want.num_rows and got.equals(want)
