"""What every load transaction runs with, and the worker connections that fill a load's stage tables (month
stages in the native layout, chunk stages on TimescaleDB), each in a transaction of its own."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from .tables import INDEX_BUILD_MEMORY, TableInfo

if TYPE_CHECKING:
    from .core import Database

CONNECTION_CHECK = "1s"  # PostgreSQL 14+: a backend whose client was killed stops within this, releasing its locks
T = TypeVar("T")


def load_session(cur: Any, lock_timeout_s: float, timescale: bool = False) -> None:
    """Settings of every load transaction: lock waits bounded; a backend whose client died stops promptly;
    on TimescaleDB, a reload into compressed chunks may decompress as many rows as it replaces."""
    cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{round(lock_timeout_s * 1000)}ms",))
    if cur.connection.server_version >= 140000:
        cur.execute("SELECT set_config('client_connection_check_interval', %s, true)", (CONNECTION_CHECK,))
    if timescale:
        cur.execute("SELECT set_config('timescaledb.max_tuples_decompressed_per_dml_transaction', '0', true)")


class Cancelled(Exception):
    """A worker stopped because another worker of its load failed."""


def run_workers(db: Database, jobs: list[tuple[str, Callable[[Any], T]]], workers: int, lock_timeout_s: float,
                busy: Callable[[str, BaseException], Exception]) -> list[T]:
    """Run each job (what it fills, fn(cursor)) in a committed transaction of its own on up to `workers`
    connections, in the order given. The first failure cancels the others; a lock wait that ran out (or a
    deadlock) becomes busy(what, exc). A worker must wait for no lock its load holds: then the load's wait for
    its workers ends, every lock wait of theirs being bounded too."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    import psycopg2
    from sqlalchemy import exc as sa_exc

    active: dict[int, Any] = {}  # worker connections by job, so one failure cancels the others
    failed = threading.Event()

    def run(index: int, what: str, job: Callable[[Any], T]) -> T:
        if failed.is_set():
            raise Cancelled
        try:
            with db.raw() as conn, conn.cursor() as cur:
                active[index] = conn
                load_session(cur, lock_timeout_s)
                cur.execute("SET LOCAL synchronous_commit = off")
                cur.execute("SET LOCAL maintenance_work_mem = %s", (INDEX_BUILD_MEMORY,))
                return job(cur)
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected) as exc:
            raise busy(what, exc) from None
        except sa_exc.TimeoutError as exc:  # the pool had no free connection in time: retryable too
            raise busy(f"a free database connection (for {what})", exc) from None
        except psycopg2.errors.QueryCanceled:
            if failed.is_set():
                raise Cancelled from None
            raise
        finally:
            active.pop(index, None)

    if workers <= 1 or len(jobs) <= 1:
        return [run(i, what, job) for i, (what, job) in enumerate(jobs)]
    results: list[T] = []
    first_error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="hdi-stage") as pool:
        futures = [pool.submit(run, i, what, job) for i, (what, job) in enumerate(jobs)]
        for future in as_completed(futures):
            try:
                results.append(future.result())
            except Cancelled:
                continue
            except BaseException as exc:  # noqa: BLE001 - re-raised once the other workers stopped
                if first_error is None:
                    first_error = exc
                    failed.set()
                    for conn in list(active.values()):  # the load fails anyway: stop their work now
                        conn.cancel()
    if first_error is not None:
        raise first_error
    return results


def constant_columns(info: TableInfo, rows: pa.Table) -> dict[str, str]:
    """Text and date columns holding one value in every row: the stage table's defaults give them for less
    than sending them in each COPY row."""
    constants: dict[str, str] = {}
    if rows.num_rows == 0:
        return constants
    for name in rows.column_names:
        column = rows.column(name)
        if info.column(name).type_name not in ("text", "varchar", "bpchar", "date") or column.null_count:
            continue
        distinct = pc.unique(column.combine_chunks() if column.num_chunks != 1 else column.chunk(0))
        if len(distinct) == 1:
            value = distinct[0].as_py()
            constants[name] = value.isoformat() if isinstance(value, dt.date) else str(value)
    return constants
