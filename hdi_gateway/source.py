"""What the gateway asks of a data source; the synthetic market and the DBN-file folder both provide it.

All times are int64 nanoseconds since the Unix epoch (UTC); `end_ns` is exclusive, as Databento's `end`.
Records travel as NumPy structured arrays whose dtype is the DBN v3 record layout of the schema
(`databento_dbn` record bytes), so the gateway can write them to a DBN stream without one Python
object per record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

# Schemas the gateway serves (Databento names).
SCHEMAS = (
    "trades", "tbbo", "mbp-1", "mbp-10", "mbo", "ohlcv-1s", "ohlcv-1m", "ohlcv-1h", "ohlcv-1d",
    "bbo-1s", "bbo-1m", "cbbo-1s", "cbbo-1m", "statistics", "status", "definition", "imbalance",
)


@dataclass(frozen=True)
class Instrument:
    """One listed contract, as its definition record describes it."""

    instrument_id: int
    raw_symbol: str  # e.g. "ESM4"
    parent: str  # e.g. "ES.FUT"
    expiration_ns: int
    activation_ns: int
    tick_size: int  # min_price_increment, fixed point 1e-9
    multiplier: int  # unit_of_measure_qty in contract units


class DataSource(Protocol):
    """One dataset's worth of data, queryable like Databento's timeseries and symbology APIs."""

    def datasets(self) -> list[str]: ...

    def schemas(self, dataset: str) -> list[str]: ...

    def dataset_range(self, dataset: str) -> tuple[int, int, dict[str, tuple[int, int]]]:
        """(start_ns, end_ns, {schema: (start_ns, end_ns)}) of what the source holds."""
        ...

    def instruments(self, dataset: str, start_ns: int, end_ns: int) -> list[Instrument]:
        """Contracts listed at any time in [start_ns, end_ns)."""
        ...

    def daily_stats(self, dataset: str, start_date: dt.date, end_date: dt.date) -> pd.DataFrame:
        """Per UTC trading date and instrument: columns date, instrument_id, volume, open_interest.

        The continuous rules (v = previous-day volume, n = previous-day open interest) rank these.
        """
        ...

    def records(
        self, dataset: str, schema: str, instrument_ids: np.ndarray | None, start_ns: int, end_ns: int
    ) -> np.ndarray:
        """Records of `schema` with ts_event (ts_recv for definitions/statistics) in [start_ns, end_ns),
        for the given instrument ids (None = all), sorted by time, as a structured array in DBN v3 layout."""
        ...
