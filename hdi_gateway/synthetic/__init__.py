"""The deterministic synthetic CME Globex market (GLBX.MDP3), split by job:

products.py (contract specifications and listings), prices.py (the price and volume model), records.py (DBN
record layouts), market.py (the DataSource with its cache), book.py + book_kernel.py (the order book: MBO around
the trades), depth.py (mbp-1/mbp-10 from MBO), book_market.py (the book schemas of the market, cached),
snapshot.py (MBO snapshots). The exchange calendar is hdi_gateway.exchange_calendar.

Order-book API (one product's session, NumPy structured arrays in the DBN v3 layouts):
    SyntheticMarket.session_mbo(product, trade_date) -> MboMsg records (MBO_DTYPE), ts_recv order
    SyntheticMarket.session_mbp(product, trade_date, depth_n=10) -> MBP10Msg (or MBP1Msg, depth_n=1) records
    SyntheticMarket.records(dataset, "mbo" | "mbp-1" | "mbp-10" | "tbbo", ids, start_ns, end_ns): any window
    SyntheticMarket.session_snapshot(product, trade_date, ts_ns) -> MBO snapshot of the book just before ts_ns
    mbp_from_mbo(mbo, depth_n, ticks) -> mbp records of any MBO stream (e.g. a live capture)
    mbo_snapshot(mbo, upto, ts_recv, instrument_ids=None) -> MBO snapshot after rows [0, upto) of any stream
"""

from hdi_gateway.synthetic.book import MBO_DTYPE
from hdi_gateway.synthetic.book_kernel import F_BAD_TS_RECV, F_LAST, F_SNAPSHOT
from hdi_gateway.synthetic.depth import MBP_DTYPES, mbp_from_mbo
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
from hdi_gateway.synthetic.snapshot import mbo_snapshot

__all__ = [
    "F_BAD_TS_RECV", "F_LAST", "F_SNAPSHOT", "MBO_DTYPE", "MBP_DTYPES", "mbo_snapshot", "mbp_from_mbo",
    "CACHE_BYTE_LIMITS", "CACHE_LIMITS", "DATASET", "DATA_END", "DEFAULT_TICKS_PER_SESSION", "FINAL_DELAY_NS",
    "OPEN_INTEREST_DELAY_NS", "ORIGIN", "PRELIMINARY_DELAY_NS", "PRODUCTS", "SCHEMAS_SERVED", "SESSION_CACHE_BYTES",
    "SETTLEMENT_FINAL_FLAGS", "SETTLEMENT_PRELIMINARY_FLAGS", "STAT_CLEARED_VOLUME", "STAT_OPEN_INTEREST",
    "STAT_SETTLEMENT",
    "TEST_TICKS_PER_SESSION", "Contracts", "Product", "SessionPlan", "SyntheticMarket", "product_contracts",
]
