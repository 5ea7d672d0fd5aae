"""The environment variables HDI and its gateway agree on, named once, and the HDI_HOME folder."""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "HDI_HOME"
ENV_API_KEY = "DATABENTO_API_KEY"
ENV_GATEWAY = "HDI_DATABENTO_GATEWAY"
ENV_CA = "HDI_DATABENTO_CA"
ENV_DATABASE_URL = "HDI_DATABASE_URL"


def hdi_home() -> Path:
    """Everything HDI writes locally lives under HDI_HOME (default ./.hdi)."""
    home = Path(os.environ.get(ENV_HOME, ".hdi")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home
