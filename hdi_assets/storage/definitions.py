"""The storage domain: load assets into PostgreSQL/TimescaleDB."""

from dagster import Definitions

from hdi_assets.storage.assets import continuous_bars_table, roll_events_table

LOAD_ASSETS = [roll_events_table, continuous_bars_table]
defs = Definitions(assets=LOAD_ASSETS)
