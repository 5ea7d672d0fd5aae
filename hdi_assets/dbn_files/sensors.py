"""A sensor over the landing folder: each new `.dbn` / `.dbn.zst` file becomes its own dynamic partition of
`vendor/dbn_files` and one run that ingests it. The cursor remembers (size, mtime) per file, so a file that
is replaced by new bytes is ingested again (the sha256 check makes an identical copy a no-op)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from hdi_assets.dbn_files.assets import dbn_file_partitions, dbn_files, landing_dir
from hdi_assets.vendor_schema_jobs.ingest import DBN_SUFFIXES

ENV_SETTLE_S = "HDI_LANDING_SETTLE_S"
DEFAULT_SETTLE_S = 5.0  # a file modified more recently may still be being copied in
MAX_FILES_PER_TICK = 100

ingest_dbn_files_job = define_asset_job("vendor_ingest_dbn_files", selection=[dbn_files])


def landed_files(folder: Path, settle_s: float) -> dict[str, tuple[int, int]]:
    """Partition key (path relative to the folder) -> (size, mtime ns) of every settled DBN file."""
    now = time.time_ns()
    found: dict[str, tuple[int, int]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or not path.name.endswith(DBN_SUFFIXES):
            continue
        stat = path.stat()
        if now - stat.st_mtime_ns < settle_s * 1e9:
            continue
        found[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def build_landing_sensor(folder: str | Path | None = None, settle_s: float | None = None,
                         name: str = "vendor_landing_folder",
                         default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED) -> SensorDefinition:
    """The sensor over `folder` (default: landing_dir() at evaluation time)."""

    @sensor(name=name, job=ingest_dbn_files_job, minimum_interval_seconds=30, default_status=default_status,
            description="Ingests each new .dbn / .dbn.zst file of the landing folder as its own partition.")
    def _landing_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        root = Path(folder).expanduser().resolve() if folder else landing_dir()
        if not root.is_dir():
            return SkipReason(f"landing folder {root} does not exist")
        settle = settle_s if settle_s is not None else float(os.environ.get(ENV_SETTLE_S, DEFAULT_SETTLE_S))
        seen: dict[str, list[int]] = json.loads(context.cursor) if context.cursor else {}
        fresh = [(key, stamp) for key, stamp in landed_files(root, settle).items()
                 if seen.get(key) != list(stamp)][:MAX_FILES_PER_TICK]
        if not fresh:
            return SkipReason(f"no new DBN files in {root}")
        known = set(context.instance.get_dynamic_partitions(dbn_file_partitions.name or ""))
        new_keys = [key for key, _ in fresh if key not in known]
        requests = [
            RunRequest(
                run_key=f"{key}:{size}:{mtime}",
                partition_key=key,
                run_config={"ops": {"vendor__dbn_files": {"config": {"path": str(root / key)}}}},
                tags={"hdi/landing_file": key},
            )
            for key, (size, mtime) in fresh
        ]
        seen.update({key: list(stamp) for key, stamp in fresh})
        return SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[dbn_file_partitions.build_add_request(new_keys)] if new_keys else [],
            cursor=json.dumps(seen, sort_keys=True),
        )

    return _landing_sensor


landing_sensor = build_landing_sensor()
