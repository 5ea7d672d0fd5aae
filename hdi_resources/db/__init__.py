"""HDI's storage layer: embedded or external PostgreSQL/TimescaleDB, migrations, bulk loads, query, stats."""

from .audit import IngestRun
from .core import ENV_DATABASE_APP_URL, Database, get_database, load_migrations
from .read import SCHEMAS
from .replace import LoadResult
from .server import ensure_embedded_server, stop_embedded_server, stop_server
from .upsert import UpsertResult

__all__ = ["Database", "ENV_DATABASE_APP_URL", "IngestRun", "LoadResult", "SCHEMAS", "UpsertResult",
           "ensure_embedded_server", "get_database", "load_migrations", "stop_embedded_server", "stop_server"]
