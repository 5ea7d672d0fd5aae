"""Book event tapes (Databento mbp-10 and mbo) as the columns the absorption and iceberg kernels read.

`action` and `side` stay ASCII bytes (zero-copy views of DBN's `S1` fields); times are int64 ns; the event's
`index` is its row in the whole tape (a batch fed live carries its offset), so every detection can name the
records it rests on: (index, ts_recv, sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hdi_core.continuous.bars import column_i64
from hdi_core.errors import HdiError
from hdi_core.orderflow.tape import side_bytes

TRADE, FILL, ADD, CANCEL, MODIFY, CLEAR, NONE_ACTION = (ord(c) for c in "TFACMRN")
F_LAST = 1 << 7  # Databento flag: the last record of an event; the book is consistent only after it
UNDEF_PRICE = np.iinfo(np.int64).max


def action_bytes(column: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """Actions as uint8 ASCII from an Arrow text column, DBN `S1` bytes or uint8 codes."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)) and (
        pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    ):
        arr = np.zeros(len(column), np.uint8)
        for code in (TRADE, FILL, ADD, CANCEL, MODIFY, CLEAR, NONE_ACTION):
            arr[pc.equal(column, chr(code)).to_numpy(zero_copy_only=False)] = code
    else:
        arr = np.asarray(column.to_numpy() if isinstance(column, (pa.Array, pa.ChunkedArray)) else column)
        arr = arr.astype("S1").view(np.uint8) if arr.dtype.kind == "S" else arr.astype(np.uint8)
    bad = ~np.isin(arr, np.array([TRADE, FILL, ADD, CANCEL, MODIFY, CLEAR, NONE_ACTION], np.uint8))
    if bool(bad.any()):
        row = int(np.flatnonzero(bad)[0])
        raise HdiError(f"column 'action' row {row}: action byte {int(arr[row])} is not one of T F A C M R N")
    return np.ascontiguousarray(arr)


def _column(table: pa.Table | np.ndarray, name: str) -> np.ndarray:
    if isinstance(table, np.ndarray):  # a DBN structured array
        if name not in (table.dtype.names or ()):
            raise HdiError(f"records have no field '{name}'")
        values = table[name]
        return values.view(np.int64) if values.dtype == np.uint64 else values.astype(np.int64)
    return column_i64(table, name)


def _raw(table: pa.Table | np.ndarray, name: str) -> pa.ChunkedArray | np.ndarray:
    if isinstance(table, np.ndarray):
        return table[name]
    if name not in table.column_names:
        raise HdiError(f"table has no column '{name}' (columns: {', '.join(table.column_names)})")
    return table.column(name)


@dataclass(frozen=True)
class TopOfBook:
    """mbp-10 records reduced to what absorption reads: the event and the best level of each side after it."""

    ts: np.ndarray  # ts_recv
    sequence: np.ndarray
    action: np.ndarray
    side: np.ndarray
    price: np.ndarray
    size: np.ndarray
    flags: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, lo: int, hi: int) -> TopOfBook:
        return TopOfBook(*(getattr(self, f)[lo:hi] for f in self.__dataclass_fields__))


def top_of_book(records: pa.Table | np.ndarray) -> TopOfBook:
    """The absorption columns of mbp-10 (or mbp-1) records, an Arrow table or a DBN structured array."""
    return TopOfBook(
        _column(records, "ts_recv"), _column(records, "sequence"), action_bytes(_raw(records, "action")),
        side_bytes(_raw(records, "side")), _column(records, "price"), _column(records, "size"),
        _column(records, "flags"), _column(records, "bid_px_00"), _column(records, "bid_sz_00"),
        _column(records, "ask_px_00"), _column(records, "ask_sz_00"))


@dataclass(frozen=True)
class OrderEvents:
    """mbo records as the iceberg kernel reads them."""

    ts: np.ndarray  # ts_recv
    sequence: np.ndarray
    order_id: np.ndarray  # uint64 viewed as int64
    action: np.ndarray
    side: np.ndarray
    price: np.ndarray
    size: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, lo: int, hi: int) -> OrderEvents:
        return OrderEvents(*(getattr(self, f)[lo:hi] for f in self.__dataclass_fields__))


def order_events(records: pa.Table | np.ndarray) -> OrderEvents:
    """The iceberg columns of mbo records, an Arrow table or a DBN structured array."""
    return OrderEvents(
        _column(records, "ts_recv"), _column(records, "sequence"), _column(records, "order_id"),
        action_bytes(_raw(records, "action")), side_bytes(_raw(records, "side")), _column(records, "price"),
        _column(records, "size"))
