"""Record batches of a live session: every subscribed schema's records whose send time falls in a window of
market time, merged in send order into one DBN byte buffer, columnar (no Python object per record).

Send time: ts_recv where the schema has it (a record goes out when the replay clock passes its ts_recv); for
OHLCV bars, which have no ts_recv, the end of the bar's interval (Databento publishes a bar when it closes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdi_gateway.live.subscriptions import Selection
from hdi_gateway.source import DataSource

NS = 1_000_000_000
OHLCV_INTERVAL_NS = {"ohlcv-1s": NS, "ohlcv-1m": 60 * NS, "ohlcv-1h": 3600 * NS, "ohlcv-1d": 86_400 * NS}
# How far a record's ts_recv may trail the time the source filters on (ts_event): the window's query reaches
# back this far so no record whose ts_recv falls in the window is missed.
RECV_LAG_NS = NS


def send_times(schema: str, records: np.ndarray) -> np.ndarray:
    """The market time at which each record is sent (int64 ns)."""
    if "ts_recv" in (records.dtype.names or ()):
        return records["ts_recv"].astype(np.int64)
    return records["ts_event"].astype(np.int64) + OHLCV_INTERVAL_NS.get(schema, 0)


def query_lag(schema: str) -> int:
    return OHLCV_INTERVAL_NS.get(schema, RECV_LAG_NS)


@dataclass
class Batch:
    """Records in send order as one byte buffer: `ends[k]` is the byte offset after record k."""

    payload: np.ndarray  # uint8
    ends: np.ndarray  # int64
    send_ns: np.ndarray  # int64

    @property
    def count(self) -> int:
        return int(self.ends.size)

    def head(self, n: int) -> Batch:
        n = max(0, min(n, self.count))
        end = int(self.ends[n - 1]) if n else 0
        return Batch(self.payload[:end], self.ends[:n], self.send_ns[:n])

    def tobytes(self) -> bytes:
        return self.payload.tobytes()


EMPTY = Batch(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))


def merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> Batch:
    """(records, send_ns) per schema -> one Batch ordered by send time (stable: schema order breaks ties)."""
    parts = [(r, t) for r, t in parts if len(r)]
    if not parts:
        return EMPTY
    if len(parts) == 1:
        records, send = parts[0]
        size = records.dtype.itemsize
        ends = np.arange(1, len(records) + 1, dtype=np.int64) * size
        return Batch(np.ascontiguousarray(records).view(np.uint8).reshape(-1), ends, send)
    flat = np.concatenate([np.ascontiguousarray(r).view(np.uint8).reshape(-1) for r, _ in parts])
    sizes = np.concatenate([np.full(len(r), r.dtype.itemsize, dtype=np.int64) for r, _ in parts])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    send = np.concatenate([t for _, t in parts])
    order = np.argsort(send, kind="stable")
    out_sizes = sizes[order]
    ends = np.cumsum(out_sizes)
    # byte k of output record j comes from starts[order[j]] + k: one gather over all bytes
    gather = np.repeat(starts[order] - (ends - out_sizes), out_sizes) + np.arange(int(ends[-1]), dtype=np.int64)
    return Batch(flat[gather], ends, send[order])


class StreamPlan:
    """The session's selections grouped by schema; `window(lo, hi)` produces the records to send."""

    def __init__(self, source: DataSource, dataset: str) -> None:
        self.source = source
        self.dataset = dataset
        self.selections: list[Selection] = []

    def add(self, selection: Selection) -> None:
        self.selections.append(selection)

    @property
    def schemas(self) -> list[str]:
        return list(dict.fromkeys(s.schema for s in self.selections))

    def first_start(self) -> int | None:
        return min((s.start_ns for s in self.selections), default=None)

    def _schema_records(self, schema: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = [s for s in self.selections if s.schema == schema and s.start_ns < hi]
        everything = [s.start_ns for s in chosen if s.instrument_ids is None]
        all_start = min(everything) if everything else None
        # per instrument, the earliest start of the subscriptions selecting it (a union: no record twice)
        starts: dict[int, int] = {}
        for s in chosen:
            if s.instrument_ids is not None:
                for iid in s.instrument_ids.tolist():
                    starts[iid] = min(starts.get(iid, s.start_ns), s.start_ns)
        if all_start is None and not starts:
            return np.zeros(0, np.uint8), np.zeros(0, np.int64)
        ids = None if all_start is not None else np.array(sorted(starts), dtype=np.uint32)
        records = self.source.records(self.dataset, schema, ids, lo - query_lag(schema), hi)
        if not len(records):
            return records, np.zeros(0, np.int64)
        send = send_times(schema, records)
        keep = (send >= lo) & (send < hi)
        if all_start is not None:
            from_ = np.full(len(records), all_start, dtype=np.int64)
        else:
            from_ = np.full(len(records), np.iinfo(np.int64).max, dtype=np.int64)
        if starts:
            known = np.array(sorted(starts), dtype=np.int64)
            known_start = np.array([starts[k] for k in known.tolist()], dtype=np.int64)
            rec_ids = records["instrument_id"].astype(np.int64)
            at = np.minimum(np.searchsorted(known, rec_ids), len(known) - 1)
            hit = known[at] == rec_ids
            from_[hit] = np.minimum(from_[hit], known_start[at[hit]])
        keep &= send >= from_
        records, send = records[keep], send[keep]
        order = np.argsort(send, kind="stable")
        return records[order], send[order]

    def new_listings(self, until_ns: int) -> bytes:
        """Mapping records of contracts listed before until_ns that parent / ALL_SYMBOLS subscriptions take in."""
        return b"".join(s.take_new_listings(self.source, self.dataset, until_ns) for s in self.selections)

    def window(self, lo: int, hi: int) -> Batch:
        """Every subscribed record with send time in [lo, hi), in send order."""
        if hi <= lo:
            return EMPTY
        return merge([self._schema_records(schema, lo, hi) for schema in self.schemas])


def record_ends(data: bytes) -> np.ndarray:
    """Byte offset after each record of a small DBN record buffer (mapping, system and error messages),
    read from the records' own length bytes (4-byte words)."""
    ends, at = [], 0
    while at < len(data):
        at += data[at] * 4
        ends.append(at)
    return np.asarray(ends, dtype=np.int64)


def with_ts_out(payload: np.ndarray, ends: np.ndarray, ts_out_ns: int) -> bytes:
    """Each record followed by the 8-byte ts_out (the gateway's send time), its length byte grown by 2 words,
    as DBN writes records when a session asks for ts_out=1."""
    n = ends.size
    if n == 0:
        return b""
    starts = np.concatenate([[0], ends[:-1]])
    sizes = ends - starts
    out_starts = starts + 8 * np.arange(n, dtype=np.int64)
    out = np.empty(int(ends[-1]) + 8 * n, dtype=np.uint8)
    out[np.repeat(out_starts - starts, sizes) + np.arange(int(ends[-1]), dtype=np.int64)] = payload
    stamp = np.frombuffer(np.array([ts_out_ns], dtype="<u8").tobytes(), dtype=np.uint8)
    out[(out_starts + sizes)[:, None] + np.arange(8)] = stamp
    out[out_starts] = payload[starts] + 2
    return out.tobytes()
