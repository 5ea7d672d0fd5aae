"""Downloaded DBN files as assets: one dynamic partition per file of the landing folder, ingested into the
vendor table of its schema and audited."""


import os
from pathlib import Path

from dagster import AssetExecutionContext, Config, DynamicPartitionsDefinition, MaterializeResult, asset

from hdi_assets.vendor_schema_jobs.assets import GROUP, KEY_PREFIX, summary_metadata
from hdi_assets.vendor_schema_jobs.ingest import ingest_dbn_file
from hdi_core.errors import HdiError
from hdi_resources.db.resource import DatabaseResource
from hdi_resources.settings import hdi_home

ENV_LANDING_DIR = "HDI_LANDING_DIR"
dbn_file_partitions = DynamicPartitionsDefinition(name="vendor_dbn_files")


def landing_dir() -> Path:
    """HDI_LANDING_DIR, else hdi_home()/landing (created on first use)."""
    configured = os.environ.get(ENV_LANDING_DIR, "").strip()
    path = Path(configured).expanduser().resolve() if configured else hdi_home() / "landing"
    path.mkdir(parents=True, exist_ok=True)
    return path


class DbnFileConfig(Config):
    """Which file a partition ingests: empty = `<landing folder>/<partition key>`."""

    path: str = ""
    dry_run: bool = False


@asset(
    name="dbn_files",
    key_prefix=KEY_PREFIX,
    group_name=GROUP,
    partitions_def=dbn_file_partitions,
    kinds={"databento", "postgres"},
    description="Downloaded DBN files (.dbn / .dbn.zst, DBN v1..v3) dropped into the landing folder, one "
    "partition per file: upserted into the vendor table of their schema, audited in data_ingest_runs; a "
    "file already ingested (same sha256) changes nothing.",
)
def dbn_files(context: AssetExecutionContext, config: DbnFileConfig, database: DatabaseResource) -> MaterializeResult:
    path = Path(config.path) if config.path else landing_dir() / context.partition_key
    if not path.is_file():
        raise HdiError(f"{path}: the landing file of partition {context.partition_key!r} is gone")
    summary = ingest_dbn_file(database.database(), path, dry_run=config.dry_run)
    context.log.info(summary.line())
    return MaterializeResult(metadata=summary_metadata(summary))
