"""configs/checks.yaml as a validated model: the thresholds of the continuous chain's checks, per product.

`defaults` hold every field; `products.<SYMBOL>` overrides any of them (merged key by key). Unknown keys are
refused, so a typo fails at load time naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hdi_core.config_files import config_dir, load_model, validation_message, with_overrides
from hdi_core.errors import ConfigError

CHECKS_FILE = "checks.yaml"
Severity = Literal["error", "warn"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BadTickSpec(_Strict):
    min_jump_ticks: float = Field(40, gt=0)
    jump_sigmas: float = Field(12, gt=0)
    revert_fraction: float = Field(0.25, ge=0, lt=1)


class IndicatorSpec(_Strict):
    period: int = Field(14, ge=1)
    max_return_sigmas: float = Field(30, gt=0)
    min_sigma_ticks: float = Field(1, gt=0)


class ContinuitySpec(_Strict):
    liquid: bool = True
    regular_hours: tuple[str, str] = ("08:30", "15:00")
    max_silence_minutes: float = Field(30, gt=0)
    max_filled_fraction: float = Field(0.98, ge=0, le=1)

    @field_validator("regular_hours")
    @classmethod
    def _hours(cls, value: tuple[str, str]) -> tuple[str, str]:
        start, end = (dt.time.fromisoformat(v) for v in value)
        if start >= end:
            raise ValueError(f"regular hours must start before they end, got {value}")
        return value

    @property
    def regular_minutes(self) -> tuple[int, int]:
        """Regular hours as minutes after local midnight."""
        start, end = (dt.time.fromisoformat(v) for v in self.regular_hours)
        return start.hour * 60 + start.minute, end.hour * 60 + end.minute


class RollSpec(_Strict):
    ratio_tolerance: float = Field(1e-6, ge=0)


class ReconciliationSpec(_Strict):
    volume: bool = True
    ohlcv_1m_sessions: int = Field(2, ge=0)
    ohlcv_1m_tolerance_ticks: float = Field(0, ge=0)


class SeveritySpec(_Strict):
    session_alignment: Severity = "error"
    ohlc_integrity: Severity = "error"
    indicator_sanity: Severity = "error"
    timestamp_continuity: Severity = "error"
    no_nan_or_inf: Severity = "error"
    roll_continuity: Severity = "error"
    within_contract_changes: Severity = "error"
    volume_reconciliation: Severity = "error"
    ohlcv_1m_reconciliation: Severity = "warn"


class CheckThresholds(_Strict):
    """Every threshold of one product."""

    bad_tick: BadTickSpec = BadTickSpec()
    indicators: IndicatorSpec = IndicatorSpec()
    continuity: ContinuitySpec = ContinuitySpec()
    rolls: RollSpec = RollSpec()
    severity: SeveritySpec = SeveritySpec()
    reconciliation: ReconciliationSpec = ReconciliationSpec()


class ChecksConfig(_Strict):
    defaults: CheckThresholds = CheckThresholds()
    products: dict[str, dict[str, Any]] = {}

    def for_product(self, symbol: str) -> CheckThresholds:
        """The defaults with the product's overrides merged in (validated again as a whole)."""
        return with_overrides(self.defaults, self.products.get(symbol, {}))


@lru_cache(maxsize=8)
def _load(path: str) -> ChecksConfig:
    config = load_model(path, ChecksConfig)
    for symbol in config.products:  # an override's typo fails now, naming its product
        try:
            config.for_product(symbol)
        except ValidationError as exc:
            message = validation_message(path, exc)
            raise ConfigError(message.replace(f"{path}: ", f"{path}: products.{symbol}.", 1)) from None
    return config


def load_checks() -> ChecksConfig:
    """The validated checks.yaml of the config folder (HDI_CONFIG_DIR honoured); defaults when it is absent."""
    path = config_dir() / CHECKS_FILE
    return _load(str(path)) if path.exists() else ChecksConfig()


def thresholds_for(symbol: str) -> CheckThresholds:
    return load_checks().for_product(symbol)
