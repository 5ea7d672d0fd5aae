"""The vendor-schema jobs domain: each job of databento_config.yaml as a partitioned asset."""

from dagster import Definitions

from hdi_assets.vendor_schema_jobs.assets import build_job_assets

# A broken databento_config.yaml stops the code location from loading: refused before any run.
JOB_ASSETS = build_job_assets()
defs = Definitions(assets=JOB_ASSETS)
