"""The order-flow asset checks as pure functions: volumes that must equal the bars' own, evidence that must
point at events of the tape. Each returns a CheckOutcome (hdi_core.checks) with its first violations."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hdi_core.checks.common import MAX_EXAMPLES, CheckOutcome, iso


def group_sums(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique keys, sum of values per key) of rows sorted by key."""
    if len(keys) == 0:
        return keys, values
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.add.reduceat(values, starts)


def volumes_match(name: str, keys: np.ndarray, volumes: np.ndarray, bar_keys: np.ndarray, bar_volumes: np.ndarray,
                  what: str = "bar", key_name: str = "ts_event") -> CheckOutcome:
    """Every key's volume equals the bars' volume at that key (a key on one side only counts as zero there).

    Keys are unique and sorted on each side (bar timestamps, or trade dates as day numbers).
    """
    every = np.union1d(keys, bar_keys)
    ours = np.zeros(len(every), np.int64)
    theirs = np.zeros(len(every), np.int64)
    ours[np.searchsorted(every, keys)] = volumes
    theirs[np.searchsorted(every, bar_keys)] = bar_volumes
    bad = np.flatnonzero(ours != theirs)
    show = (lambda k: iso(int(k))) if key_name == "ts_event" else (lambda k: str(np.datetime64(int(k), "D")))
    first = [{key_name: show(every[i]), "volume": int(ours[i]), f"{what}_volume": int(theirs[i])}
             for i in bad[:MAX_EXAMPLES]]
    return CheckOutcome(name, len(bad) == 0, len(bad),
                        {f"{what}s_compared": len(every), "volume": int(volumes.sum()),
                         f"{what}_volume": int(bar_volumes.sum())}, first)


def evidence_exists(name: str, rows: pa.Table, ts: np.ndarray, sequence: np.ndarray,
                    pairs: tuple[tuple[str, str, str], ...]) -> CheckOutcome:
    """Every row's evidence (index, ts_recv column, sequence column) names an event of the tape (ts, sequence)."""
    bad = np.zeros(rows.num_rows, bool)
    for index_col, ts_col, seq_col in pairs:
        idx = rows[index_col].to_numpy()
        inside = (idx >= 0) & (idx < len(ts))
        at = np.where(inside, idx, 0)
        ok = inside & (ts[at] == rows[ts_col].to_numpy()) & (sequence[at] == rows[seq_col].to_numpy())
        bad |= ~ok
    first = [{c: rows[c][int(i)].as_py() for c in (p for trio in pairs for p in trio)} for i in
             np.flatnonzero(bad)[:MAX_EXAMPLES]]
    return CheckOutcome(name, not bad.any(), int(bad.sum()), {"records": rows.num_rows, "events": len(ts)}, first)


def merge(name: str, outcomes: list[CheckOutcome]) -> CheckOutcome:
    """One outcome of several (per interval, per day): violations and details summed, examples kept in order."""
    details: dict = {}
    for o in outcomes:
        for k, v in o.details.items():
            details[k] = details.get(k, 0) + v if isinstance(v, int) else v
    first = [f for o in outcomes for f in o.first_violations][:MAX_EXAMPLES]
    violations = sum(o.violations for o in outcomes)
    return CheckOutcome(name, violations == 0, violations, details, first)
