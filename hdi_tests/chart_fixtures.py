"""Demo-like stored data for the chart tests: hourly ES.v.0 bars over March-June 2024 (panama_backward), the two
rolls of the demo (ESH4->ESM4 +38.50, ESM4->ESU4 +31.00), and ESM4's own vendor bars (the rest come from the
bars' provenance)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from hdi_resources.db import Database

SCALE = 1_000_000_000
HOUR_NS = 3_600 * SCALE
ROLLS = [("2024-03-11T22:00:00", "ESH4", "ESM4", 10291, 10294, 38.5),
         ("2024-06-17T22:00:00", "ESM4", "ESU4", 10294, 10297, 31.0)]
ESM4_ID = 10294


def _ns(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()) * SCALE


def hourly(start: str = "2024-02-29T23:00:00", end: str = "2024-06-28T21:00:00") -> tuple[np.ndarray, np.ndarray]:
    """Bar times (trading hours: Sunday 23:00 to Friday 21:00 UTC, an hour's halt each day) and trade dates."""
    ts = np.arange(_ns(start), _ns(end), HOUR_NS, dtype=np.int64)
    shifted = ts + HOUR_NS  # 23:00 UTC opens the next trade date
    day = shifted.astype("datetime64[ns]").astype("datetime64[D]")
    weekday = (day.astype(np.int64) + 3) % 7  # 0 = Monday
    hour = (ts // HOUR_NS) % 24
    keep = (weekday < 5) & (hour != 21)
    return ts[keep], day[keep]


def load_demo_like(db: Database, seed: int = 13) -> dict[str, object]:
    """Store the bars, rolls and vendor bars; returns what the tests compare against."""
    ts, days = hourly()
    rng = np.random.default_rng(seed)
    close = 5_000.0 + np.cumsum(rng.normal(0, 4, len(ts)))
    close = np.round(close * 4) / 4  # ES ticks
    opens = np.concatenate([[close[0]], close[:-1]])
    high, low = np.maximum(opens, close) + 0.5, np.minimum(opens, close) - 0.5
    fixed = {k: np.round(v * SCALE).astype(np.int64) for k, v in
             {"open": opens, "high": high, "low": low, "close": close}.items()}
    n = len(ts)
    bars = pa.table({
        "root_symbol": ["ES"] * n, "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "trade_date": pa.array(days.astype("datetime64[D]"), pa.date32()), **fixed,
        "volume": np.full(n, 100, np.int64), "trade_count": np.full(n, 10, np.int64), "vwap": close,
        "adjustment_method": ["panama_backward"] * n,
    })
    db.replace_partition("continuous_bars", {"continuous_symbol": "ES.v.0", "granularity": "1h",
                                             "window": "2024-01-01"}, bars)
    switch = pa.array([_ns(r[0]) for r in ROLLS], pa.timestamp("ns", tz="UTC"))
    old_price = [5_000 * SCALE, 5_100 * SCALE]
    db.replace_partition("roll_events", {"continuous_symbol": "ES.v.0", "window": dt.date(2024, 1, 1)}, pa.table({
        "switch_ts": switch, "old_instrument_id": [r[3] for r in ROLLS], "new_instrument_id": [r[4] for r in ROLLS],
        "old_raw_symbol": [r[1] for r in ROLLS], "new_raw_symbol": [r[2] for r in ROLLS], "old_price": old_price,
        "new_price": [p + int(r[5] * SCALE) for p, r in zip(old_price, ROLLS, strict=True)],
        "roll_gap": [int(r[5] * SCALE) for r in ROLLS], "method": ["settlement"] * 2, "reference_ts": switch}))
    esm4 = fixed["close"] - int(31.0 * SCALE)  # ESM4's own price: the adjusted close less the later gap
    db.upsert_rows("ohlcv_data", pa.table({
        "ts_event": pa.array(ts.astype(np.uint64)), "instrument_id": [ESM4_ID] * n,
        "open_price": esm4, "high_price": esm4, "low_price": esm4, "close_price": esm4,
        "volume": np.ones(n, np.int64), "granularity": ["1h"] * n, "data_source": ["databento"] * n}))
    db.record_symbols("GLBX.MDP3", [("ESM4", ESM4_ID, dt.date(2024, 3, 1), dt.date(2024, 6, 28))])
    return {"bars": n, "close": close, "ts": ts}
