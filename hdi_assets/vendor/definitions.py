"""The vendor-schema domain: YAML-configured Databento jobs and DBN file ingestion."""

from dagster import Definitions

from hdi_assets.vendor.assets import build_job_assets, dbn_files
from hdi_assets.vendor.sensors import ingest_dbn_files_job, landing_sensor

# A broken databento_config.yaml stops the code location from loading: refused before any run.
JOB_ASSETS = build_job_assets()
defs = Definitions(assets=[*JOB_ASSETS, dbn_files], jobs=[ingest_dbn_files_job], sensors=[landing_sensor])
