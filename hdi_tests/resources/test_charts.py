"""The pictures (issue 13): the rendering helpers agree with the adjustment, and the PNGs are small and valid."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from dagster import MultiPartitionKey

from hdi_core.continuous import adjust
from hdi_resources import charts

NS = 1_000_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _ticks() -> tuple[pa.Table, pa.Table]:
    """Three contracts over ~9 days, two rolls, gaps +5 and -3 (fixed point)."""
    ts = np.arange(0, 9 * 86_400 * NS, 97 * NS, dtype=np.int64)
    switch = np.array([3 * 86_400 * NS, 6 * 86_400 * NS], np.int64)
    segment = np.searchsorted(switch, ts, side="right")
    gaps = np.array([5, -3], np.int64) * NS
    raw = (4000 * NS + (np.sin(ts / 3e13) * 20 * NS).astype(np.int64) + np.array([0, 5, 2])[segment] * NS)
    symbols = np.array(["ESH4", "ESM4", "ESU4"])[segment]
    adjusted = adjust.adjust("panama_backward", ts, raw, switch, gaps, raw[:2], raw[:2] + gaps)
    ticks = pa.table({"ts_event": ts, "price": raw, "size": np.ones_like(ts), "raw_symbol": symbols,
                      "adjusted_price": adjusted})
    events = pa.table({"switch_ns": switch, "roll_gap": gaps, "old_price": raw[:2], "new_price": raw[:2] + gaps,
                       "old_raw_symbol": ["ESH4", "ESM4"], "new_raw_symbol": ["ESM4", "ESU4"]})
    return ticks, events


def test_last_per_interval_takes_each_intervals_last_value() -> None:
    ts = np.array([5, 0, 61, 59, 130], np.int64) * NS
    t, v = charts.last_per_interval(ts, np.array([2.0, 1.0, 4.0, 3.0, 5.0]), charts.MINUTE_NS)
    assert t.tolist() == [0, 60 * NS, 120 * NS]
    assert v.tolist() == [3.0, 4.0, 5.0]


@pytest.mark.parametrize("method", ["panama_backward", "panama_forward", "ratio_backward"])
def test_contract_offsets_reproduce_the_adjustment(method: str) -> None:
    ticks, events = _ticks()
    ts, raw = ticks["ts_event"].to_numpy(), ticks["price"].to_numpy()
    ev = [events[c].to_numpy() for c in ("switch_ns", "roll_gap", "old_price", "new_price")]
    adjusted = adjust.adjust(method, ts, raw, ev[0], ev[1], ev[2], ev[3]) * charts.PRICE_SCALE
    symbols = ticks["raw_symbol"].to_numpy(zero_copy_only=False)
    for symbol in ("ESH4", "ESM4", "ESU4"):
        mine = symbols == symbol
        shift, factor = charts.contract_offsets(method, int(ts[mine].min()), *ev)
        np.testing.assert_allclose(raw[mine] * charts.PRICE_SCALE * factor + shift, adjusted[mine], atol=1e-6)


def test_adjusted_chart_is_a_small_png_with_every_contract_and_roll(tmp_path, monkeypatch) -> None:
    from hdi_assets.continuous import charts as asset_charts

    monkeypatch.setenv("HDI_HOME", str(tmp_path))
    ticks, events = _ticks()
    adj_ts, adj, lines, marks = asset_charts.adjusted_series_lines("panama_backward", ticks, events)
    assert [line.symbol for line in lines] == ["ESH4", "ESM4", "ESU4"]
    assert [line.shift for line in lines] == pytest.approx([2.0, -3.0, 0.0])
    assert [(m.old_symbol, m.new_symbol, m.gap) for m in marks] == [("ESH4", "ESM4", 5.0), ("ESM4", "ESU4", -3.0)]
    for line in lines:  # the eye's check, numerically: each shifted contract sits on the adjusted closes
        on = np.isin(adj_ts, line.ts_ns)
        np.testing.assert_allclose(line.shifted(), adj[on], atol=1e-9)
    partition = MultiPartitionKey({"symbol": "ES", "window": "2024-01-01"})
    metadata = asset_charts.adjusted_chart("panama_adjusted_ticks", partition, "panama_backward", ticks, events)
    path = metadata["chart_path"].path
    png = open(path, "rb").read()
    assert path.endswith("_chart.png") and "symbol=ES/window=2024-01-01" in path
    assert png.startswith(PNG_MAGIC) and len(png) < 150_000
    assert metadata["chart"].md_str.startswith("![adjusted series with rolls](data:image/png;base64,")


def test_coverage_strip_counts_trading_minutes_with_and_without_bars() -> None:
    opens = np.array([0, 2 * 3_600 * NS], np.int64)
    closes = opens + 3_600 * NS
    bars = np.concatenate([np.arange(0, 1_800, 1) * NS, [2 * 3_600 * NS + 5 * NS]])  # first half hour, one minute
    minutes, covered = charts.minute_coverage(opens, closes, bars)
    assert len(minutes) == 120 and int(covered.sum()) == 31
    png = charts.coverage_strip_png("ES 1s bars", opens, closes, bars)
    assert png.startswith(PNG_MAGIC) and len(png) < 100_000
