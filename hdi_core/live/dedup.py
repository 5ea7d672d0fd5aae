"""Gap fill without duplicates: after a reconnect the capture resubscribes with `start=` the last `ts_recv` it
holds, so the replay repeats what it already has at and after that instant; this drops exactly those.

Per schema the live stream is in `ts_recv` order and what the capture holds is a prefix of it. So a replayed
record with `ts_recv` below the last one held is held already, one above it is new, and at that very instant
(several records can share one `ts_recv`) the held records are matched by their exact key: the whole record,
every field byte for byte (instrument_id, ts_event, sequence, price, size, order id...), `ts_out` excluded. A
smaller key such as (ts_recv, instrument_id, sequence, rtype) is not enough: one exchange packet gives several
MBO records with one sequence number. Matching is a multiset, so two identical records at one instant are two.
Only the records at the boundary instant are compared one by one (a handful); everything else is one mask.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Boundary:
    last_ts: int = -1  # the last ts_recv held (-1: nothing held yet)
    at_last: Counter[bytes] = field(default_factory=Counter)  # the records held at last_ts, by exact bytes
    replaying: bool = False  # a reconnect happened and the replay has not yet passed last_ts
    unmatched: Counter[bytes] = field(default_factory=Counter)  # held records at last_ts the replay has not repeated


@dataclass
class GapFilter:
    """What the capture holds per schema, and the filter that keeps a replay from duplicating it."""

    boundaries: dict[str, _Boundary] = field(default_factory=dict)
    duplicates_dropped: int = 0

    def resume_from(self) -> int | None:
        """The `start=` of a gap-filling resubscription: the earliest last-held ts_recv over the schemas."""
        held = [b.last_ts for b in self.boundaries.values() if b.last_ts >= 0]
        return min(held) if held else None

    def reconnected(self) -> None:
        """A new connection replays from resume_from(): filter each schema until it passes what is held."""
        for boundary in self.boundaries.values():
            boundary.replaying = boundary.last_ts >= 0
            boundary.unmatched = Counter(boundary.at_last)

    def resubscribed(self, at_ns: int, schemas: list[str]) -> None:
        """A fresh subscription replays from `at_ns` (a resubscription at a mapping change): what it sends
        before `at_ns` belongs to the old mapping's time and is dropped; from `at_ns` on nothing is held."""
        for schema in schemas:
            boundary = self.boundaries.setdefault(schema, _Boundary())
            if boundary.last_ts < at_ns - 1:
                boundary.last_ts, boundary.at_last = at_ns - 1, Counter()
            boundary.unmatched = Counter(boundary.at_last)
            boundary.replaying = True

    def admit(self, schema: str, records: np.ndarray) -> np.ndarray:
        """The mask of `records` not held yet (and remember those as held). One schema, arrival order."""
        boundary = self.boundaries.setdefault(schema, _Boundary())
        keep = np.ones(len(records), dtype=bool)
        if not len(records):
            return keep
        ts = records["ts_recv"].astype(np.int64)
        if boundary.replaying:
            keep = ts > boundary.last_ts
            same = np.flatnonzero(ts == boundary.last_ts)
            if len(same):
                left = boundary.unmatched
                for i, raw in zip(same, (r.tobytes() for r in records[same]), strict=True):
                    if left[raw] > 0:
                        left[raw] -= 1
                    else:
                        keep[i] = True
            if keep.any():  # the replay is past what was held once a new record appears
                boundary.replaying = False
            self.duplicates_dropped += int(len(keep) - np.count_nonzero(keep))
            if not keep.any():
                return keep
            self._hold(boundary, records[keep], ts[keep])
            return keep
        self._hold(boundary, records, ts)
        return keep

    @staticmethod
    def _hold(boundary: _Boundary, records: np.ndarray, ts: np.ndarray) -> None:
        last = int(ts.max())
        tail = records[ts == last]
        if last != boundary.last_ts:
            boundary.at_last = Counter()
            boundary.last_ts = last
        boundary.at_last.update(r.tobytes() for r in tail)
