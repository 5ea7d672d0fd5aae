"""Where HDI keeps things and which environment variables it reads; nothing here talks to a network."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = Path(os.environ.get("HDI_CONFIG_DIR", REPO_ROOT / "configs"))

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


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")


def redact(text: str) -> str:
    """Hide passwords in URLs and the Databento key wherever they appear in a message."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    key = os.environ.get(ENV_API_KEY)
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    return text


def load_yaml(name: str) -> dict:
    """Read a YAML file from configs/ (HDI_CONFIG_DIR overrides the folder)."""
    path = CONFIG_DIR / name
    with open(path) as fh:
        return yaml.safe_load(fh) or {}
