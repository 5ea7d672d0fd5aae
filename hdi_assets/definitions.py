"""Root Definitions: merges each domain's Definitions and binds the resources, nothing else."""

from __future__ import annotations

from dagster import Definitions

from hdi_assets.continuous.definitions import PIPELINE_ASSETS as CONTINUOUS_ASSETS
from hdi_assets.continuous.definitions import defs as continuous_defs
from hdi_resources.databento import DatabentoResource

# Everything one symbol x window partition goes through, in graph order (the demo materializes these).
PIPELINE_ASSETS = [*CONTINUOUS_ASSETS]


def build_resources() -> dict:
    # The key is read from DATABENTO_API_KEY at run time; it never enters run config.
    return {"databento": DatabentoResource.from_config()}


defs = Definitions.merge(continuous_defs, Definitions(resources=build_resources()))
