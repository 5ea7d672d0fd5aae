"""The DBN-file ingestion domain: downloaded files dropped into the landing folder."""

from dagster import Definitions

from hdi_assets.dbn_files.assets import dbn_files
from hdi_assets.dbn_files.sensors import ingest_dbn_files_job, landing_sensor

defs = Definitions(assets=[dbn_files], jobs=[ingest_dbn_files_job], sensors=[landing_sensor])
