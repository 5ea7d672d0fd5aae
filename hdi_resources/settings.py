"""Where HDI keeps things and which environment variables it reads; nothing here talks to a network."""

from __future__ import annotations

import os
import re

from hdi_core.config_files import REPO_ROOT, load_yaml
from hdi_core.environment import ENV_API_KEY, ENV_CA, ENV_DATABASE_URL, ENV_GATEWAY, ENV_HOME, hdi_home

__all__ = [
    "ENV_API_KEY", "ENV_CA", "ENV_DATABASE_URL", "ENV_GATEWAY", "ENV_HOME", "REPO_ROOT", "hdi_home", "load_yaml",
    "redact",
]

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")


def redact(text: str) -> str:
    """Hide passwords in URLs and the Databento key wherever they appear in a message."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    key = os.environ.get(ENV_API_KEY)
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    return text

