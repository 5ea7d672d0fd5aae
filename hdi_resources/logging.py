"""Structured JSON logs (structlog): one JSON object per line with run, asset and partition in every line.

Dagster runs use it through the instance's `python_logs.dagster_handler_config` (see dagster.yaml): every
`context.log` line and every record of HDI's own python loggers (managed by Dagster during a run) reaches
`JsonLinesHandler`, whose `DagsterJsonFormatter` reads Dagster's per-record metadata (run id, step, run tags)
and renders it with structlog. Secrets are redacted with `hdi_resources.settings.redact` in every value.

Where lines go: `HDI_LOG_FILE` ("-" = stdout, which containers and Kubernetes collect), else
`$HDI_HOME/logs/hdi.jsonl`, so a terminal session (e.g. `hdi demo`) is not flooded.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from hdi_resources.settings import hdi_home, redact

ENV_LOG_FILE = "HDI_LOG_FILE"
# Python loggers HDI's code uses; Dagster captures them into the run's event log (python_logs in dagster.yaml).
HDI_LOGGER_NAMES = ("hdi", "hdi_assets", "hdi_resources")
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Fields every line carries, null when not applicable (e.g. a sensor evaluation has no run).
CONTEXT_FIELDS = ("run_id", "job", "asset", "partition", "step")


def log_destination() -> str:
    """"-" for stdout, else a file path (HDI_LOG_FILE, default $HDI_HOME/logs/hdi.jsonl)."""
    configured = os.environ.get(ENV_LOG_FILE, "").strip()
    if configured:
        return configured
    return str(hdi_home() / "logs" / "hdi.jsonl")


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: hide URL passwords and the Databento key in every value."""
    return {key: _redact_value(value) for key, value in event_dict.items()}


def dagster_context(record: logging.LogRecord) -> dict[str, Any]:
    """Run id, job, asset, partition and step of a record Dagster's log manager produced (None elsewhere)."""
    meta = getattr(record, "dagster_meta", None) or {}
    tags: Mapping[str, str] = meta.get("job_tags") or {}
    partition = tags.get(PARTITION_TAG)
    if partition is None and RANGE_START_TAG in tags:
        partition = f"{tags[RANGE_START_TAG]}...{tags.get(RANGE_END_TAG, '')}"
    event = meta.get("dagster_event")
    asset = None
    if event is not None:
        event_asset = getattr(event, "asset_key", None)
        if event_asset is not None:
            asset = event_asset.to_user_string()
        # A materialization of one partition names it; this is the partition even inside a range run.
        partition = getattr(event, "partition", None) or partition
    # Single-asset ops are named after their asset; a run-level line (no step) has no asset.
    asset = asset or meta.get("op_name")
    return {
        "run_id": meta.get("run_id"),
        "job": meta.get("job_name"),
        "asset": asset,
        "partition": partition,
        "step": meta.get("step_key"),
    }


def _add_record_context(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    record = event_dict.get("_record")
    context = dagster_context(record) if record is not None else dict.fromkeys(CONTEXT_FIELDS)
    for key, value in context.items():
        if event_dict.get(key) is None:
            event_dict[key] = value
    if record is not None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is not None:
            event_dict.setdefault("dagster_event", event.event_type_value)
        if meta.get("orig_message") is not None:
            # Dagster prefixes the message with job/run/step; those are fields here, keep the original text.
            event_dict["event"] = meta["orig_message"]
    return event_dict


_STANDARD_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _add_record_extras(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Fields passed as `extra=` (or bound on a structlog logger) become JSON fields."""
    record = event_dict.get("_record")
    if record is not None:
        for key, value in vars(record).items():
            if key not in _STANDARD_RECORD_ATTRS and not key.startswith(("dagster", "_")):
                event_dict.setdefault(key, value)
    return event_dict


def _processor_chain() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_record_extras,
        _add_record_context,
    ]


class DagsterJsonFormatter(structlog.stdlib.ProcessorFormatter):
    """A logging.Formatter rendering any stdlib record (Dagster's included) as one redacted JSON line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,
                structlog.processors.JSONRenderer(sort_keys=False, default=str),
            ],
            foreign_pre_chain=_processor_chain(),
            pass_foreign_args=False,
        )


class JsonLinesHandler(logging.Handler):
    """Appends formatted lines to HDI_LOG_FILE / $HDI_HOME/logs/hdi.jsonl, or stdout for "-"."""

    _lock_by_path: dict[str, threading.Lock] = {}

    def __init__(self, destination: str | None = None, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self.destination = destination or log_destination()
        self.setFormatter(DagsterJsonFormatter())

    def _stream(self) -> tuple[TextIO, bool]:
        if self.destination == "-":
            return sys.stdout, False
        path = Path(self.destination)
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a", encoding="utf-8"), True  # noqa: SIM115 - closed in emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream, owned = self._stream()
            try:
                # One write per line keeps concurrent run workers from interleaving inside a line.
                stream.write(line + "\n")
                stream.flush()
            finally:
                if owned:
                    stream.close()
        except Exception:  # a logging failure must never fail a run
            self.handleError(record)


def configure_structlog() -> None:
    """structlog loggers emit plain stdlib records (fields as `extra`), so Dagster can capture them in runs."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure_logging(level: int = logging.INFO, destination: str | None = None) -> None:
    """Outside Dagster runs (CLI, servers): send HDI's python loggers and structlog loggers to JSON lines."""
    configure_structlog()
    handler = JsonLinesHandler(destination)
    for name in HDI_LOGGER_NAMES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, JsonLinesHandler) for h in logger.handlers):
            logger.addHandler(handler)


def get_logger(name: str = "hdi", **context: Any) -> Any:
    """A structlog logger over the stdlib logger `name`: inside a run Dagster captures it (python_logs)."""
    configure_structlog()
    return structlog.stdlib.get_logger(name).bind(**context)
