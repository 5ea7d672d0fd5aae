"""Sample rows shared by tests at any depth: five minute bars with awkward prices (tiny, negative, huge), random
walks of continuous bars, vendor trades one per second, and a one-query helper."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

START_NS = 1_719_792_000 * 1_000_000_000  # 2024-07-01 00:00 UTC
# Prices chosen to catch rounding: a 1e-9 step, negative back-adjusted values, a 9-digit integer part.
OPENS = [4_500_250_000_000, 1, -12_500_000_000, 123_456_789_123_456_789, 999_999_999]


def minute_bars() -> pa.Table:
    n = len(OPENS)
    opens = np.array(OPENS, dtype=np.int64)
    ts = START_NS + np.arange(n, dtype=np.int64) * 60_000_000_000
    return pa.table({
        "root_symbol": ["ES"] * n,
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "trade_date": pa.array([dt.date(2024, 7, 1)] * n, pa.date32()),
        "open": opens, "high": opens + 250_000_000, "low": opens - 1, "close": opens + 3,
        "volume": np.arange(n, dtype=np.int64), "trade_count": np.ones(n, dtype=np.int64),
        "vwap": [4500.123456789, 0.1, -12.5, 1e8, 0.000000001],
        "adjustment_method": ["panama"] * n,
    })


def random_walk_bars(ts_s: np.ndarray, seed: int, root: str, granularity: str, base: int, step: int) -> pa.Table:
    """continuous_bars rows at `ts_s` (unix seconds): a seeded random walk of closes from `base` in `step`s
    (fixed point 1e-9), each bar opening at the previous close."""
    n = len(ts_s)
    rng = np.random.default_rng(seed)
    close = base + np.cumsum(rng.integers(-2, 3, n)) * step
    open_ = np.concatenate(([close[0]], close[:-1]))
    volume = rng.integers(1, 50, n)
    return pa.table({
        "root_symbol": pa.array([root] * n),
        "granularity": pa.array([granularity] * n),
        "ts": pa.array(ts_s * 1_000_000_000, pa.timestamp("ns", tz="UTC")),
        "trade_date": pa.array((ts_s // 86_400).astype(np.int32)).cast(pa.date32()),
        "open": open_, "high": np.maximum(open_, close) + step, "low": np.minimum(open_, close) - step,
        "close": close, "volume": volume, "trade_count": volume // 2 + 1, "vwap": close / 1e9,
        "adjustment_method": pa.array(["panama"] * n),
    })


def trades_at(start_s: int, seconds: np.ndarray, instrument: int, base_price: int, flags: int = 0) -> pa.Table:
    """Vendor trades (DBN field names) one per given second after `start_s` (unix seconds), sequence numbered by
    that second, prices a quarter point apart from `base_price` (fixed point 1e-9)."""
    n = len(seconds)
    ts = (start_s + seconds.astype(np.int64)) * 1_000_000_000
    return pa.table({
        "ts_event": pa.array(ts, pa.uint64()), "ts_recv": pa.array(ts + 5_000, pa.uint64()),
        "publisher_id": np.full(n, 1, np.int16), "instrument_id": np.full(n, instrument, np.int32),
        "price": base_price + seconds.astype(np.int64) * 250_000_000,
        "size": np.ones(n, np.int32), "action": ["T"] * n, "side": np.where(seconds % 2 == 0, "A", "B"),
        "flags": np.full(n, flags, np.int16), "depth": np.zeros(n, np.int16),
        "sequence": seconds.astype(np.int64), "ts_in_delta": np.full(n, 100, np.int32),
    })


def rows(db, sql: str, params: tuple = ()) -> list[tuple]:  # noqa: ANN001 - any hdi_resources Database
    """All rows of one query on the app role's connection."""
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()
