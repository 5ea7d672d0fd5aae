"""Content digests of Arrow tables: change detection from the rows themselves, never from rendered text."""

from __future__ import annotations

import hashlib

import pyarrow as pa


def table_digest(table: pa.Table) -> str:
    """sha256 of the table's schema and values in row order; equal tables give equal digests, any value change
    (a sub-tick price included) gives another."""
    sink = pa.BufferOutputStream()
    # One contiguous batch: the IPC bytes then depend on the values, not on how the table happens to be chunked.
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
