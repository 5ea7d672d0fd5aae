"""Binary COPY of an Arrow table into a table, encoded column-wise by binary.py in batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .binary import all_fixed, copy_bytes, copy_rows_fixed, encode_column
from .tables import TableInfo

BATCH_ROWS = 100_000  # rows per COPY statement: bounds the encode buffers
COPY_READ_SIZE = 1 << 20  # bytes psycopg2 reads from the encoded batch per call


class _MemoryReader:
    """A read()-able view over a buffer, so COPY streams it without another full copy."""

    def __init__(self, buffer: memoryview) -> None:
        self.buffer = buffer
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.buffer) if size < 0 else min(len(self.buffer), self.pos + size)
        chunk = self.buffer[self.pos:end].tobytes()
        self.pos = end
        return chunk


def copy_rows(cur: Any, info: TableInfo, table: pa.Table, target: str | None = None, freeze: bool = False) -> int:
    """COPY the rows in binary batches; the next batch is encoded in a thread while the server ingests
    the current one (NumPy and libpq both release the GIL). Returns the number of rows sent."""
    from concurrent.futures import ThreadPoolExecutor

    from psycopg2 import sql

    if table.num_rows == 0:
        return 0
    cols = [info.column(name) for name in table.column_names]
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary{})").format(
        sql.Identifier(target or info.name), sql.SQL(", ").join(sql.Identifier(c.name) for c in cols),
        sql.SQL(", FREEZE") if freeze else sql.SQL(""))

    # Two buffers taken in turn: one is being sent while the next batch is written into the other (fresh
    # memory for every batch would cost a page fault per 4 KiB on first touch).
    buffers: list[np.ndarray | None] = [None, None]

    def encode(i: int) -> memoryview:
        batch = table.slice(i * BATCH_ROWS, BATCH_ROWS)
        encoded = [encode_column(batch.column(c.name), c) for c in cols]
        if not all_fixed(encoded):
            return copy_bytes(encoded, batch.num_rows)
        buffers[i % 2] = copy_rows_fixed(encoded, batch.num_rows, out=buffers[i % 2])
        return memoryview(buffers[i % 2])  # type: ignore[arg-type]

    batches = -(-table.num_rows // BATCH_ROWS)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(encode, 0)
        for i in range(batches):
            payload = pending.result()
            if i + 1 < batches:  # its buffer is the one of batch i - 1, which has been sent
                pending = pool.submit(encode, i + 1)
            cur.copy_expert(statement, _MemoryReader(payload), size=COPY_READ_SIZE)
    return table.num_rows


