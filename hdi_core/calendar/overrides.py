"""Corrections to the library calendars, kept in ONE visible file: configs/calendar_overrides.yaml.

Each entry names a library calendar, the session's date (the library's label: the date the session
closes), the correction and its source. Only what we can show the library gets wrong goes there.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hdi_core.config_files import config_dir
from hdi_core.errors import HdiError

OVERRIDES_FILE = "calendar_overrides.yaml"


class SessionOverride(BaseModel):
    """One session corrected: a different close (Chicago wall time) or no session at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    close: dt.time | None = None
    closed: bool = False
    source: str = Field(min_length=1)


Overrides = dict[str, dict[dt.date, SessionOverride]]


def overrides_path() -> Path:
    return config_dir() / OVERRIDES_FILE


@lru_cache(maxsize=8)
def load_overrides(path: str) -> Overrides:
    """calendar name -> session date -> override; a missing file is no override. Errors name file and field."""
    file = Path(path)
    if not file.exists():
        return {}
    raw = yaml.safe_load(file.read_text()) or {}
    out: Overrides = {}
    for calendar, days in raw.items():
        out[str(calendar)] = {}
        for day, spec in (days or {}).items():
            where = f"{file}: {calendar}.{day}"
            try:
                date = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
                out[str(calendar)][date] = SessionOverride.model_validate(spec)
            except (ValueError, ValidationError) as exc:
                first = exc.errors()[0] if isinstance(exc, ValidationError) else None
                field = f".{'.'.join(str(p) for p in first['loc'])}: {first['msg']}" if first else f": {exc}"
                raise HdiError(f"{where}{field}") from None
    return out
