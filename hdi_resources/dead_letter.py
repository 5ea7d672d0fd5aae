"""Dead-letter files: quarantined records as JSON lines under HDI_HOME, beside the quarantine table."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import pyarrow as pa

from hdi_core.vendor_schemas.rules import json_default
from hdi_resources.settings import hdi_home

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def write_dead_letter(quarantined: pa.Table, job: str, run_id: str | int, folder: str = "dead_letter") -> Path:
    """Quarantined rows as JSON lines under HDI_HOME/<folder>/<job>/<run>.jsonl (written atomically); `folder` is
    the config's dead_letter_dir."""
    job_part = _UNSAFE.sub("_", str(job)).strip("._") or "job"
    run_part = _UNSAFE.sub("_", str(run_id)).strip("._") or "run"
    folder = hdi_home() / folder / job_part
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_part}.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    written_at = dt.datetime.now(dt.UTC).isoformat()
    with open(tmp, "w") as fh:
        for row in quarantined.to_pylist():
            record = row.get("record")
            try:
                record = json.loads(record) if isinstance(record, str) else record
            except json.JSONDecodeError:
                pass  # keep a non-JSON record as the text it is
            line = {
                "job": str(job),
                "run_id": str(run_id),
                "quarantined_at": written_at,
                "target": row.get("target"),
                "rule": row.get("rule"),
                "message": row.get("message"),
                "record": record,
            }
            fh.write(json.dumps(line, default=json_default, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


