"""configs/orderflow.yaml as a validated model: the parameters of the order-flow measures (hdi_core/orderflow).

Every field has a documented default (configs/README.md); unknown keys are refused, so a typo fails at load time
naming the file and the field. `products.<SYMBOL>` overrides any field, merged key by key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hdi_core.config_files import config_dir, load_model, validation_message, with_overrides
from hdi_core.errors import ConfigError

ORDERFLOW_FILE = "orderflow.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FootprintSpec(_Strict):
    """Diagonal imbalance: buy volume at p against sell volume at p - tick (and sell at p against buy at p + tick)."""

    imbalance_ratio: float = Field(3.0, gt=1)  # flagged when the larger side is at least this many times the other
    imbalance_min_volume: int = Field(10, ge=1)  # ...and the flagged side traded at least this much at its price


class ProfileSpec(_Strict):
    value_area_share: float = Field(0.70, gt=0, le=1)  # share of the session's volume inside the value area
    node_window_ticks: int = Field(3, ge=1)  # a node is the extreme of the levels within +-this many ticks
    hvn_factor: float = Field(1.5, gt=1)  # high-volume node: at least this many times the mean level volume
    lvn_factor: float = Field(0.5, gt=0, lt=1)  # low-volume node: at most this share of the mean level volume


class AbsorptionSpec(_Strict):
    min_volume: int = Field(50, ge=1)  # aggressive volume a zone must absorb to be reported
    min_absorbed_ratio: float = Field(1.0, ge=0)  # ...and more than this multiple of the size shown at its start
    max_idle_ms: int = Field(5_000, ge=1)  # a zone with no trade at its price for this long has held


class IcebergSpec(_Strict):
    refill_window_ms: int = Field(100, ge=0)  # a new order within this long of the last one's exhaustion is a refill
    size_tolerance: float = Field(0.25, ge=0)  # |new size - exhausted size| <= tolerance * exhausted size
    min_refills: int = Field(3, ge=1)  # refills before a level (or an order) is reported as a candidate


class OrderflowParams(_Strict):
    """Every parameter of one product."""

    footprint: FootprintSpec = FootprintSpec()
    profile: ProfileSpec = ProfileSpec()
    absorption: AbsorptionSpec = AbsorptionSpec()
    icebergs: IcebergSpec = IcebergSpec()


class OrderflowConfig(_Strict):
    defaults: OrderflowParams = OrderflowParams()
    products: dict[str, dict[str, Any]] = {}

    def for_product(self, symbol: str) -> OrderflowParams:
        """The defaults with the product's overrides merged in (validated again as a whole)."""
        return with_overrides(self.defaults, self.products.get(symbol, {}))


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> OrderflowConfig:  # mtime in the key: an edited file is read again
    config = load_model(path, OrderflowConfig)
    for symbol in config.products:  # an override's typo fails now, naming its product
        _product_params(path, config, symbol)
    return config


def _product_params(path: str, config: OrderflowConfig, symbol: str) -> OrderflowParams:
    """One product's merged parameters; ConfigError naming the file and `products.<SYMBOL>.<field>`."""
    try:
        return config.for_product(symbol)
    except ValidationError as exc:
        message = validation_message(path, exc)
        raise ConfigError(message.replace(f"{path}: ", f"{path}: products.{symbol}.", 1)) from None


def load_orderflow() -> OrderflowConfig:
    """The validated orderflow.yaml of the config folder (HDI_CONFIG_DIR honoured); defaults when it is absent."""
    path = config_dir() / ORDERFLOW_FILE
    return _load(str(path), path.stat().st_mtime_ns) if path.exists() else OrderflowConfig()


def orderflow_params(symbol: str) -> OrderflowParams:
    return load_orderflow().for_product(symbol)
