"""hdi_resources.db.quarantine: the one writer of the quarantine table, against a real embedded PostgreSQL."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from hdi_core.vendor_schemas.rules import quarantine_schema
from hdi_resources.db import Database
from hdi_resources.db.quarantine import quarantine_rows

COLUMNS = 'target, record, rule, source, "partition", run_id'


@pytest.fixture(scope="module")
def db(storage_db: Database) -> Database:
    """This module's database, on each backend in turn."""
    return storage_db


def entries(db: Database, source: str) -> list[tuple]:
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM quarantine WHERE source = %s ORDER BY id", (source,))
        return cur.fetchall()


def vendor_rejects(records: list[dict], rules: list[str]) -> pa.Table:
    """Rows as the vendor rules hand them over (hdi_core.vendor_schemas.rules.quarantine_schema)."""
    n = len(records)
    return pa.table({"target": ["trades_data"] * n, "rule": rules, "message": ["why"] * n,
                     "record": [json.dumps(r) for r in records]}, schema=quarantine_schema())


def test_loader_and_vendor_rejects_are_stored_alike(db: Database) -> None:
    record = {"instrument_id": 7, "price": None, "side": "B"}
    with db.raw() as conn, conn.cursor() as cur:
        quarantine_rows(cur, "trades_data", pa.Table.from_pylist([record]), ["not_null(price)"], source="loader",
                        partition="from-loader", run_id=None)
    db.store_quarantined("trades_data", vendor_rejects([record], ["not_null(price)"]), source="vendor",
                         partition="from-vendor", run_id=None)
    assert entries(db, "loader") == [("trades_data", record, "not_null(price)", "loader", "from-loader", None)]
    assert entries(db, "vendor") == [("trades_data", record, "not_null(price)", "vendor", "from-vendor", None)]


def test_a_rerun_of_a_partition_replaces_its_entries_only(db: Database) -> None:
    rejects = vendor_rejects([{"n": 1}, {"n": 2}], ["a", "b"])
    db.store_quarantined("trades_data", rejects, source="rerun", partition="window-1", run_id=None)
    db.store_quarantined("trades_data", rejects, source="rerun", partition="window-2", run_id=None)
    db.store_quarantined("trades_data", rejects.slice(0, 1), source="rerun", partition="window-1", run_id=None)
    assert [(row[1], row[4]) for row in entries(db, "rerun")] == [({"n": 1}, "window-2"), ({"n": 2}, "window-2"),
                                                                 ({"n": 1}, "window-1")]
    db.store_quarantined("trades_data", rejects.slice(0, 0), source="rerun", partition="window-2", run_id=None)
    assert len(entries(db, "rerun")) == 1


def test_without_a_partition_entries_accumulate(db: Database) -> None:
    rejects = vendor_rejects([{"n": 1}], ["a"])
    for _ in range(2):
        db.store_quarantined("trades_data", rejects, source="adhoc", partition=None, run_id=None)
    assert len(entries(db, "adhoc")) == 2
