"""hdi_resources.db.copy: binary COPY statements and payloads, checked on a recording cursor (no server)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hdi_resources.db import copy
from hdi_resources.db.binary import COPY_HEADER, PgColumn
from hdi_resources.db.tables import TableInfo

INFO = TableInfo("trades_data", [PgColumn("ts_event", "timestamptz", True, False),
                                 PgColumn("size", "int8", True, False)], ["ts_event"])


def render(statement: Any) -> str:
    """Composed SQL as text without a connection (identifiers double-quoted, as quote_ident does for these)."""
    from psycopg2 import sql

    if isinstance(statement, sql.Composed):
        return "".join(render(part) for part in statement.seq)
    if isinstance(statement, sql.Identifier):
        return ".".join(f'"{s}"' for s in statement.strings)
    return statement.string


class RecordingCursor:
    """Keeps each COPY statement (as text) and the bytes read from its stream."""

    def __init__(self) -> None:
        self.copies: list[tuple[str, bytes]] = []

    def copy_expert(self, statement: Any, stream: Any, size: int) -> None:
        self.copies.append((render(statement), b"".join(iter(lambda: stream.read(size), b""))))


def rows(n: int) -> pa.Table:
    return pa.table({"ts_event": pa.array(np.arange(n, dtype=np.int64), pa.timestamp("us", tz="UTC")),
                     "size": np.arange(n, dtype=np.int64)})


@pytest.fixture
def cursor() -> RecordingCursor:
    return RecordingCursor()


def test_rows_go_in_batches_each_a_whole_binary_copy(cursor: RecordingCursor,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy, "BATCH_ROWS", 4)
    assert copy.copy_rows(cursor, INFO, rows(10)) == 10
    assert len(cursor.copies) == 3
    for statement, payload in cursor.copies:
        assert statement == 'COPY "trades_data" ("ts_event", "size") FROM STDIN WITH (FORMAT binary)'
        assert payload.startswith(COPY_HEADER) and payload.endswith(b"\xff\xff")
    row_bytes = 2 + 2 * (4 + 8)  # field count, then length + value of two 8-byte fields
    assert [len(p) - len(COPY_HEADER) - 2 for _, p in cursor.copies] == [4 * row_bytes, 4 * row_bytes,
                                                                          2 * row_bytes]


def test_freeze_and_target_and_no_rows(cursor: RecordingCursor) -> None:
    assert copy.copy_rows(cursor, INFO, rows(0)) == 0 and cursor.copies == []
    copy.copy_rows(cursor, INFO, rows(2), target="trades_data_p202401_stage", freeze=True)
    assert cursor.copies[0][0].startswith('COPY "trades_data_p202401_stage" (')
    assert cursor.copies[0][0].endswith("(FORMAT binary, FREEZE)")
