"""The Dagster instance HDI runs on: renders $DAGSTER_HOME/dagster.yaml from the repo's dagster.yaml.

Storage: PostgreSQL through dagster-postgres when HDI_DAGSTER_PG_URL is set (the file names the variable, the
URL itself is never written to disk), else SQLite under DAGSTER_HOME (zero setup). The queued run coordinator,
concurrency pools/tag limits (Databento fetches) and run retries come from the repo's dagster.yaml unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from hdi_core.errors import ConfigError
from hdi_resources.settings import REPO_ROOT, hdi_home, redact

ENV_DAGSTER_PG_URL = "HDI_DAGSTER_PG_URL"
INSTANCE_TEMPLATE = REPO_ROOT / "dagster.yaml"
POSTGRES_STORAGE = {"postgres": {"postgres_url": {"env": ENV_DAGSTER_PG_URL}}}


def check_dagster_pg_url(url: str) -> None:
    """dagster-postgres needs an explicit psycopg2 driver with SQLAlchemy 2 (a bare postgresql:// is psycopg 3)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme != "postgresql+psycopg2":
        raise ConfigError(
            f"{ENV_DAGSTER_PG_URL}: expected postgresql+psycopg2://user:password@host:port/dagster, "
            f"got {redact(url)}"
        )


def instance_config(use_postgres: bool | None = None) -> dict[str, Any]:
    """The dagster.yaml content: the repo template, plus PostgreSQL storage when HDI_DAGSTER_PG_URL is set."""
    config = yaml.safe_load(INSTANCE_TEMPLATE.read_text()) or {}
    if use_postgres is None:
        url = os.environ.get(ENV_DAGSTER_PG_URL, "").strip()
        if url:
            check_dagster_pg_url(url)
        use_postgres = bool(url)
    if use_postgres:
        config["storage"] = POSTGRES_STORAGE
    else:
        config.pop("storage", None)
    return config


def write_dagster_yaml(home: Path, use_postgres: bool | None = None) -> Path:
    """Render dagster.yaml into the folder `home` (created if needed); returns the file."""
    home.mkdir(parents=True, exist_ok=True)
    header = "# Rendered by hdi_resources.instance from the repo's dagster.yaml; edit that file, not this one.\n"
    path = home / "dagster.yaml"
    path.write_text(header + yaml.safe_dump(instance_config(use_postgres), sort_keys=False))
    return path


def prepare_dagster_home(home: Path | None = None) -> Path:
    """Write dagster.yaml into DAGSTER_HOME (default $HDI_HOME/dagster), export DAGSTER_HOME, return it."""
    home = Path(home) if home is not None else hdi_home() / "dagster"
    write_dagster_yaml(home)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
