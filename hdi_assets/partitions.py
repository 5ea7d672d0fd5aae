"""Symbol x half-year partitions, and the "every later window" mapping backward adjustment needs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

from dagster import (
    DimensionPartitionMapping,
    IdentityPartitionMapping,
    MultiPartitionKey,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
)

from hdi_core.calendar import Sessions, calendar_sessions
from hdi_core.config.symbols import load_symbols
from hdi_core.continuous.adjust import DIRECTION


@dataclass(frozen=True)
class ProductConfig:
    symbol: str
    dataset: str
    roll_rule: str
    adjustment: str
    roll_gap_source: str
    first_window: str
    tick_size: int  # fixed point 1e-9
    dense_bars: bool
    max_gap_ns: int  # gap-threshold fallback for unexpected halts
    calendar: str = "CME Globex Equity"  # pandas_market_calendars name: drives sessions, trade dates and checks
    multiplier: float = 1.0  # dollars per 1.0 of quoted price
    months: str = "HMUZ"  # listed contract months (CME codes)
    switch_at: str = "trade_date_open"  # trade_date_open | databento (rolls.switch_at)

    @property
    def continuous_symbol(self) -> str:
        """Databento continuous symbol of the lead contract, e.g. ES.v.0."""
        return f"{self.symbol}.{self.roll_rule}.0"

    def sessions(self, start_ns: int, end_ns: int) -> Sessions:
        """The product's trading segments overlapping [start_ns, end_ns), with CME trade dates."""
        return calendar_sessions(self.calendar, start_ns, end_ns)


@cache
def products() -> dict[str, ProductConfig]:
    """Every product of configs/symbols.yaml (validated: a bad file fails here naming file and field)."""
    cfg = load_symbols()
    return {
        sym: ProductConfig(
            symbol=sym,
            dataset=spec.dataset or cfg.dataset,
            roll_rule=spec.roll_rule or cfg.roll_rule,
            adjustment=spec.adjustment or cfg.adjustment,
            roll_gap_source=spec.roll_gap_source or cfg.roll_gap_source,
            switch_at=spec.switch_at or cfg.switch_at,
            first_window=(spec.first_window or cfg.first_window).isoformat(),
            tick_size=spec.tick_size_fixed,
            dense_bars=cfg.bars.dense,
            max_gap_ns=cfg.bars.max_gap_minutes * 60 * 1_000_000_000,
            calendar=spec.calendar,
            multiplier=spec.multiplier,
            months=spec.months,
        )
        for sym, spec in cfg.symbols.items()
    }


FIRST_WINDOW = min(p.first_window for p in products().values())

# Half-years starting Jan 1 and Jul 1 (UTC); end_offset=1 adds the still-open window.
half_year_windows = TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1,7 *", start=FIRST_WINDOW, fmt="%Y-%m-%d", end_offset=1
)
symbols = StaticPartitionsDefinition(list(products()))
symbol_windows = MultiPartitionsDefinition({"symbol": symbols, "window": half_year_windows})



def _window_mapping(start_offset: int, end_offset: int) -> MultiPartitionMapping:
    """Same symbol; the windows from `start_offset` to `end_offset` around each window."""
    return MultiPartitionMapping(
        {
            "symbol": DimensionPartitionMapping("symbol", IdentityPartitionMapping()),
            "window": DimensionPartitionMapping(
                "window",
                TimeWindowPartitionMapping(start_offset=start_offset, end_offset=end_offset,
                                           allow_nonexistent_upstream_partitions=True),
            ),
        }
    )


# Backward adjustment of window W needs the rolls of W and of every later window of the same symbol; forward
# adjustment those of W and every earlier one. The graph follows the configured methods (both when mixed).
LATER_WINDOWS = _window_mapping(0, 1000)
EARLIER_WINDOWS = _window_mapping(-1000, 0)
ALL_WINDOWS = _window_mapping(-1000, 1000)
_DIRECTIONS = {DIRECTION[p.adjustment] for p in products().values()}
ROLL_WINDOWS = {frozenset({"backward"}): LATER_WINDOWS, frozenset({"forward"}): EARLIER_WINDOWS}.get(
    frozenset(_DIRECTIONS), ALL_WINDOWS
)


def adjusts_with(product: ProductConfig, adjusted_window: str, roll_window: str) -> bool:
    """Whether the rolls of `roll_window` move the adjusted prices of `adjusted_window` (same product)."""
    if DIRECTION[product.adjustment] == "backward":
        return window_start(roll_window) >= window_start(adjusted_window)
    return window_start(roll_window) <= window_start(adjusted_window)


def partition_key(symbol: str, window: str) -> MultiPartitionKey:
    return MultiPartitionKey({"symbol": symbol, "window": window})


def product_window(key: MultiPartitionKey) -> tuple[ProductConfig, str]:
    """The product and the window (e.g. "2024-01-01") of a symbol x window partition key."""
    keys = key.keys_by_dimension
    return products()[keys["symbol"]], keys["window"]


# roll_events' content digest of its rows (hdi_core.digest): what the roll-staleness sensor compares.
ROLL_HASH_METADATA = "roll_hash"


def window_start(window: str) -> dt.datetime:
    """When a window key starts, as the partitions definition says."""
    return half_year_windows.time_window_for_partition_key(window).start


def window_of(day: dt.date) -> str:
    """The window holding calendar date `day` (a window owns the sessions whose trade date is in it)."""
    return half_year_windows.get_partition_key_for_timestamp(
        dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()
    )


def previous_window(window: str) -> str | None:
    """The window before `window`; None before the first configured window."""
    before = half_year_windows.get_prev_partition_window(window_start(window))
    return None if before is None else before.start.strftime(half_year_windows.fmt)


def is_configured_window(window: str) -> bool:
    """Whether `window` starts at or after the first configured window."""
    return window_start(window) >= half_year_windows.start
