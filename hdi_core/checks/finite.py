"""No NaN propagation: no null, NaN or inf in any column of any output table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from hdi_core.checks.common import MAX_EXAMPLES, CheckOutcome, _outcome


@njit(cache=True, nogil=True)
def _any_not_finite(values: np.ndarray) -> bool:  # pragma: no cover - compiled
    for v in values:
        if not np.isfinite(v):
            return True
    return False


def no_nan_or_inf(table: pa.Table) -> CheckOutcome:
    """No null in any column, no NaN or inf in any float column."""
    clean = all(table.column(name).null_count == 0 for name in table.column_names) and not any(
        _any_not_finite(chunk.to_numpy()) for name in table.column_names
        if pa.types.is_floating(table.column(name).type) for chunk in table.column(name).chunks)
    if clean:  # the usual case in one read of the float columns; masks only to report a failure
        return CheckOutcome("no_nan_or_inf", True, 0, {"rows": table.num_rows, "bad_values_per_column": {}})
    bad = np.zeros(table.num_rows, dtype=bool)
    per_column: dict[str, int] = {}
    for name in table.column_names:  # one vectorized pass per column
        col = table.column(name)
        col_bad = np.zeros(table.num_rows, dtype=bool)
        if col.null_count:
            col_bad |= col.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_floating(col.type):
            values = col.to_numpy(zero_copy_only=False) if col.null_count else col.to_numpy()
            col_bad |= ~np.isfinite(values) & ~col_bad
        if col_bad.any():
            per_column[name] = int(col_bad.sum())
            bad |= col_bad
    details = {"rows": table.num_rows, "bad_values_per_column": per_column}
    reasons = ["null, NaN or inf value"] * min(int(bad.sum()), MAX_EXAMPLES)
    return _outcome("no_nan_or_inf", bad, table, details, reasons)




def no_nan_or_inf_tables(tables: dict[str, pa.Table]) -> CheckOutcome:
    """no_nan_or_inf over several tables at once (e.g. every derived bar interval, the load's input): counts
    per `table.column`, the first violations labelled with their table."""
    per_column: dict[str, int] = {}
    examples: list[dict] = []
    rows = 0
    for label, table in tables.items():
        one = no_nan_or_inf(table)
        rows += table.num_rows
        per_column.update({f"{label}.{col}": n for col, n in one.details["bad_values_per_column"].items()})
        examples += [{"table": label, **row} for row in one.first_violations]
    count = sum(per_column.values())
    return CheckOutcome("no_nan_or_inf", count == 0, count,
                        {"tables": ", ".join(tables), "rows": rows, "bad_values_per_column": per_column},
                        examples[:MAX_EXAMPLES])
