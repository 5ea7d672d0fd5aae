"""Where the configuration files are: `configs/` beside the code, or HDI_CONFIG_DIR; read as plain YAML."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_CONFIG_DIR = "HDI_CONFIG_DIR"


def config_dir() -> Path:
    """HDI_CONFIG_DIR, else the repository's `configs/` folder (read at call time, so tests can point elsewhere)."""
    return Path(os.environ.get(ENV_CONFIG_DIR) or REPO_ROOT / "configs")


def load_yaml(name: str) -> dict[str, Any]:
    """Read a YAML file from the config folder; an empty file is an empty mapping."""
    with open(config_dir() / name) as fh:
        return yaml.safe_load(fh) or {}
