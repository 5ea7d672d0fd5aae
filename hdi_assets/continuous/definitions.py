"""The continuous-futures domain: its assets (their checks are declared on them), nothing else."""

from dagster import Definitions

from hdi_assets.continuous.assets import ohlcv_1s, ohlcv_bars, panama_adjusted_ticks, raw_ticks, roll_events

PIPELINE_ASSETS = [raw_ticks, roll_events, panama_adjusted_ticks, ohlcv_1s, ohlcv_bars]
defs = Definitions(assets=PIPELINE_ASSETS)
