"""Units every layer shares: nanosecond time and Databento's fixed-point prices. Defined here once."""

from __future__ import annotations

NS = 1_000_000_000  # nanoseconds per second: every HDI timestamp is int ns since the Unix epoch (UTC)
DAY_NS = 86_400 * NS  # nanoseconds per (UTC calendar) day
PRICE_SCALE = 1_000_000_000  # DBN prices are int64 in units of 1e-9 (databento_dbn.FIXED_PRICE_SCALE)
