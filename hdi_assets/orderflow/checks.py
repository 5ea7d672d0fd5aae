"""The order-flow asset checks: which ones each asset declares, and their outcomes from what the asset wrote
(flows, footprints and profiles against the ohlcv bars of the same partition; book detections against the
events they name). All blocking: the database loads read only checked tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from dagster import AssetCheckResult, AssetCheckSpec, MultiPartitionKey

from hdi_assets import lake_io
from hdi_assets.continuous.assets import ohlcv_1s
from hdi_assets.continuous.checks import check_result
from hdi_assets.lake_io import bar_table
from hdi_assets.partitions import symbol_windows
from hdi_core.checks.common import CheckOutcome
from hdi_core.orderflow.checks import group_sums, merge, volumes_match

FLOW_CHECK = "flow_volume_matches_bars"
FOOTPRINT_CHECK = "footprint_volume_matches_bars"
PROFILE_CHECK = "profile_volume_matches_sessions"
ABSORPTION_CHECK = "absorption_evidence_exists"
ICEBERG_CHECK = "iceberg_evidence_exists"


def spec(name: str, asset: str) -> AssetCheckSpec:
    return AssetCheckSpec(name, asset=asset, blocking=True, partitions_def=symbol_windows)


def _bars(interval: str, partition: MultiPartitionKey) -> pa.Table:
    """The ohlcv bars of the partition that hold trades inside a session (dense fillers and strays left out)."""
    bars = lake_io.read(ohlcv_1s if interval == "1s" else bar_table(interval), partition)
    keep = (bars["trade_count"].to_numpy() > 0) & (bars["session_id"].to_numpy() >= 0)
    return bars if keep.all() else bars.filter(pa.array(keep))


def flow_outcome(flows: dict[str, pa.Table], partition: MultiPartitionKey) -> CheckOutcome:
    """buy + sell + no-side volume of every bar equals the ohlcv bar's volume, every interval."""
    outcomes = []
    for interval, flow in flows.items():
        bars = _bars(interval, partition)
        total = flow["buy_volume"].to_numpy() + flow["sell_volume"].to_numpy() + flow["no_side_volume"].to_numpy()
        outcomes.append(volumes_match(FLOW_CHECK, flow["ts_event"].to_numpy(), total, bars["ts_event"].to_numpy(),
                                      bars["volume"].to_numpy()))
    return merge(FLOW_CHECK, outcomes)


def footprint_outcome(footprint: pa.Table, interval: str, partition: MultiPartitionKey) -> CheckOutcome:
    """The footprint's volume summed per bar equals the ohlcv bar's volume."""
    bars = _bars(interval, partition)
    volume = sum(footprint[c].to_numpy() for c in ("buy_volume", "sell_volume", "no_side_volume"))
    keys, sums = group_sums(footprint["ts_event"].to_numpy(), np.asarray(volume, np.int64))
    return volumes_match(FOOTPRINT_CHECK, keys, sums, bars["ts_event"].to_numpy(), bars["volume"].to_numpy())


def profile_outcome(summary: pa.Table, partition: MultiPartitionKey) -> CheckOutcome:
    """Each session's profile volume equals its daily bar's volume (keyed by trade date)."""
    daily = _bars("1d", partition)
    days = summary["trade_date"].cast(pa.int32()).to_numpy()
    return volumes_match(PROFILE_CHECK, days, summary["volume"].to_numpy(),
                         daily["trade_date"].cast(pa.int32()).to_numpy(), daily["volume"].to_numpy(),
                         what="session", key_name="trade_date")


def result(outcome: CheckOutcome, asset: str) -> AssetCheckResult:
    return check_result(outcome, asset)
