"""Live form: any split of a trade tape into batches gives the whole-array tables (bars, footprint, profile)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from orderflow_tapes import TICK, random_trades, week_sessions

from hdi_core.orderflow import (
    FlowAccumulator,
    FootprintAccumulator,
    ProfileAccumulator,
    Trades,
    aggressor_flow,
    footprint,
    volume_profile,
)


def _batches(trades: Trades, rng: np.random.Generator) -> list[Trades]:
    cuts = sorted(rng.choice(np.arange(1, len(trades)), int(rng.integers(1, 80)), replace=False).tolist())
    edges = [0, *cuts, len(trades)]
    return [trades.slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("interval", ["1s", "1m", "1h", "1d"])
def test_flow_and_footprint_any_split(seed: int, interval: str) -> None:
    sessions = week_sessions()
    trades = random_trades(seed, 3_000)
    flow, foot = FlowAccumulator(sessions, interval), FootprintAccumulator(sessions, interval, TICK, 2.0, 5)
    flows, feet = [], []
    for batch in _batches(trades, np.random.default_rng(seed)):
        flows.append(flow.feed(batch))
        feet.append(foot.feed(batch))
    flows.append(flow.flush())
    feet.append(foot.flush())
    assert pa.concat_tables(flows).equals(aggressor_flow(trades, sessions, interval))
    assert pa.concat_tables(feet).equals(footprint(trades, sessions, interval, TICK, 2.0, 5))


def test_a_bar_is_emitted_once_a_later_bar_starts() -> None:
    sessions = week_sessions()
    trades = random_trades(7, 500)
    flow = FlowAccumulator(sessions, "1m")
    first = flow.feed(trades.slice(0, 1))
    assert first.num_rows == 0  # its bar is still open
    rest = flow.feed(trades.slice(1, len(trades)))
    assert rest.num_rows >= 1 and rest["ts_event"][0].as_py() <= int(trades.ts[1])
    assert flow.flush().num_rows == 1
    assert flow.flush().num_rows == 0


@pytest.mark.parametrize("seed", [4, 5])
def test_profile_any_split(seed: int) -> None:
    sessions = week_sessions()
    trades = random_trades(seed, 3_000)
    acc = ProfileAccumulator(sessions, TICK)
    outs = [acc.feed(b) for b in _batches(trades, np.random.default_rng(seed))] + [acc.flush()]
    levels, summary = volume_profile(trades, sessions, TICK)
    assert pa.concat_tables([o[0] for o in outs]).equals(levels)
    assert pa.concat_tables([o[1] for o in outs]).equals(summary)
