"""Root Definitions: merges each domain's Definitions and binds the resources, nothing else."""

from __future__ import annotations

from dagster import Definitions

from hdi_assets.automation import definitions as automation
from hdi_assets.continuous import definitions as continuous
from hdi_assets.dbn_files import definitions as dbn_files
from hdi_assets.live import definitions as live
from hdi_assets.orderflow import definitions as orderflow
from hdi_assets.storage import definitions as storage
from hdi_assets.vendor_schema_jobs import definitions as vendor_schema_jobs
from hdi_resources.databento import DatabentoResource
from hdi_resources.db.resource import DatabaseResource

# Everything one symbol x window partition goes through, in graph order (the demo materializes these).
PIPELINE_ASSETS = [*continuous.PIPELINE_ASSETS, *storage.LOAD_ASSETS]


def build_resources() -> dict:
    # The key is read from DATABENTO_API_KEY at run time; it never enters run config.
    return {"databento": DatabentoResource.from_config(), "database": DatabaseResource()}


defs = Definitions.merge(
    continuous.defs,
    storage.defs,
    vendor_schema_jobs.defs,
    dbn_files.defs,
    automation.defs,
    live.defs,
    orderflow.defs,
    Definitions(resources=build_resources()),
)
