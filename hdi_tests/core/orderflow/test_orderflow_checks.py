"""The order-flow checks as pure functions: a volume off by one, a bar on one side only, evidence that points at
no event, are each reported with the first violations."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hdi_core.orderflow.checks import evidence_exists, group_sums, merge, volumes_match


def test_group_sums() -> None:
    keys, sums = group_sums(np.array([1, 1, 2, 5, 5, 5]), np.array([1, 2, 3, 4, 5, 6]))
    assert keys.tolist() == [1, 2, 5] and sums.tolist() == [3, 3, 15]


def test_volumes_match_reports_differences_and_one_sided_keys() -> None:
    ok = volumes_match("v", np.array([10, 20]), np.array([5, 7]), np.array([10, 20]), np.array([5, 7]))
    assert ok.passed and ok.violations == 0 and ok.details["bars_compared"] == 2
    bad = volumes_match("v", np.array([10, 20]), np.array([5, 8]), np.array([10, 20, 30]), np.array([5, 7, 1]))
    assert not bad.passed and bad.violations == 2
    assert [(v["volume"], v["bar_volume"]) for v in bad.first_violations] == [(8, 7), (0, 1)]
    assert bad.first_violations[0]["ts_event"] == "1970-01-01T00:00:00.000000020Z"
    days = volumes_match("d", np.array([19_000]), np.array([3]), np.array([19_000]), np.array([4]), what="session",
                         key_name="trade_date")
    assert days.first_violations == [{"trade_date": "2022-01-08", "volume": 3, "session_volume": 4}]


def test_evidence_exists() -> None:
    ts, seq = np.array([100, 200, 300]), np.array([7, 8, 9])
    rows = pa.table({"first_index": [0, 1, 5], "first_ts": [100, 200, 300], "first_sequence": [7, 9, 9]})
    out = evidence_exists("e", rows, ts, seq, (("first_index", "first_ts", "first_sequence"),))
    assert not out.passed and out.violations == 2  # a wrong sequence, an index past the tape
    assert [v["first_index"] for v in out.first_violations] == [1, 5]
    merged = merge("e", [out, evidence_exists("e", rows.slice(0, 1), ts, seq,
                                              (("first_index", "first_ts", "first_sequence"),))])
    assert merged.violations == 2 and merged.details["records"] == 4 and not merged.passed
