"""DatabaseResource: the Dagster face of the storage layer (load assets ask it; they never write SQL)."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import PrivateAttr

from hdi_resources.settings import ENV_DATABASE_URL

from .core import ENV_DATABASE_APP_URL, Database
from .replace import LoadResult
from .upsert import UpsertResult


class DatabaseResource(dg.ConfigurableResource):
    """PostgreSQL/TimescaleDB for HDI. `url` unset: HDI_DATABASE_URL, else the embedded server (left running:
    other steps and Dagster's own storage share it)."""

    url: str | None = None
    app_url: str | None = None

    _db: Database | None = PrivateAttr(default=None)

    def database(self) -> Database:
        if self._db is None:
            self._db = Database(url=self.url or os.environ.get(ENV_DATABASE_URL) or "",
                                app_url=self.app_url or os.environ.get(ENV_DATABASE_APP_URL) or "")
        return self._db

    def replace_partition(self, table: str, key_columns_values: dict[str, Any], data: pa.Table,
                          **kwargs: Any) -> LoadResult:
        return self.database().replace_partition(table, key_columns_values, data, **kwargs)

    def upsert_rows(self, table: str, data: pa.Table, key: list[str] | None = None,
                    **kwargs: Any) -> UpsertResult:
        return self.database().upsert_rows(table, data, key, **kwargs)

    def record_ingest_run(self, **kwargs: Any) -> Any:
        return self.database().record_ingest_run(**kwargs)

    def query(self, symbol: str, schema: str, start: Any = None, end: Any = None, raw: bool = False,
              **kwargs: Any) -> pa.Table:
        return self.database().query(symbol, schema, start, end, raw=raw, **kwargs)

    def stats(self, symbol: str, schema: str, raw: bool = False) -> dict[str, Any]:
        return self.database().stats(symbol, schema, raw=raw)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
