"""Order flow as data: aggressor flow (delta), footprint, volume profile, absorption zones (mbp-10) and iceberg
candidates (mbo). Pure and columnar: arrays in, Arrow tables out, compiled kernels, prices int64 fixed point.

Whole-array functions for the historical assets, and incremental accumulators (same kernels) for live capture.
"""

from hdi_core.orderflow.absorption import ZONE_SCHEMA, AbsorptionDetector, absorption_zones
from hdi_core.orderflow.book import OrderEvents, TopOfBook, order_events, top_of_book
from hdi_core.orderflow.delta import FLOW_SCHEMA, aggressor_flow
from hdi_core.orderflow.footprint import FOOTPRINT_SCHEMA, footprint
from hdi_core.orderflow.icebergs import ICEBERG_SCHEMA, IcebergDetector, iceberg_candidates
from hdi_core.orderflow.incremental import FlowAccumulator, FootprintAccumulator, ProfileAccumulator
from hdi_core.orderflow.profile import PROFILE_SCHEMA, SUMMARY_SCHEMA, volume_profile
from hdi_core.orderflow.tape import BUY, NO_SIDE, SELL, BarIndex, Trades, bar_index, side_bytes, trades_from_table

__all__ = [
    "BUY", "FLOW_SCHEMA", "FOOTPRINT_SCHEMA", "ICEBERG_SCHEMA", "NO_SIDE", "PROFILE_SCHEMA", "SELL",
    "SUMMARY_SCHEMA", "ZONE_SCHEMA", "AbsorptionDetector", "BarIndex", "FlowAccumulator", "FootprintAccumulator",
    "IcebergDetector", "OrderEvents", "ProfileAccumulator", "TopOfBook", "Trades", "absorption_zones",
    "aggressor_flow", "bar_index", "footprint", "iceberg_candidates", "order_events", "side_bytes", "top_of_book",
    "trades_from_table", "volume_profile",
]
