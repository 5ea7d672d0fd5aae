"""Dead-letter files: quarantined rows as JSON lines under HDI_HOME, named by job and run, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from hdi_resources.dead_letter import write_dead_letter


def test_quarantined_rows_become_one_json_line_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    rows = pa.table({"target": ["trades_data", "trades_data"], "rule": ["price.positive", "order.index_time"],
                     "message": ["price -1 is not positive", "ts_recv before the previous record's"],
                     "record": [json.dumps({"price": -1}), "not json"]})
    path = write_dead_letter(rows, "es/trades job", "run 7", folder="dlq")
    assert path == tmp_path / "dlq" / "es_trades_job" / "run_7.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["rule"] for line in lines] == ["price.positive", "order.index_time"]
    assert lines[0]["record"] == {"price": -1} and lines[1]["record"] == "not json"  # kept as the text it is
    assert {line["job"] for line in lines} == {"es/trades job"} and not list(path.parent.glob("*.tmp"))
