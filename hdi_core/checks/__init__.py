"""The checks of the continuous chain: pure functions over Arrow tables and NumPy arrays, one module per checkpoint.

session_alignment (alignment), ohlc_integrity + bad ticks (ohlc), indicator_sanity + return outliers
(indicators), timestamp_continuity + calendar coverage and record order (continuity, coverage), no_nan_or_inf
(finite), roll_continuity + within_contract_changes (rolls), reconciliation against the exchange's numbers
(reconcile). Thresholds come from configs/checks.yaml (hdi_core.config.checks).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hdi_core.calendar.arrays import Sessions
from hdi_core.checks.alignment import session_alignment
from hdi_core.checks.common import ERROR, MAX_EXAMPLES, WARN, CheckOutcome, _plain
from hdi_core.checks.continuity import timestamp_continuity
from hdi_core.checks.finite import no_nan_or_inf, no_nan_or_inf_tables
from hdi_core.checks.indicators import indicator_sanity
from hdi_core.checks.ohlc import bad_ticks, ohlc_integrity
from hdi_core.checks.rolls import roll_continuity, within_contract_changes
from hdi_core.units import NS

CHECKPOINTS = ("session_alignment", "ohlc_integrity", "indicator_sanity", "timestamp_continuity",
               "no_nan_or_inf")

__all__ = ["CHECKPOINTS", "ERROR", "MAX_EXAMPLES", "WARN", "CheckOutcome", "bad_ticks", "indicator_sanity",
           "no_nan_or_inf", "no_nan_or_inf_tables", "ohlc_integrity", "roll_continuity", "run_checkpoints",
           "run_side_by_side",
           "session_alignment", "timestamp_continuity", "validation_report", "within_contract_changes"]


# The compiled kernels release the GIL: independent checks run side by side, one per core.
CHECK_THREADS = max(1, min(4, os.cpu_count() or 1))


def run_side_by_side(jobs: Sequence[Callable[[], CheckOutcome]]) -> list[CheckOutcome]:
    """Each job's outcome, in the jobs' order; the jobs run on CHECK_THREADS threads."""
    if len(jobs) <= 1 or CHECK_THREADS == 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(CHECK_THREADS, len(jobs))) as pool:
        return [future.result() for future in [pool.submit(job) for job in jobs]]


def run_checkpoints(bars: Any, sessions: Sessions, interval_ns: str | int = NS, dense: bool = False,
                    period: int = 14) -> list[CheckOutcome]:
    """The five checkpoints, in order, with their plain (bars-only) defaults."""
    return [session_alignment(bars, sessions, interval_ns), ohlc_integrity(bars),
            indicator_sanity(bars, period), timestamp_continuity(bars, sessions, interval_ns, dense),
            no_nan_or_inf(bars)]


def validation_report(outcomes: Iterable[CheckOutcome]) -> dict[str, Any]:
    """JSON-serialisable summary: overall pass (errors only) and one entry per check with thresholds and counts."""
    items: Sequence[CheckOutcome] = list(outcomes)
    return {"passed": all(o.passed or o.severity == WARN for o in items),
            "checkpoints": [{"checkpoint": o.name, "passed": bool(o.passed), "severity": o.severity,
                             "violations": int(o.violations), "thresholds": _plain(o.thresholds),
                             "details": _plain(o.details), "first_violations": _plain(o.first_violations)}
                            for o in items]}
