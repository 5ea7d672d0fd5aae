"""The quarantine table's one writer: rows that break a rule are kept there (rule named, the record as JSON),
whichever path rejected them (a bar load, a vendor upsert, or the vendor validation rules)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from .core import Database

INSERT_QUARANTINE = 'INSERT INTO quarantine (target, record, rule, source, "partition", run_id) VALUES %s'
PAGE_ROWS = 1000  # rows per INSERT statement of execute_values


def write_quarantine(cur: Any, entries: Iterable[tuple[str, str, str]], *, source: str | None,
                     partition: str | None, run_id: int | None) -> None:
    """Insert (target table, record as JSON text, rule) entries, all of one source, partition and run."""
    from psycopg2.extras import execute_values

    values = [(target, record, rule, source, partition, run_id) for target, record, rule in entries]
    if values:
        execute_values(cur, INSERT_QUARANTINE, values, template="(%s, %s::jsonb, %s, %s, %s, %s)",
                       page_size=PAGE_ROWS)


def clear_quarantine(cur: Any, target: str, partition: str) -> None:
    """Forget a partition's entries: a re-run of the partition replaces them."""
    cur.execute('DELETE FROM quarantine WHERE target = %s AND "partition" = %s', (target, partition))


def quarantine_rows(cur: Any, target: str, rows: pa.Table, rules: list[str], *, source: str | None,
                    partition: str | None, run_id: int | None) -> None:
    """Rows of `target` rejected by the loader, each with its rule; a record is the row's columns as JSON."""
    records = rows.to_pylist()  # quarantined rows are the exception, so a Python object each is fine here
    write_quarantine(cur, ((target, json.dumps(rec, default=str), rule)
                           for rec, rule in zip(records, rules, strict=True)),
                     source=source, partition=partition, run_id=run_id)


def store_quarantined(db: Database, target: str, quarantined: pa.Table, *, source: str | None,
                      partition: str | None, run_id: int | None) -> None:
    """Records rejected by the vendor rules (columns target, rule, message, record as JSON; the table keeps no
    message) in a transaction of their own; a re-run of the same partition replaces its entries."""
    with db.raw() as conn, conn.cursor() as cur:
        if partition is not None:
            clear_quarantine(cur, target, partition)
        if quarantined.num_rows:
            write_quarantine(cur, zip(quarantined.column("target").to_pylist(),
                                      quarantined.column("record").to_pylist(),
                                      quarantined.column("rule").to_pylist(), strict=True),
                             source=source, partition=partition, run_id=run_id)
