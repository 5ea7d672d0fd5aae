"""The Databento file (api_specific/databento_config.yaml under the config folder) as Pydantic models.

The one source of truth for Databento settings and their defaults: the resource (`DatabentoResource.from_config`)
and the retry layer read them from here. `load_config` refuses a broken file before any run, with one line
naming the file, the job and the field (unknown keys included)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hdi_core.config_files import REPO_ROOT, config_dir
from hdi_core.errors import ConfigError
from hdi_core.vendor_schemas.schemas import (  # noqa: F401  (re-exported: the job file's vocabulary)
    FAMILIES,
    SCHEMAS,
    UNSUPPORTED_SCHEMAS,
    SchemaSpec,
    normalize_schema,
    schema_spec,
)

CONFIG_FILE = "api_specific/databento_config.yaml"  # relative to the config folder


def default_config_path() -> Path:
    """The Databento file in the config folder (HDI_CONFIG_DIR, else the repository's configs/), read at call time."""
    return config_dir() / CONFIG_FILE


def __getattr__(name: str) -> Any:
    # DEFAULT_CONFIG_PATH follows HDI_CONFIG_DIR: computed when read, not frozen at import.
    if name == "DEFAULT_CONFIG_PATH":
        return default_config_path()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


STYPES_IN = ("continuous", "instrument_id", "parent", "raw_symbol")
_CONTINUOUS = re.compile(r"^[A-Za-z0-9]+\.[cnv]\.\d+$")
_PARENT = re.compile(r"^\S+\.(FUT|OPT|SPOT|MLEG)$", re.IGNORECASE)
_DATASET = re.compile(r"^[A-Z0-9]+\.[A-Z0-9]+$")


def _stat_type_code(value: int | str) -> int:
    import databento_dbn

    if isinstance(value, int):
        return int(databento_dbn.StatType(value).value)
    name = str(value).strip().upper().replace("-", "_").replace(" ", "_")
    if name.isdigit():
        return int(databento_dbn.StatType(int(name)).value)
    member = getattr(databento_dbn.StatType, name, None)
    if member is None:
        raise ValueError(f"unknown stat type {value!r}")
    return int(member.value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Strict):
    key_env_var: str = Field(default="DATABENTO_API_KEY", min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    budget_usd: float = Field(default=50.0, gt=0)


class RetryPolicySettings(_Strict):
    """Backoff for Databento calls; these defaults are THE defaults (hdi_resources.retry.RetryPolicy reads them)."""

    max_attempts: int = Field(default=6, ge=1, le=50)
    base_delay_s: float = Field(default=0.5, ge=0)
    max_delay_s: float = Field(default=30.0, ge=0)
    jitter_s: float = Field(default=0.25, ge=0)
    max_retry_after_s: float = Field(default=60.0, ge=0)
    retry_on_status: list[int] = Field(default_factory=lambda: [408, 429, 500, 502, 503, 504])

    @field_validator("retry_on_status")
    @classmethod
    def _http_statuses(cls, value: list[int]) -> list[int]:
        bad = [s for s in value if not 400 <= s <= 599]
        if bad:
            raise ValueError(f"not HTTP error statuses: {bad}")
        return value


class DatabentoJob(_Strict):
    """One extraction job: a dataset, a schema, symbols and a [start_date, end_date) range (UTC dates)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    dataset: str
    schema_name: str = Field(alias="schema")
    stype_in: str = "raw_symbol"  # before symbols: the symbol check reads it
    symbols: list[str]
    start_date: dt.date
    end_date: dt.date
    date_chunk_interval_days: int | None = Field(default=None, ge=1, le=3660)
    stat_types: list[int] | None = None
    description: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        if not _DATASET.match(value):
            raise ValueError(f"{value!r} is not a Databento dataset id (like GLBX.MDP3)")
        return value

    @field_validator("schema_name", mode="before")
    @classmethod
    def _schema(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a schema name like ohlcv-1m or trades")
        return normalize_schema(value)

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [s for s in (part.strip() for part in value.split(",")) if s]
        if isinstance(value, list) and not value:
            raise ValueError("must name at least one symbol")
        return value

    @field_validator("stype_in")
    @classmethod
    def _stype(cls, value: str) -> str:
        if value not in STYPES_IN:
            raise ValueError(f"must be one of {', '.join(STYPES_IN)} (got {value!r})")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols_match_stype(cls, value: list[str], info: ValidationInfo) -> list[str]:
        stype = info.data.get("stype_in")
        for symbol in value:
            if not symbol.strip():
                raise ValueError("empty symbol")
            if stype == "continuous" and not _CONTINUOUS.match(symbol):
                raise ValueError(
                    f"{symbol!r} is not a continuous symbol (want ROOT.c.N, ROOT.v.N or ROOT.n.N)"
                )
            if stype == "parent" and not _PARENT.match(symbol):
                raise ValueError(f"{symbol!r} is not a parent symbol (want ROOT.FUT or ROOT.OPT)")
            if stype == "instrument_id" and not symbol.isdigit():
                raise ValueError(f"{symbol!r} is not an instrument id")
        return value

    @field_validator("end_date")
    @classmethod
    def _end_after_start(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("start_date")
        if start is not None and value <= start:
            raise ValueError(f"must be after start_date ({start.isoformat()}); end_date is exclusive")
        return value

    @field_validator("stat_types", mode="before")
    @classmethod
    def _stat_types(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise ValueError("must be a non-empty list of stat type names or codes")
        return [_stat_type_code(v) for v in value]

    @model_validator(mode="after")
    def _stat_types_only_for_statistics(self) -> DatabentoJob:
        if self.stat_types is not None and self.schema_name != "statistics":
            raise ValueError("stat_types: only allowed with schema statistics")
        return self

    @property
    def spec(self) -> SchemaSpec:
        return SCHEMAS[self.schema_name]

    @property
    def source_schema(self) -> str:
        """The Databento schema to request (ohlcv-1m for the derived ohlcv-5m and ohlcv-15m)."""
        return self.spec.source_schema

    @property
    def target_table(self) -> str:
        return self.spec.target_table

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.start_date, dt.time(), tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.end_date, dt.time(), tzinfo=dt.UTC)


_DEFAULT_VALIDATION = {family: f"hdi_core.vendor_schemas.rules:{family}" for family in FAMILIES}


class DatabentoConfig(_Strict):
    api: ApiSettings = Field(default_factory=ApiSettings)
    retry_policy: RetryPolicySettings = Field(default_factory=RetryPolicySettings)
    date_chunk_interval_days: int = Field(default=31, ge=1, le=3660)
    parallel_fetches: int = Field(default=2, ge=1, le=16)
    mapping_config_path: str = "databento_mappings.yaml"
    validation_schema_paths: dict[str, str] = Field(default_factory=lambda: dict(_DEFAULT_VALIDATION))
    dead_letter_dir: str = "dead_letter"
    jobs: list[DatabentoJob] = Field(default_factory=list)
    source_path: Path | None = Field(default=None, exclude=True)

    @field_validator("validation_schema_paths")
    @classmethod
    def _validation_refs(cls, value: dict[str, str]) -> dict[str, str]:
        for family, ref in value.items():
            if family not in FAMILIES:
                raise ValueError(f"unknown schema family {family!r} (want {', '.join(FAMILIES)})")
            if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", ref):
                raise ValueError(f"{family}: {ref!r} is not a module:name reference")
        return value

    @field_validator("jobs")
    @classmethod
    def _unique_names(cls, value: list[DatabentoJob]) -> list[DatabentoJob]:
        seen: set[str] = set()
        for job in value:
            if job.name in seen:
                raise ValueError(f"two jobs are named {job.name!r}")
            seen.add(job.name)
        return value

    def job(self, name: str) -> DatabentoJob:
        for job in self.jobs:
            if job.name == name:
                return job
        raise ConfigError(f"no job named {name!r} (jobs: {', '.join(j.name for j in self.jobs) or 'none'})")

    def chunk_days(self, job: DatabentoJob) -> int:
        return job.date_chunk_interval_days or self.date_chunk_interval_days

    def resolve(self, relative: str) -> Path:
        """A path from the config: relative to the config file's folder, else to the repository root."""
        path = Path(relative)
        if path.is_absolute():
            return path
        if self.source_path is not None and (self.source_path.parent / path).exists():
            return self.source_path.parent / path
        return REPO_ROOT / path

    @property
    def mapping_path(self) -> Path:
        return self.resolve(self.mapping_config_path)


def _describe_error(err: dict[str, Any], raw: Any) -> str:
    """One pydantic error -> `job 'name': field: message` (or `field.sub: message` outside jobs)."""
    loc = list(err.get("loc", ()))
    msg = str(err.get("msg", "invalid"))
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    if err.get("type") == "missing":
        msg = "field required"
    elif err.get("type") == "extra_forbidden":
        msg = "unknown field"
    prefix = ""
    if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int):
        index = loc[1]
        name = None
        if isinstance(raw, dict) and isinstance(raw.get("jobs"), list) and index < len(raw["jobs"]):
            entry = raw["jobs"][index]
            name = entry.get("name") if isinstance(entry, dict) else None
        prefix = f"job {name!r}: " if name else f"job #{index + 1}: "
        loc = loc[2:]
    field = ".".join("schema" if part == "schema_name" else str(part) for part in loc)
    if not field and ": " in msg and msg.split(": ", 1)[0].isidentifier():
        field, msg = msg.split(": ", 1)
    return f"{prefix}{field}: {msg}" if field else f"{prefix}{msg}"


def parse_config(
    raw: Any, source: str = "databento_config.yaml", path: Path | None = None
) -> DatabentoConfig:
    """Validate an already-parsed YAML document; ConfigError with one line on the first problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: must be a mapping of settings, not {type(raw).__name__}")
    try:
        config = DatabentoConfig.model_validate({**raw, "source_path": path})
    except ValidationError as exc:
        errors = exc.errors()
        more = (
            f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
            if len(errors) > 1
            else ""
        )
        raise ConfigError(f"{source}: {_describe_error(errors[0], raw)}{more}") from None
    return config


def load_config(path: str | Path | None = None, *, check_references: bool = True) -> DatabentoConfig:
    """Read and validate the file (default: `default_config_path()`); with `check_references`, also check
    that the mapping file and rule sets it names exist."""
    path = Path(path) if path is not None else default_config_path()
    shown = shown_path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{shown}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{shown}: not valid YAML{where} ({problem})") from None
    config = parse_config(raw, shown, path.resolve())
    if check_references:
        _check_references(config, shown)
    return config


def _check_references(config: DatabentoConfig, shown: str) -> None:
    from hdi_core.vendor_schemas.mapping import load_mappings

    mapping_path = config.mapping_path
    if not mapping_path.exists():
        raise ConfigError(f"{shown}: mapping_config_path: file not found: {config.mapping_config_path}")
    mappings = load_mappings(mapping_path)
    missing = [f for f in FAMILIES if f not in mappings.families]
    if missing:
        raise ConfigError(
            f"{shown}: mapping_config_path: {config.mapping_config_path} has no mapping for "
            f"{', '.join(missing)}"
        )
    import importlib

    for family, ref in config.validation_schema_paths.items():
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise ConfigError(
                f"{shown}: validation_schema_paths.{family}: no module {module_name!r}"
            ) from None
        sets = getattr(module, "RULE_SETS", {})
        if attr not in sets and not hasattr(module, attr):
            raise ConfigError(
                f"{shown}: validation_schema_paths.{family}: {module_name} has no rule set {attr!r}"
            )


def shown_path(path: Path) -> str:
    """The path as the user should read it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
