"""Corrections to the library calendars, kept in ONE visible file: configs/calendar_overrides.yaml.

Each entry names a library calendar, the session's date (the library's label: the date the session
closes), the correction and its source. Only what we can show the library gets wrong goes there.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, RootModel

from hdi_core.config_files import config_dir, load_model

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


class OverridesFile(RootModel[dict[str, dict[dt.date, SessionOverride]]]):
    """The whole file: calendar name -> session date -> override."""


@lru_cache(maxsize=8)
def load_overrides(path: str) -> Overrides:
    """calendar name -> session date -> override; a missing file is no override. Errors name file and field."""
    if not Path(path).exists():
        return {}
    return load_model(path, OverridesFile).root
