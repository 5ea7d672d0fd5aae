"""Rules over a file's (or a response's) record sequence: exact duplicates and index-time order.

Databento sorts every historical schema by the record's index timestamp, across all instruments of a file or a
response (and HDI's date chunks follow each other in time). The index timestamp is what databento_dbn's
`Record.ts_index` returns ("should be used for sorting records"): `ts_recv` for every record that has one, and
`ts_event` (the interval start) for OHLCV, which has no `ts_recv`; checked against the installed databento_dbn on
every GLBX.MDP3 sample (trades, tbbo, mbp, bbo, statistics, status, definition: ts_recv; ohlcv-*: ts_event).
A late `ts_event` alone is real market data (ts_recv decides the order), and records sharing one index time
(several trades in one packet) are in order.

- duplicate.record: a record equal in every field to an earlier one of the same input (the first is kept).
- order.index_time: the fewest records whose removal leaves the rest in index-time order, i.e. everything but
  a longest non-decreasing subsequence. Two records whose timestamps were swapped are exactly those two (when
  at least two records lie between them; adjacent ones need only one of them removed: the later one).

Columnar: an ordered input costs one comparison pass; only records out of place (between the "safe" records,
which are >= everything before and <= everything after them) go through the subsequence search."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

DUPLICATE_RULE = "duplicate.record"
ORDER_RULE = "order.index_time"


def index_field(columns: list[str]) -> str:
    """The index timestamp of a record layout: ts_recv where the schema has one, else ts_event (OHLCV)."""
    return "ts_recv" if "ts_recv" in columns else "ts_event"


def index_times(raw: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ns, defined mask) of the index timestamp; UNDEF_TIMESTAMP (u64 max, or -1 as int64) is undefined."""
    col = raw.column(index_field(raw.column_names)).combine_chunks()
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    values = col.fill_null(0).to_numpy()
    defined = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if values.dtype == np.uint64:
        defined &= values <= np.iinfo(np.int64).max
        values = np.where(defined, values, 0).astype(np.int64)
    else:
        values = values.astype(np.int64, copy=False)
        defined &= values >= 0
    return values, defined


def _row_hash(raw: pa.Table) -> np.ndarray:
    """A 64-bit hash of each row's integer fields (times, ids, prices, sizes, sequence): equal rows hash equal."""
    mixed = np.zeros(raw.num_rows, dtype=np.uint64)
    for name in raw.column_names:
        col = raw.column(name).combine_chunks()
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        if not pa.types.is_integer(col.type):
            continue  # text fields: compared exactly among the candidates
        values = col.fill_null(0).to_numpy().astype(np.uint64, copy=False)
        mixed = (mixed ^ values) * np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2**64 by design
    return mixed


def duplicate_of(raw: pa.Table) -> np.ndarray:
    """For each row, the index of an earlier row equal to it in every field, or -1.

    Only rows whose integer fields hash like another row's are compared field by field (trades of one packet
    share their times, but not their sequence, price and size all at once)."""
    n = raw.num_rows
    first = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return first
    hashes = _row_hash(raw)
    order = np.argsort(hashes)  # any order among equal hashes: the candidates are re-sorted by position
    tie = hashes[order][1:] == hashes[order][:-1]
    if not tie.any():
        return first
    in_tie = np.zeros(n, dtype=bool)
    in_tie[1:] |= tie
    in_tie[:-1] |= tie
    rows = np.sort(order[in_tie])
    picked = raw.take(pa.array(rows)).append_column("_hdi_row", pa.array(rows, pa.int64()))
    keys = [c for c in raw.column_names if c != "_hdi_row"]
    groups = picked.group_by(keys, use_threads=False).aggregate([("_hdi_row", "min"), ("_hdi_row", "list")])
    sizes = pc.list_value_length(groups.column("_hdi_row_list")).to_numpy()
    repeated = groups.filter(pa.array(sizes > 1))
    if repeated.num_rows == 0:
        return first
    members = pc.list_flatten(repeated.column("_hdi_row_list")).to_numpy()
    owners = np.repeat(repeated.column("_hdi_row_min").to_numpy(), pc.list_value_length(
        repeated.column("_hdi_row_list")).to_numpy())
    later = members != owners
    first[members[later]] = owners[later]
    return first


def out_of_order(times: np.ndarray, considered: np.ndarray | None = None) -> np.ndarray:
    """Mask of the records to remove so that the others are in non-decreasing index-time order (see module doc).

    `considered` (default all) limits the check to some rows, e.g. those not already rejected as duplicates."""
    n = len(times)
    bad = np.zeros(n, dtype=bool)
    everything = considered is None or bool(considered.all())
    t = times if everything else times[considered]
    if len(t) < 2 or bool(np.all(t[1:] >= t[:-1])):
        return bad
    rows = np.arange(n) if everything else np.flatnonzero(considered)
    # Safe records are in every longest ordered subsequence: only the stretches between them need a search.
    before_max = np.maximum.accumulate(t)
    after_min = np.minimum.accumulate(t[::-1])[::-1]
    safe = (t >= np.concatenate(([t[0]], before_max[:-1]))) & (t <= np.concatenate((after_min[1:], [t[-1]])))
    unsafe = np.flatnonzero(~safe)
    starts = np.flatnonzero(np.diff(np.concatenate(([-2], unsafe))) > 1)
    for lo, hi in zip(starts, [*starts[1:], len(unsafe)], strict=True):
        segment = unsafe[lo:hi]
        bad[rows[segment[~_keep_longest_ordered(t[segment])]]] = True
    return bad


@njit(cache=True, nogil=True)
def _keep_longest_ordered(values: np.ndarray) -> np.ndarray:
    """Mask of a longest non-decreasing subsequence, preferring earlier records among equally long ones (so of
    two adjacent swapped records the later one is dropped): patience search backwards over the negated values,
    O(n log n), compiled (one wild timestamp can put millions of records between two safe ones)."""
    n = len(values)
    tails = np.empty(n, np.int64)  # tails[k]: smallest last value of an ordered subsequence of length k + 1
    tail_at = np.empty(n, np.int64)
    parent = np.empty(n, np.int64)
    size = 0
    for i in range(n):
        v = -values[n - 1 - i]
        lo, hi = 0, size
        while lo < hi:  # bisect_right: equal values extend a subsequence (non-decreasing)
            mid = (lo + hi) // 2
            if tails[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        parent[i] = tail_at[lo - 1] if lo > 0 else -1
        tails[lo] = v
        tail_at[lo] = i
        if lo == size:
            size += 1
    keep = np.zeros(n, np.bool_)
    at = tail_at[size - 1] if size > 0 else -1
    while at >= 0:
        keep[n - 1 - at] = True
        at = parent[at]
    return keep


def sequence_rules(raw: pa.Table, rejected: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rule or None, message or None) per row for duplicates and index-time order; row numbers are 0-based
    positions in the input (the file's or response's record order). Rows `rejected` by another rule (e.g. a
    timestamp out of range) take no part in the order, so one wild timestamp cannot mark its neighbours."""
    n = raw.num_rows
    rules = np.full(n, None, dtype=object)
    messages = np.full(n, None, dtype=object)
    if n < 2:
        return rules, messages
    field = index_field(raw.column_names)
    times, defined = index_times(raw)
    first = duplicate_of(raw)
    dup = first >= 0
    for i in np.flatnonzero(dup):
        rules[i] = DUPLICATE_RULE
        messages[i] = f"{DUPLICATE_RULE}: record {i} repeats record {first[i]} field for field (the first is kept)"
    considered = defined & ~dup if rejected is None else defined & ~dup & ~rejected
    late = out_of_order(times, considered)
    previous = np.maximum.accumulate(np.where(considered, times, np.iinfo(np.int64).min))
    for i in np.flatnonzero(late):
        rules[i] = ORDER_RULE
        before = int(previous[i - 1]) if i else None
        relation = (f"earlier than {before} ns of a record before it" if before is not None and before > times[i]
                    else "later than records after it")
        messages[i] = (f"{ORDER_RULE}: record {i} has {field} {int(times[i])} ns, {relation} "
                       f"(Databento sorts by {field})")
    return rules, messages
