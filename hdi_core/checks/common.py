"""What every check shares: the outcome record, JSON-friendly values, example rows, compiled helpers.

Each check returns a CheckOutcome with a violation count, its thresholds, JSON-friendly details and the first
(at most 10) violating rows, their timestamps as ISO strings. Checks never raise on bad data; they report it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.calendar.arrays import Sessions

MAX_EXAMPLES = 10
ERROR, WARN = "error", "warn"


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    violations: int
    details: dict[str, Any] = field(default_factory=dict)
    first_violations: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    severity: str = ERROR  # error blocks the load; warn is shown but stops nothing

    def with_thresholds(self, severity: str | None = None, **thresholds: Any) -> CheckOutcome:
        """The same outcome, its thresholds (and severity) recorded."""
        return CheckOutcome(self.name, self.passed, self.violations, self.details, self.first_violations,
                            {**self.thresholds, **_plain(thresholds)}, severity or self.severity)


def iso(ts_ns: int) -> str:
    return str(np.datetime64(int(ts_ns), "ns")) + "Z"


_iso = iso


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays -> JSON-friendly Python values (NaN/inf become strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value




def _rows(table: pa.Table, mask_or_index: np.ndarray, reason: list[str] | None = None) -> list[dict]:
    """The first violating rows of `table` as dicts, ts_event as ISO string, with an optional reason."""
    index = np.flatnonzero(mask_or_index) if mask_or_index.dtype == bool else mask_or_index
    index = index[:MAX_EXAMPLES]
    out = []
    for k, i in enumerate(index):
        row = {"row": int(i)}
        for name in table.column_names:
            v = table.column(name)[int(i)].as_py()
            row[name] = _iso(v) if name == "ts_event" and isinstance(v, int) else _plain(v)
        if reason is not None:
            row["reason"] = reason[k]
        out.append(row)
    return out


def _outcome(name: str, bad: np.ndarray, table: pa.Table, details: dict, reason: Any = None) -> CheckOutcome:
    count = int(np.count_nonzero(bad))
    return CheckOutcome(name, count == 0, count, _plain(details), _rows(table, bad, reason) if count else [])


def _kernel_outcome(name: str, count: int, rows: np.ndarray, reason_codes: np.ndarray | None,
                    reason_texts: Sequence[str], table: pa.Table, details: dict) -> CheckOutcome:
    """An outcome from a kernel's violation count and its first MAX_EXAMPLES rows and reason codes."""
    shown = rows[:min(count, MAX_EXAMPLES)]
    reason = None if reason_codes is None else [reason_texts[int(c)] for c in reason_codes[:len(shown)]]
    examples = _rows(table, shown, reason) if count else []
    return CheckOutcome(name, count == 0, count, _plain(details), examples)


@njit(cache=True, nogil=True, inline="always")
def _session_at(t: int, hint: int, open_ns: np.ndarray, close_ns: np.ndarray) -> int:  # pragma: no cover
    """Index of the session holding t, or -1; checks `hint` and its successor before a binary search."""
    n = len(open_ns)
    if 0 <= hint < n and open_ns[hint] <= t < close_ns[hint]:
        return hint
    if 0 <= hint + 1 < n and open_ns[hint + 1] <= t < close_ns[hint + 1]:
        return hint + 1
    lo, hi = 0, n  # first session opening after t
    while lo < hi:
        mid = (lo + hi) // 2
        if open_ns[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    j = lo - 1
    if j >= 0 and t < close_ns[j]:
        return j
    return -1


@njit(cache=True, nogil=True, inline="always")
def _note(bad: int, i: int, code: int, rows: np.ndarray, codes: np.ndarray) -> int:  # pragma: no cover
    """Record row i (with its reason code) among the first examples; return the new violation count."""
    if bad < len(rows):
        rows[bad] = i
        codes[bad] = code
    return bad + 1


def _examples() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(MAX_EXAMPLES, dtype=np.int64), np.zeros(MAX_EXAMPLES, dtype=np.int64)


def _bounds(sessions: Sessions) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(sessions.open_ns, dtype=np.int64),
            np.ascontiguousarray(sessions.close_ns, dtype=np.int64))

