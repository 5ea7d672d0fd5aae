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

from bisect import bisect_right

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def duplicate_of(raw: pa.Table) -> np.ndarray:
    """For each row, the index of an earlier row equal to it in every field, or -1.

    Equal records share their index time, so only rows whose index time repeats are compared field by field."""
    n = raw.num_rows
    first = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return first
    times, _ = index_times(raw)
    order = np.argsort(times, kind="stable")
    tie = times[order][1:] == times[order][:-1]
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
        keep = _longest_ordered(t[segment])
        drop = np.ones(len(segment), dtype=bool)
        drop[keep] = False
        bad[rows[segment[drop]]] = True
    return bad


def _longest_ordered(values: np.ndarray) -> list[int]:
    """Positions of a longest non-decreasing subsequence, preferring earlier records among equally long ones (so
    of two adjacent swapped records the later one is dropped). Searched backwards as a non-decreasing run of the
    negated values; runs only over records out of place (a Python int each: the exception, not the volume)."""
    n = len(values)
    backwards = (-values[::-1]).tolist()
    tails: list[int] = []  # tails[k]: smallest last value of an ordered subsequence of length k + 1
    tail_at: list[int] = []
    parent = [-1] * n
    for i, v in enumerate(backwards):
        k = bisect_right(tails, v)
        parent[i] = tail_at[k - 1] if k else -1
        if k == len(tails):
            tails.append(v)
            tail_at.append(i)
        elif v < tails[k]:
            tails[k], tail_at[k] = v, i
    out: list[int] = []
    at = tail_at[-1] if tail_at else -1
    while at >= 0:
        out.append(n - 1 - at)
        at = parent[at]
    return out


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
