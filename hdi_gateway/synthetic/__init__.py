"""The deterministic synthetic CME Globex market (GLBX.MDP3), split by job:

products.py (contract specifications and listings), prices.py (the price and volume model), records.py (DBN
record layouts), market.py (the DataSource with its cache). The exchange calendar is hdi_gateway.exchange_calendar.
"""

from hdi_gateway.synthetic.market import (
    CACHE_BYTE_LIMITS,
    CACHE_LIMITS,
    DEFAULT_TICKS_PER_SESSION,
    SCHEMAS_SERVED,
    SESSION_CACHE_BYTES,
    TEST_TICKS_PER_SESSION,
    SyntheticMarket,
)
from hdi_gateway.synthetic.prices import SessionPlan
from hdi_gateway.synthetic.products import DATA_END, DATASET, ORIGIN, PRODUCTS, Contracts, Product, product_contracts
from hdi_gateway.synthetic.records import (
    FINAL_DELAY_NS,
    OPEN_INTEREST_DELAY_NS,
    PRELIMINARY_DELAY_NS,
    SETTLEMENT_FINAL_FLAGS,
    SETTLEMENT_PRELIMINARY_FLAGS,
    STAT_CLEARED_VOLUME,
    STAT_OPEN_INTEREST,
    STAT_SETTLEMENT,
)

__all__ = [
    "CACHE_BYTE_LIMITS", "CACHE_LIMITS", "DATASET", "DATA_END", "DEFAULT_TICKS_PER_SESSION", "FINAL_DELAY_NS",
    "OPEN_INTEREST_DELAY_NS", "ORIGIN", "PRELIMINARY_DELAY_NS", "PRODUCTS", "SCHEMAS_SERVED", "SESSION_CACHE_BYTES",
    "SETTLEMENT_FINAL_FLAGS", "SETTLEMENT_PRELIMINARY_FLAGS", "STAT_CLEARED_VOLUME", "STAT_OPEN_INTEREST",
    "STAT_SETTLEMENT",
    "TEST_TICKS_PER_SESSION", "Contracts", "Product", "SessionPlan", "SyntheticMarket", "product_contracts",
]
