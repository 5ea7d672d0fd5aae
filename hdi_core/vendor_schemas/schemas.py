"""The vendor schemas HDI stores: what each is fetched as from Databento, its family and its table."""

from __future__ import annotations

from dataclasses import dataclass

from hdi_core.errors import ConfigError


@dataclass(frozen=True)
class SchemaSpec:
    """One schema a job may ask for: what is fetched from Databento for it and where its rows are stored."""

    name: str
    source_schema: str  # the Databento schema actually requested (5m/15m are built from 1m)
    family: str  # mapping and rule family: ohlcv, trades, tbbo, statistics, definition
    target_table: str
    granularity: str | None = None  # only for OHLCV: the value of ohlcv_data.granularity

    @property
    def derived(self) -> bool:
        return self.source_schema != self.name

    @property
    def bar_minutes(self) -> int | None:
        """Bar length in minutes for derived OHLCV schemas (5, 15), None otherwise."""
        return int(self.granularity[:-1]) if self.derived and self.granularity else None


SCHEMAS: dict[str, SchemaSpec] = {
    spec.name: spec
    for spec in (
        SchemaSpec("ohlcv-1s", "ohlcv-1s", "ohlcv", "ohlcv_data", "1s"),
        SchemaSpec("ohlcv-1m", "ohlcv-1m", "ohlcv", "ohlcv_data", "1m"),
        SchemaSpec("ohlcv-5m", "ohlcv-1m", "ohlcv", "ohlcv_data", "5m"),
        SchemaSpec("ohlcv-15m", "ohlcv-1m", "ohlcv", "ohlcv_data", "15m"),
        SchemaSpec("ohlcv-1h", "ohlcv-1h", "ohlcv", "ohlcv_data", "1h"),
        SchemaSpec("ohlcv-1d", "ohlcv-1d", "ohlcv", "ohlcv_data", "1d"),
        SchemaSpec("trades", "trades", "trades", "trades_data"),
        SchemaSpec("tbbo", "tbbo", "tbbo", "tbbo_data"),
        SchemaSpec("statistics", "statistics", "statistics", "statistics_data"),
        SchemaSpec("definition", "definition", "definition", "definitions_data"),
    )
}
FAMILIES = ("ohlcv", "trades", "tbbo", "statistics", "definition")
# Databento schemas HDI reads but does not store: named so the refusal can say so.
UNSUPPORTED_SCHEMAS = frozenset(
    {
        "mbo",
        "mbp-1",
        "mbp-10",
        "bbo-1s",
        "bbo-1m",
        "cbbo-1s",
        "cbbo-1m",
        "cmbp-1",
        "tcbbo",
        "status",
        "imbalance",
    }
)
_SCHEMA_ALIASES = {
    "trade": "trades",
    "definitions": "definition",
    "stats": "statistics",
    "statistics-market-summary": "statistics",
    "statistics-daily-summary": "statistics",
}


def normalize_schema(value: str) -> str:
    """Seed spellings (`ohlcv.1m`, `OHLCV_1M`, `statistics.market_summary`) -> Databento's (`ohlcv-1m`)."""
    key = str(value).strip().lower().replace("_", "-").replace(".", "-")
    key = _SCHEMA_ALIASES.get(key, key)
    if key in SCHEMAS:
        return key
    if key in UNSUPPORTED_SCHEMAS:
        raise ValueError(f"schema {value!r} is not stored by HDI (supported: {', '.join(SCHEMAS)})")
    raise ValueError(f"unknown schema {value!r} (supported: {', '.join(SCHEMAS)})")


def schema_spec(schema: str) -> SchemaSpec:
    """The spec of a (possibly seed-spelled) schema name; ConfigError when it is not supported."""
    try:
        return SCHEMAS[normalize_schema(schema)]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
