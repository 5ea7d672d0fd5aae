"""The HDI database: which server (external HDI_DATABASE_URL or the embedded one), which roles, migrations.

A little over 400 lines: the Database facade delegates every load and read to its own module in one line each."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from hdi_core.errors import ConfigError, HdiError
from hdi_resources.settings import ENV_DATABASE_URL, redact

from . import server

log = logging.getLogger(__name__)

ENV_DATABASE_APP_URL = "HDI_DATABASE_APP_URL"  # optional least-privileged URL for an external server
MIGRATION_LOCK_KEY = 0x4844_4931  # advisory lock id shared by every migration runner ("HDI1")
_CONNECT_OPTIONS = "-c timezone=UTC -c temp_buffers=256MB"


def _psycopg2_url(url: str | URL) -> URL:
    """dagster-postgres and SQLAlchemy 2 need the driver spelled out (plain postgresql:// means psycopg 3)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises several types for a malformed URL
        raise ConfigError(f"{ENV_DATABASE_URL}: not a valid database URL ({redact(str(url))})") from exc
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(f"{ENV_DATABASE_URL}: only PostgreSQL is supported, got {redact(str(url))}")
    return parsed.set(drivername="postgresql+psycopg2")


def url_string(url: URL) -> str:
    """The full URL with its password, for handing to libraries; never print it, print redact() of it."""
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str
    checksum: str


def load_migrations() -> list[Migration]:
    """The versioned SQL files shipped in hdi_resources/migrations, in order."""
    folder = resources.files("hdi_resources.migrations")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            text = entry.read_text(encoding="utf-8")
            found.append(Migration(match[1], match[2], text, hashlib.sha256(text.encode()).hexdigest()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise HdiError(f"hdi_resources/migrations: duplicate migration version in {versions}")
    return found


_IF_BLOCK = re.compile(r"^-- @if (\w+)\n(.*?)^-- @endif\n?", re.S | re.M)
_NATIVE_ONLY = re.compile(r"/\*@native:(.*?)\*/", re.S)


def render_migration(sql_text: str, mode: str) -> str:
    """Keep only the blocks for this storage mode and spell out native partitioning where asked."""
    text = _IF_BLOCK.sub(lambda m: m[2] if m[1] == mode else "", sql_text)
    return _NATIVE_ONLY.sub(lambda m: m[1].strip() if mode == "native" else "", text)


_SQL_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def is_empty_sql(sql_text: str) -> bool:
    """True when a rendered migration holds nothing but comments and whitespace (the server refuses to run it)."""
    return not _SQL_COMMENTS.sub("", sql_text).strip(" \t\r\n;")


def _connect(engine: Engine) -> Any:
    """A pooled DB-API connection; a refused or failed login becomes one redacted line."""
    import psycopg2

    try:
        return engine.raw_connection()
    except (sa.exc.OperationalError, psycopg2.OperationalError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise HdiError(f"cannot connect to {redact(url_string(engine.url))}: {redact(detail)}") from None


class Database:
    """One HDI database: engines for the owner (migrations) and the app role (loads, reads).

    Without HDI_DATABASE_URL it starts or reuses the embedded server under hdi_home()/postgres."""

    def __init__(self, url: str | None = None, app_url: str | None = None,
                 home: Path | str | None = None) -> None:
        url = url if url is not None else os.environ.get(ENV_DATABASE_URL) or None
        app_url = app_url if app_url is not None else os.environ.get(ENV_DATABASE_APP_URL) or None
        home = Path(home) if home else None
        self.home = home
        self.embedded: server.RunningServer | None = None
        self.started_here = False
        if url:
            self.mode = "external"
            self.owner_url = _psycopg2_url(url)
            self.app_url = _psycopg2_url(app_url) if app_url else self.owner_url
        else:
            self.mode = "embedded"
            was_running = server.read_postmaster(server.postgres_root(home) / "data") is not None
            self.embedded = server.ensure_embedded_server(home)
            self.started_here = not was_running
            creds, port = self.embedded.credentials, self.embedded.port
            self.owner_url = URL.create("postgresql+psycopg2", server.OWNER_ROLE, creds.owner_password,
                                        "127.0.0.1", port, server.DATABASE)
            self.app_url = URL.create("postgresql+psycopg2", server.APP_ROLE, creds.app_password,
                                      "127.0.0.1", port, server.DATABASE)
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()
        self._migrated = False
        self._storage_mode: str | None = None
        self._columns_cache: dict[str, Any] = {}

    # -- connections -------------------------------------------------------------------------------------
    def _engine(self, which: str) -> Engine:
        with self._lock:
            if which not in self._engines:
                url = self.owner_url if which == "owner" else self.app_url
                self._engines[which] = sa.create_engine(
                    url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                    connect_args={"options": _CONNECT_OPTIONS, "application_name": f"hdi-{which}",
                                  "connect_timeout": 15})
            return self._engines[which]

    @property
    def owner_engine(self) -> Engine:
        return self._engine("owner")

    @property
    def engine(self) -> Engine:
        """The app-role engine; applies pending migrations on first use."""
        self.ensure_migrated()
        return self._engine("app")

    @contextmanager
    def raw(self, which: str = "app") -> Iterator[Any]:
        """A psycopg2 connection from the pool (for COPY); committed on success, rolled back on error."""
        engine = self.engine if which == "app" else self.owner_engine
        conn = _connect(engine)
        if conn.driver_connection.autocommit:  # a borrower may have switched it on; loads need transactions
            conn.driver_connection.autocommit = False
        try:
            yield conn.driver_connection
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def describe(self) -> str:
        """The app URL with the password hidden, for messages."""
        return redact(url_string(self.app_url))

    def dagster_url(self) -> str:
        """A postgresql+psycopg2 URL for dagster-postgres storage (embedded: its own database, owner role)."""
        if self.mode == "embedded":
            return url_string(self.owner_url.set(database=server.DAGSTER_DATABASE))
        return url_string(self.owner_url)

    def close(self, stop_if_started: bool = False) -> None:
        """Dispose pools; stop the embedded server only if this object started it and the caller asks."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        if stop_if_started and self.started_here and self.embedded is not None:
            server.stop_server(self.embedded.pid)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- migrations --------------------------------------------------------------------------------------
    def ensure_migrated(self) -> None:
        if not self._migrated:
            self.migrate()

    def migrate(self) -> list[str]:
        """Apply pending migrations as the owner role (advisory-locked); returns the names applied."""
        applied_now: list[str] = []
        conn = _connect(self.owner_engine)
        try:
            cur = conn.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            cur.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                               version TEXT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
                               applied_at TIMESTAMPTZ NOT NULL DEFAULT now())""")
            cur.execute("CREATE TABLE IF NOT EXISTS hdi_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            mode = self._decide_storage_mode(cur)
            cur.execute("SELECT version, checksum FROM schema_migrations")
            done = dict(cur.fetchall())
            for migration in load_migrations():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise HdiError(f"migration {migration.version}_{migration.name}.sql changed after it "
                                       "was applied; add a new migration instead of editing it")
                    continue
                rendered = render_migration(migration.sql, mode)
                if is_empty_sql(rendered):  # e.g. native-only: recorded so it is never tried again in this mode
                    log.info("migration %s_%s has nothing for %s; recorded as applied",
                             migration.version, migration.name, mode)
                else:
                    log.info("applying migration %s_%s (%s)", migration.version, migration.name, mode)
                    try:
                        cur.execute(rendered)
                    except Exception as exc:
                        raise HdiError(f"migration {migration.version}_{migration.name}.sql failed: "
                                       f"{redact(str(exc)).strip()}") from None
                cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum))
                applied_now.append(f"{migration.version}_{migration.name}")
            self._grant_app(cur)
            conn.commit()
            if applied_now:
                self._columns_cache.clear()  # a migration may have changed a table's columns
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
        self._migrated = True
        self._storage_mode = mode
        return applied_now

    def _decide_storage_mode(self, cur: Any) -> str:
        """TimescaleDB when the extension can be created, else native partitioning; fixed at first run."""
        cur.execute("SELECT value FROM hdi_meta WHERE key = 'storage_mode'")
        row = cur.fetchone()
        if row:
            return row[0]
        cur.execute("SAVEPOINT try_timescale")
        try:
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            cur.execute("RELEASE SAVEPOINT try_timescale")
            mode = "timescaledb"
        except Exception as exc:  # noqa: BLE001 - any failure means the extension is not usable here
            cur.execute("ROLLBACK TO SAVEPOINT try_timescale")
            log.info("TimescaleDB not available (%s); using native partitioning", str(exc).strip())
            mode = "native"
        cur.execute("INSERT INTO hdi_meta VALUES ('storage_mode', %s)", (mode,))
        return mode

    def _grant_app(self, cur: Any) -> None:
        """Give the app role row rights on every table and the partition function, and nothing more."""
        app_user = self.app_url.username
        if not app_user or app_user == self.owner_url.username:
            return
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (app_user,))
        if not cur.fetchone():
            log.warning("app role %s does not exist; skipping grants", app_user)
            return
        from psycopg2 import sql

        role = sql.Identifier(app_user)
        for statement in (
            "GRANT USAGE ON SCHEMA public TO {}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {}",
        ):
            cur.execute(sql.SQL(statement).format(role))
        # HDI's own functions, in their own schema (migration 0012; absent while older versions are applied).
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'hdi'")
        if cur.fetchone():
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA hdi TO {}").format(role))
            cur.execute(sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA hdi TO {}").format(role))
        cur.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
            sql.Identifier(self.owner_url.database or ""), role))
        cur.execute(sql.SQL("REVOKE ALL ON schema_migrations, hdi_meta FROM {}").format(role))
        cur.execute(sql.SQL("GRANT SELECT ON schema_migrations, hdi_meta TO {}").format(role))

    @property
    def storage_mode(self) -> str:
        """'timescaledb' or 'native'."""
        if self._storage_mode is None:
            self.ensure_migrated()
        return self._storage_mode or "native"

    # -- information -------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Mode, server version, redacted URL and row counts of HDI's tables."""
        self.ensure_migrated()
        with self.raw() as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
            ts_row = cur.fetchone()
            counts: dict[str, int] = {}
            for table in INFO_TABLES:
                cur.execute(f"SELECT count(*) FROM {table}")  # table names come from a fixed tuple
                counts[table] = cur.fetchone()[0]
            cur.execute("SELECT count(*), max(version) FROM schema_migrations")
            n_migrations, last_version = cur.fetchone()
            if ts_row:
                from .compression import compression_sizes

                compression = compression_sizes(cur)
        return {
            "mode": self.storage_mode,
            "timescaledb_version": ts_row[0] if ts_row else None,
            "server": "embedded" if self.mode == "embedded" else "external",
            "server_version": version,
            "server_pid": self.embedded.pid if self.embedded else None,
            "url": self.describe(),
            "migrations": {"applied": n_migrations, "latest": last_version},
            "row_counts": counts,
            "compression": compression if ts_row else {},
        }

    # -- loading, auditing and reading (implemented in replace / upsert / quarantine / audit / read.py) ---
    def replace_partition(self, table: str, key_columns_values: dict[str, Any], data: Any,
                          **kwargs: Any) -> Any:
        from .replace import replace_partition

        result = replace_partition(self, table, key_columns_values, data, **kwargs)
        keys = key_columns_values
        if table == "continuous_bars" and self.storage_mode == "timescaledb" and "window" in keys:
            from .compression import compress_loaded_bars  # a loaded window is final: compress its chunks

            compress_loaded_bars(self, keys["continuous_symbol"], keys["window"])
        return result

    def upsert_rows(self, table: str, data: Any, key: list[str] | None = None, **kwargs: Any) -> Any:
        from .upsert import upsert_rows

        return upsert_rows(self, table, data, key, **kwargs)

    def store_quarantined(self, target: str, quarantined: Any, **kwargs: Any) -> None:
        from .quarantine import store_quarantined

        store_quarantined(self, target, quarantined, **kwargs)

    def start_ingest_run(self, **kwargs: Any) -> int:
        from .audit import start_ingest_run

        return start_ingest_run(self, **kwargs)

    def finish_ingest_run(self, run_id: int, **kwargs: Any) -> None:
        from .audit import finish_ingest_run

        finish_ingest_run(self, run_id, **kwargs)

    def record_ingest_run(self, **kwargs: Any) -> Any:
        from .audit import record_ingest_run

        return record_ingest_run(self, **kwargs)

    def previous_ingest(self, sha256: str, schema: str, selection: str | None) -> int | None:
        from .audit import previous_ingest

        return previous_ingest(self, sha256, schema, selection)

    def record_symbols(self, dataset: str, pairs: list[Any]) -> None:
        from .audit import record_symbols

        record_symbols(self, dataset, pairs)

    def query(self, symbol: str, schema: str, start: Any = None, end: Any = None, raw: bool = False,
              **kwargs: Any) -> Any:
        from .read import query

        return query(self, symbol, schema, start, end, raw=raw, **kwargs)

    def query_df(self, symbol: str, schema: str, start: Any = None, end: Any = None, raw: bool = False,
                 **kwargs: Any) -> Any:
        return self.query(symbol, schema, start, end, raw=raw, **kwargs).to_pandas()

    def stats(self, symbol: str, schema: str, raw: bool = False) -> dict[str, Any]:
        from .read import stats

        return stats(self, symbol, schema, raw=raw)


INFO_TABLES = ("continuous_bars", "roll_events", "ohlcv_data", "trades_data", "tbbo_data", "statistics_data",
               "definitions_data", "data_ingest_runs", "quarantine")

_default: Database | None = None
_default_lock = threading.Lock()


def get_database() -> Database:
    """The process-wide Database for the current settings (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Database()
        return _default
