"""Asset factory: each job of databento_config.yaml becomes one Dagster asset partitioned by its date chunks.

A partition fetches its chunk through the Databento resource (cache-first, budget-guarded), maps and
validates it, upserts the valid rows into the job's vendor table and quarantines the rest; the job summary
(fetched, stored, quarantined, ...) is the materialization's metadata. ohlcv-5m / ohlcv-15m jobs fetch
ohlcv-1m and aggregate it (Databento has no such schema)."""

import re

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    StaticPartitionsDefinition,
    asset,
)

from hdi_assets.vendor_schema_jobs.ingest import IngestSummary, job_chunks, run_job_chunk
from hdi_core.vendor_schemas.config import DatabentoConfig, DatabentoJob, load_config
from hdi_resources.databento import DatabentoResource
from hdi_resources.db.resource import DatabaseResource

GROUP = "vendor"
KEY_PREFIX = "vendor"
# A transient failure of the whole step (after the resource's own HTTP retries) is retried by Dagster.
STEP_RETRY = RetryPolicy(max_retries=2, delay=5)


def asset_name(job: DatabentoJob) -> str:
    """A Dagster-safe asset name for a job (`es-nq.trades` -> `es_nq_trades`)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", job.name)


def job_partitions(config: DatabentoConfig, job: DatabentoJob) -> StaticPartitionsDefinition:
    """One partition per date chunk, keyed by its first date (2024-03-04)."""
    return StaticPartitionsDefinition([chunk.key for chunk in job_chunks(config, job)])


def summary_metadata(summary: IngestSummary) -> dict[str, object]:
    meta: dict[str, object] = {
        "fetched": summary.fetched,
        "stored": summary.stored,
        "quarantined": summary.quarantined,
        "inserted": summary.inserted,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "status": summary.status,
        "target_table": summary.target_table,
        "ingest_run_id": summary.run_id if summary.run_id is not None else -1,
        "seconds": round(summary.seconds, 3),
        "min_ts": summary.min_ts.isoformat() if summary.min_ts else "",
        "max_ts": summary.max_ts.isoformat() if summary.max_ts else "",
        "rules_broken": MetadataValue.json(summary.rules),
        "summary": summary.line(),
    }
    if summary.dead_letter:
        meta["dead_letter"] = MetadataValue.path(summary.dead_letter)
    if summary.sha256:
        meta["sha256"] = summary.sha256
    return meta


def build_job_asset(config: DatabentoConfig, job: DatabentoJob) -> AssetsDefinition:
    """The asset of one YAML job."""
    chunks = {chunk.key: chunk for chunk in job_chunks(config, job)}
    description = (
        f"{job.description or job.name}: {job.dataset} {job.schema_name} for {', '.join(job.symbols)} "
        f"({job.stype_in}), {job.start_date}..{job.end_date} in {config.chunk_days(job)}-day chunks, "
        f"upserted into {job.target_table}; invalid records quarantined."
    )

    @asset(
        name=asset_name(job),
        key_prefix=KEY_PREFIX,
        group_name=GROUP,
        partitions_def=StaticPartitionsDefinition(list(chunks)),
        retry_policy=STEP_RETRY,
        tags={"hdi/databento": "fetch"},
        pool="databento",  # caps parallel Databento fetches, backfills included
        kinds={"databento", "postgres"},
        description=description,
        metadata={"job": job.name, "schema": job.schema_name, "target_table": job.target_table},
    )
    def _job_asset(
        context: AssetExecutionContext, databento: DatabentoResource, database: DatabaseResource
    ) -> MaterializeResult:
        chunk = chunks[context.partition_key]
        summary = run_job_chunk(database.database(), databento, job, chunk, context=context,
                                dead_letter_dir=config.dead_letter_dir)
        context.log.info(summary.line())
        return MaterializeResult(metadata=summary_metadata(summary))

    return _job_asset


def build_job_assets(config: DatabentoConfig | None = None) -> list[AssetsDefinition]:
    """One asset per job of the config (default: configs/api_specific/databento_config.yaml)."""
    config = config or load_config()  # the config folder as it is now (HDI_CONFIG_DIR or configs/)
    return [build_job_asset(config, job) for job in config.jobs]
