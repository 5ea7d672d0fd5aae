"""The continuous-futures domain: its assets, their checks, nothing else."""

from dagster import Definitions

from hdi_assets.continuous.assets import ohlcv_1s, ohlcv_bars, panama_adjusted_ticks, raw_ticks, roll_events

defs = Definitions(assets=[raw_ticks, roll_events, panama_adjusted_ticks, ohlcv_1s, ohlcv_bars])
