"""Jobs the schedules and sensors launch: the whole graph of one symbol x window, or its re-adjustment."""

from dagster import AssetSelection, define_asset_job

from hdi_assets.continuous.assets import ohlcv_1s, ohlcv_bars, panama_adjusted_ticks, raw_ticks, roll_events
from hdi_assets.storage.assets import continuous_bars_table, roll_events_table

DATABENTO_TAG = "hdi/databento"

# Fetch, rolls, adjust, bars, checks and loads of one partition; the tag counts it against the
# instance's Databento run limit (concurrency.runs.tag_concurrency_limits in dagster.yaml).
refresh_window_job = define_asset_job(
    "refresh_window",
    selection=AssetSelection.assets(
        raw_ticks, roll_events, panama_adjusted_ticks, ohlcv_1s, ohlcv_bars, roll_events_table, continuous_bars_table
    ),
    tags={DATABENTO_TAG: "fetch"},
    description="Everything one symbol x half-year window goes through, from the Databento fetch to the database.",
)

# A later window's new roll changes every earlier window's adjusted prices; the raw ticks stay as fetched.
readjust_window_job = define_asset_job(
    "readjust_window",
    selection=AssetSelection.assets(panama_adjusted_ticks, ohlcv_1s, ohlcv_bars, continuous_bars_table),
    description="Re-adjust an older window after a later roll changed: adjusted ticks, bars, checks, load. "
    "No Databento fetch.",
)

AUTOMATION_JOBS = [refresh_window_job, readjust_window_job]
