"""DBN records -> Arrow, column by column: the one place fixed-width DBN text becomes Arrow strings.

Text policy (every caller, every schema): a text field (`S<n>`, a C string) is read up to its first NUL and
decoded as UTF-8 into an Arrow `string` column. Bytes that are not valid UTF-8 are replaced, per invalid
sequence, by U+FFFD (Python's `errors="replace"`): a column's type never depends on the data, and one bad byte
in, say, a definition's text never fails a whole download. A NUL-only value is the empty string, not NULL.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hdi_core.dbn.schemas import TIME_FIELDS

_GATHER_BLOCK_BYTES = 1 << 20  # records per column-gather step: stays in cache while every column takes its part
_INT32_MAX = np.iinfo(np.int32).max


def text_column(values: np.ndarray) -> pa.Array:
    """A contiguous `S<n>` array as an Arrow string column, by the module's text policy (no Python object per
    value except for a column holding invalid UTF-8)."""
    width = values.dtype.itemsize
    count = len(values)
    matrix = values.view(np.uint8).reshape(count, width)
    nul = matrix == 0
    if not nul.any():  # every value fills its width: the bytes are the string data as they are
        data = matrix.reshape(-1)
        lengths = None
    else:
        lengths = np.where(nul.any(axis=1), nul.argmax(axis=1), width)
        data = matrix[np.arange(width) < lengths[:, None]]
    large = data.size > _INT32_MAX
    offset_type = np.int64 if large else np.int32
    if lengths is None:
        offsets = np.arange(count + 1, dtype=offset_type) * width
    else:
        offsets = np.zeros(count + 1, dtype=offset_type)
        np.cumsum(lengths, out=offsets[1:])
    string_type, binary_type = (pa.large_string(), pa.large_binary()) if large else (pa.string(), pa.binary())
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    if not data.size or data.max() < 0x80:  # ASCII is valid UTF-8 as it is
        return pa.Array.from_buffers(string_type, count, buffers)
    binary = pa.Array.from_buffers(binary_type, count, buffers)
    try:
        return binary.cast(string_type)  # validates UTF-8
    except pa.ArrowInvalid:  # rare (bad vendor text): the policy's replacement, value by value
        return pa.array([v.decode("utf-8", "replace") for v in binary.to_pylist()], string_type)


def records_to_table(records: np.ndarray | list[np.ndarray], *, signed_times: bool = True) -> pa.Table:
    """A DBN structured array (or same-dtype arrays, concatenated) as an Arrow table, one column per field.

    Prices stay int64 fixed point (1e-9); text follows the module's policy; reserved padding and the record
    `length` byte are dropped. `signed_times` views the u64 time fields as int64 ns (UNDEF_TIMESTAMP reads as
    -1), else they stay uint64 as in DBN. Columns are gathered block by block (a cache-sized slice of records
    feeds every column) so the records are read from memory once.
    """
    arrays = [a.reshape(-1) for a in ([records] if isinstance(records, np.ndarray) else records)]
    if not arrays:
        raise ValueError("records_to_table needs at least one array (its dtype names the columns)")
    dtype = arrays[0].dtype
    names = [n for n in (dtype.names or ()) if not n.startswith("_") and n != "length"]
    total = sum(len(a) for a in arrays)
    gathered = {name: np.empty(total, dtype=dtype[name]) for name in names}
    block = max(1024, _GATHER_BLOCK_BYTES // max(1, dtype.itemsize))
    at = 0
    for array in arrays:
        for lo in range(0, len(array), block):
            part = array[lo : lo + block]
            hi = at + len(part)
            for name, out in gathered.items():
                out[at:hi] = part[name]
            at = hi
    columns: list[pa.Array] = []
    for name in names:
        out = gathered[name]
        if out.dtype.kind == "S":
            columns.append(text_column(out))
        elif signed_times and name in TIME_FIELDS and out.dtype == np.uint64:
            columns.append(pa.array(out.view(np.int64)))
        else:
            columns.append(pa.array(out))
    return pa.Table.from_arrays(columns, names=names)
