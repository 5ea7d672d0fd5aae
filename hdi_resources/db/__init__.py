"""HDI's storage layer: embedded or external PostgreSQL/TimescaleDB, migrations, bulk loads, query, stats."""

from typing import Any

from .core import ENV_DATABASE_APP_URL, Database, get_database, load_migrations
from .read import SCHEMAS
from .server import ensure_embedded_server, stop_embedded_server, stop_server

__all__ = ["Database", "ENV_DATABASE_APP_URL", "IngestRun", "LoadResult", "SCHEMAS", "UpsertResult",
           "ensure_embedded_server", "get_database", "load_migrations", "stop_embedded_server", "stop_server"]

_LAZY = {"IngestRun": ".audit", "LoadResult": ".replace", "UpsertResult": ".upsert"}


def __getattr__(name: str) -> Any:
    """The load modules (and numba behind them) are imported on first use: a read command never pays for them."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
