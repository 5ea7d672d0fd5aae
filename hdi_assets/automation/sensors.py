"""Keeps adjusted windows current: a changed roll in window W re-adjusts every built window it moves.

Backward adjustment of window V adds the gaps of every roll in V and every later window, forward adjustment those
of V and every earlier window (partitions.ROLL_WINDOWS). So when roll_events of W materializes with different rolls
than before (a new window's first rolls, or a roll that appeared in the still-open window), every already-built
panama_adjusted_ticks[symbol|V] those rolls move (V <= W backward, V >= W forward) whose last materialization is
older than that roll change is re-run with its bars, checks and load (`readjust_window`).
A refresh that finds the same rolls again changes nothing and launches nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    EventLogRecord,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from hdi_assets.automation.jobs import readjust_window_job
from hdi_assets.partitions import ROLL_HASH_METADATA, adjusts_with, products, symbol_windows

ROLL_EVENTS = AssetKey("roll_events")
ADJUSTED = AssetKey("panama_adjusted_ticks")
IN_FLIGHT_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
BATCH = 500
RECENT_BACKFILLS = 200  # an in-flight backfill is among the newest


@dataclass(frozen=True)
class RollChange:
    symbol: str
    window: str
    storage_id: int


def _split(partition: str) -> tuple[str, str]:
    keys = symbol_windows.get_partition_key_from_str(partition).keys_by_dimension
    return keys["symbol"], keys["window"]


def _roll_fingerprint(record: EventLogRecord) -> str | None:
    """The digest of the roll rows the materialization wrote; None when it does not carry one."""
    materialization = record.asset_materialization
    if materialization is None:
        return None
    digest = materialization.metadata.get(ROLL_HASH_METADATA)
    return None if digest is None else str(digest.value)


def _roll_count(record: EventLogRecord) -> int | None:
    materialization = record.asset_materialization
    entry = materialization.metadata.get("rolls") if materialization is not None else None
    return None if entry is None else int(entry.value)


def roll_changes(instance: DagsterInstance, records: Iterable[EventLogRecord]) -> list[RollChange]:
    """The roll_events materializations whose rolls differ from the previous materialization of the partition."""
    changes = []
    for record in records:
        partition = record.partition_key
        if partition is None:
            continue
        previous = instance.fetch_materializations(
            AssetRecordsFilter(ROLL_EVENTS, asset_partitions=[partition], before_storage_id=record.storage_id),
            limit=1,
        ).records
        if previous:
            fingerprint = _roll_fingerprint(record)
            changed = fingerprint is None or fingerprint != _roll_fingerprint(previous[0])
        else:
            # First materialization: only rolls that exist change earlier windows.
            changed = _roll_count(record) != 0
        if changed:
            symbol, window = _split(partition)
            changes.append(RollChange(symbol, window, record.storage_id))
    return changes


def stale_adjusted_windows(instance: DagsterInstance, changes: Sequence[RollChange]) -> dict[str, int]:
    """partition -> storage id of the roll change its adjusted ticks have not seen (built partitions only)."""
    if not changes:
        return {}
    built = instance.get_latest_storage_id_by_partition(ADJUSTED, DagsterEventType.ASSET_MATERIALIZATION)
    stale: dict[str, int] = {}
    for change in changes:
        for partition, adjusted_id in built.items():
            symbol, window = _split(partition)
            if (
                symbol == change.symbol
                and adjusts_with(products()[symbol], window, change.window)
                and adjusted_id < change.storage_id
            ):
                stale[partition] = max(stale.get(partition, 0), change.storage_id)
    return stale


def adjustment_in_flight(instance: DagsterInstance) -> str | None:
    """Why to wait: a backfill or run that may itself rebuild adjusted windows is queued or running."""
    # Newest first; the status enum is not public API, so the filter compares its value.
    for backfill in instance.get_backfills(limit=RECENT_BACKFILLS):
        if backfill.status.value != "REQUESTED":
            continue
        selection = backfill.asset_selection
        if selection is None or ADJUSTED in selection:
            return f"backfill {backfill.backfill_id} is in progress"
    for run in instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT_RUN_STATUSES)):
        if run.asset_selection is None or ADJUSTED in run.asset_selection:
            return f"run {run.run_id} is in progress"
    return None


def evaluate_roll_staleness(instance: DagsterInstance, cursor: str | None) -> SensorResult | SkipReason:
    after = int(cursor) if cursor else None
    new = instance.fetch_materializations(
        AssetRecordsFilter(ROLL_EVENTS, after_storage_id=after), limit=BATCH, ascending=True
    ).records
    if not new:
        return SkipReason("no new roll_events materialization")
    waiting = adjustment_in_flight(instance)
    if waiting:
        # The cursor stays put: once that work is done, only what it left stale is requested.
        return SkipReason(f"waiting: {waiting}")
    stale = stale_adjusted_windows(instance, roll_changes(instance, new))
    requests = [
        RunRequest(
            run_key=f"readjust:{partition}:{change_id}",
            job_name=readjust_window_job.name,
            partition_key=symbol_windows.get_partition_key_from_str(partition),
            tags={"hdi/trigger": "roll_change"},
        )
        for partition, change_id in sorted(stale.items())
    ]
    return SensorResult(run_requests=requests, cursor=str(max(r.storage_id for r in new)))


@sensor(
    jobs=[readjust_window_job],
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="When a window's rolls change, re-adjust every already-built earlier window of the symbol "
    "(and its bars, checks and load). Waits while a backfill or run that adjusts is in flight.",
)
def roll_staleness_sensor(context: SensorEvaluationContext):
    return evaluate_roll_staleness(context.instance, context.cursor)


AUTOMATION_SENSORS = [roll_staleness_sensor]
