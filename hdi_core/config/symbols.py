"""configs/symbols.yaml as a validated model: the products HDI builds and how.

Unknown keys are refused and enumerations are closed, so a typo fails at load time with one line naming the
file and the field (e.g. `configs/symbols.yaml: symbols.ZB.tick_sise: Extra inputs are not permitted`).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hdi_core.calendar.schedule import CalendarName
from hdi_core.config_files import config_dir, load_model

SYMBOLS_FILE = "symbols.yaml"
PRICE_SCALE = 1_000_000_000  # Databento fixed point: 1e-9 units
MONTH_CODES = "FGHJKMNQUVXZ"  # CME month codes January..December

RollRule = Literal["c", "v", "n"]
Adjustment = Literal["panama_backward", "panama_forward", "ratio_backward"]
RollGapSource = Literal["settlement", "last_trades"]
# Where the continuous series changes contract (hdi_core.continuous.rolls.switch_at).
SwitchAt = Literal["trade_date_open", "databento"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _window(value: dt.date) -> dt.date:
    if (value.month, value.day) not in ((1, 1), (7, 1)):
        raise ValueError(f"a window starts on Jan 1 or Jul 1, got {value}")
    return value


class BarsSpec(_Strict):
    dense: bool = False  # true: fill every second between a segment's first and last trade (flat bars)
    max_gap_minutes: int = Field(30, gt=0)  # dense mode: a longer pause (an unexpected halt) is not filled


class SymbolSpec(_Strict):
    name: str
    calendar: CalendarName  # pandas_market_calendars calendar of the product's trading hours
    tick_size: float = Field(gt=0)  # in quoted price units (ZC: cents per bushel)
    multiplier: float = Field(gt=0)  # dollars per 1.0 of quoted price
    months: str  # listed contract months, CME codes in calendar order
    first_window: dt.date | None = None
    dataset: str | None = None
    roll_rule: RollRule | None = None
    adjustment: Adjustment | None = None
    roll_gap_source: RollGapSource | None = None
    switch_at: SwitchAt | None = None

    @field_validator("tick_size")
    @classmethod
    def _exact_fixed_point(cls, value: float) -> float:
        scaled = value * PRICE_SCALE
        if abs(scaled - round(scaled)) > 1e-3:
            raise ValueError(f"{value} is not a whole number of 1e-9 price units")
        return value

    @field_validator("months")
    @classmethod
    def _month_codes(cls, value: str) -> str:
        ordered = sorted(set(value), key=MONTH_CODES.index) if set(value) <= set(MONTH_CODES) else None
        if not value or list(value) != ordered:
            raise ValueError(f"{value!r}: use CME month codes from {MONTH_CODES}, each once, in calendar order")
        return value

    @field_validator("first_window")
    @classmethod
    def _symbol_window(cls, value: dt.date | None) -> dt.date | None:
        return value if value is None else _window(value)

    @property
    def tick_size_fixed(self) -> int:
        """Tick size in 1e-9 fixed point (ZB 1/32 -> 31_250_000)."""
        return round(self.tick_size * PRICE_SCALE)


class SymbolsConfig(_Strict):
    dataset: str
    first_window: dt.date
    roll_rule: RollRule = "v"
    adjustment: Adjustment = "panama_backward"
    roll_gap_source: RollGapSource = "settlement"
    switch_at: SwitchAt = "trade_date_open"
    bars: BarsSpec = BarsSpec()
    symbols: dict[str, SymbolSpec] = Field(min_length=1)

    @field_validator("first_window")
    @classmethod
    def _default_window(cls, value: dt.date) -> dt.date:
        return _window(value)


@lru_cache(maxsize=8)
def _load(path: str) -> SymbolsConfig:
    return load_model(path, SymbolsConfig)


def load_symbols() -> SymbolsConfig:
    """The validated symbols.yaml of the config folder (HDI_CONFIG_DIR honoured), read once per path."""
    return _load(str(config_dir() / SYMBOLS_FILE))
