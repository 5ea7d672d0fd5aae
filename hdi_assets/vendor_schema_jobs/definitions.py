"""The vendor-schema domain: YAML-configured Databento jobs and DBN file ingestion."""

from dagster import Definitions

from hdi_assets.dbn_files.sensors import ingest_dbn_files_job, landing_sensor
from hdi_assets.vendor_schema_jobs.assets import build_job_assets, dbn_files

# A broken databento_config.yaml stops the code location from loading: refused before any run.
JOB_ASSETS = build_job_assets()
defs = Definitions(assets=[*JOB_ASSETS, dbn_files], jobs=[ingest_dbn_files_job], sensors=[landing_sensor])
