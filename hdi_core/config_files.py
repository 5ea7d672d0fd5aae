"""Where the configuration files are: `configs/` beside the code, or HDI_CONFIG_DIR; read as plain YAML."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hdi_core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_CONFIG_DIR = "HDI_CONFIG_DIR"
ModelT = TypeVar("ModelT", bound=BaseModel)


def config_dir() -> Path:
    """HDI_CONFIG_DIR, else the repository's `configs/` folder (read at call time, so tests can point elsewhere)."""
    return Path(os.environ.get(ENV_CONFIG_DIR) or REPO_ROOT / "configs")


def load_yaml(name: str) -> dict[str, Any]:
    """Read a YAML file from the config folder; an empty file is an empty mapping."""
    with open(config_dir() / name) as fh:
        return yaml.safe_load(fh) or {}


def validation_message(source: str | Path, exc: ValidationError) -> str:
    """A Pydantic error as one line naming the file and the field: `<file>: symbols.ZB.tick: <message>`."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")  # a validator's own message names its field
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{source}: {where}: {message}{more}" if where else f"{source}: {message}{more}"


def load_model(path: str | Path, model: type[ModelT]) -> ModelT:
    """Read a YAML file and validate it as `model`; ConfigError in one line naming the file and field."""
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}".splitlines()[0]) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(validation_message(file, exc)) from None


def with_overrides(defaults: ModelT, override: dict[str, Any]) -> ModelT:
    """The defaults with a product's nested overrides merged in, validated again as a whole."""
    return type(defaults).model_validate(_deep_merge(defaults.model_dump(), override))


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _deep_merge(out[key], value) if both else value
    return out
