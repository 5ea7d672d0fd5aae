"""Charts attached to materializations: a PNG sidecar (`_chart.png`, `_coverage.png`) in the lake beside the
partition, and Markdown metadata with the image inline so the Dagster UI shows it on the materialization.

Rendering is hdi_resources.charts (matplotlib, no Dagster); this module only picks the data and writes files.
A chart that cannot be drawn never fails the asset: it logs and the metadata says why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import MetadataValue, MultiPartitionKey

from hdi_assets.lake_io import lake_name
from hdi_core.calendar import Sessions
from hdi_resources import charts, lake
from hdi_resources.lake.store import local_path

log = logging.getLogger(__name__)

CHART_FILE = "chart.png"  # written as `_chart.png`: "_" keeps dataset readers off it
COVERAGE_FILE = "coverage.png"


def write_png(table: Any, partition: MultiPartitionKey, name: str, png: bytes) -> Path | str:
    """The PNG `_<name>` beside one partition's data, replaced atomically (folder or bucket lake)."""
    store = lake.lake_store()
    part = store.join(store.root, lake_name(table),
                      *(f"{dim}={value}" for dim, value in dict(partition.keys_by_dimension).items()))
    store.make_dirs(part)
    path = store.join(part, f"_{name}")
    store.put_atomic(path, png)
    return local_path(store, path)


def adjusted_series_lines(method: str, ticks: pa.Table, events: pa.Table, interval_ns: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray, list[charts.ContractLine], list[charts.RollMark]]:
    """Adjusted closes, per-contract raw closes with their shifts, and roll marks from adjusted ticks (columns
    ts_event, price, adjusted_price, raw_symbol) and the roll events that adjusted them."""
    ts = ticks["ts_event"].to_numpy()
    span = int(ts.max() - ts.min()) if len(ts) else 0
    interval = interval_ns or charts.choose_interval(span)
    adj_ts, adj = charts.last_per_interval(ts, ticks["adjusted_price"].to_numpy() * charts.PRICE_SCALE, interval)
    switch, gap = events["switch_ns"].to_numpy(), events["roll_gap"].to_numpy()
    old, new = events["old_price"].to_numpy(), events["new_price"].to_numpy()
    # dictionary codes, not a Python string per tick: a real window holds tens of millions of ticks
    encoded = pc.dictionary_encode(pc.fill_null(ticks["raw_symbol"], "?")).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    raw = ticks["price"].to_numpy() * charts.PRICE_SCALE
    first_seen = {int(code): int(ts[codes == code].min()) for code in np.unique(codes)}
    lines = []
    for code in sorted(first_seen, key=first_seen.get):  # in order of first appearance
        mine, symbol = codes == code, names[code]
        shift, factor = charts.contract_offsets(method, first_seen[code], switch, gap, old, new)
        t, v = charts.last_per_interval(ts[mine], raw[mine], interval)
        lines.append(charts.ContractLine(str(symbol), t, v, shift, factor))
    lo, hi = (int(ts.min()), int(ts.max())) if len(ts) else (0, 0)
    marks = [charts.RollMark(int(r["switch_ns"]), r["old_raw_symbol"] or "?", r["new_raw_symbol"] or "?",
                             r["roll_gap"] * charts.PRICE_SCALE)
             for r in events.to_pylist() if lo <= r["switch_ns"] <= hi]
    return adj_ts, adj, lines, marks


def adjusted_chart(asset: Any, partition: MultiPartitionKey, method: str, ticks: pa.Table,
                   events: pa.Table) -> dict[str, Any]:
    """Metadata `chart` (inline image) and `chart_path` for panama_adjusted_ticks' partition."""
    try:
        adj_ts, adj, lines, marks = adjusted_series_lines(method, ticks, events)
        dims = partition.keys_by_dimension
        title = f"{dims.get('symbol', '')} {dims.get('window', '')}: {method}"
        png = charts.continuous_chart_png(title, adj_ts, adj, lines, marks, subtitle="raw contracts shifted")
        path = write_png(asset, partition, CHART_FILE, png)
        return {"chart": MetadataValue.md(charts.markdown_image(png, "adjusted series with rolls", str(path))),
                "chart_path": MetadataValue.path(str(path))}
    except Exception as exc:  # noqa: BLE001 - a picture must never fail the data
        log.warning("chart of %s %s failed: %s", asset, partition, exc, exc_info=True)
        return {"chart": f"not drawn: {type(exc).__name__}: {exc}"[:300]}


def coverage_chart(asset: Any, partition: MultiPartitionKey, one_second: pa.Table,
                   sessions: Sessions) -> dict[str, Any]:
    """Metadata `coverage` (inline strip) and `coverage_path` for ohlcv_1s's partition (written beside it)."""
    try:
        ts = one_second["ts_event"].to_numpy()
        title = f"{partition.keys_by_dimension.get('symbol', '')} 1s bars"
        png = charts.coverage_strip_png(title, sessions.open_ns, sessions.close_ns, ts)
        path = write_png(asset, partition, COVERAGE_FILE, png)
        return {"coverage": MetadataValue.md(charts.markdown_image(png, "session coverage", str(path))),
                "coverage_path": MetadataValue.path(str(path))}
    except Exception as exc:  # noqa: BLE001
        log.warning("coverage strip of %s %s failed: %s", asset, partition, exc, exc_info=True)
        return {"coverage": f"not drawn: {type(exc).__name__}: {exc}"[:300]}
