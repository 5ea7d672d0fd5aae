"""Contract specifications of the synthetic market's futures roots and their listed contracts, as arrays."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

import databento_dbn as dbn
import numpy as np

from hdi_gateway.exchange_calendar import DAY_NS, NS

DATASET = "GLBX.MDP3"
PUBLISHER_ID = 1  # GLBX.MDP3.GLBX
ORIGIN = dt.date(2018, 1, 1)  # the fair-level random walks start here
DATA_END = dt.date(2030, 1, 1)  # exclusive; fixed so dataset_range never depends on the wall clock
LISTED_CONTRACTS = 4  # front + next three
MONTH_CODES = "FGHJKMNQUVXZ"
FIXED = 1_000_000_000  # databento_dbn.FIXED_PRICE_SCALE
UNDEF_PRICE = dbn.UNDEF_PRICE
CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")
ID_STRIDE = 10_000  # instrument_id // ID_STRIDE is the product code


@dataclass(frozen=True)
class Product:
    """Contract specifications and model parameters of one futures root."""

    root: str
    code: int  # seeds and instrument ids
    months: str
    tick: int  # fixed point 1e-9
    multiplier: int
    exchange: str
    origin_level: float
    daily_vol: float
    carry_rate: float  # per year, relative to the fair level
    roll_lead_days: int  # the roll window starts this many calendar days before the front's expiration
    open_interest: int
    mean_trade_size: float
    display_factor: int
    unit_of_measure: str
    underlying_product: int
    market_segment_id: int
    max_price_variation: int
    calendar: str  # pandas_market_calendars name of the product's trading schedule
    expiry_rule: str  # key of EXPIRY_RULES
    annual_drift: float = 0.0  # log growth per year of the level the walk reverts to (keeps levels realistic)


# Calendars: 'CME Globex Equity' is the one with CME's equity schedule (12:00 CT holiday halts, 12:15 CT early
# closes); 'CMEGlobex_Gold' halts 13:30 CT on holidays; 'CMEGlobex_Grains' has corn's two segments per day.
PRODUCTS: dict[str, Product] = {
    "ES": Product("ES", 1, "HMUZ", 250_000_000, 50, "XCME", 2680.0, 0.011, 0.025, 8, 2_400_000, 4.0,
                  10_000_000, "IPNT", 5, 64, 6 * FIXED, "CME Globex Equity", "third_friday", annual_drift=0.10),
    "NQ": Product("NQ", 2, "HMUZ", 250_000_000, 20, "XCME", 6400.0, 0.014, 0.025, 8, 250_000, 2.5,
                  10_000_000, "IPNT", 5, 64, 25 * FIXED, "CME Globex Equity", "third_friday", annual_drift=0.15),
    "GC": Product("GC", 3, "GJMQVZ", 100_000_000, 100, "XCEC", 1305.0, 0.009, 0.040, 10, 450_000, 2.0,
                  FIXED, "OZTY", 2, 80, 10 * FIXED, "CMEGlobex_Gold", "gold", annual_drift=0.09),
    "ZB": Product("ZB", 4, "HMUZ", 31_250_000, 1000, "XCBT", 150.0, 0.006, -0.010, 35, 1_500_000, 3.0,
                  FIXED, "USD", 4, 60, 5 * FIXED, "CBOT_Bond", "bond", annual_drift=-0.02),
    "ZC": Product("ZC", 5, "HKNUZ", 250_000_000, 50, "XCBT", 355.0, 0.012, 0.050, 20, 1_400_000, 3.0,
                  FIXED, "BU", 3, 62, 20 * FIXED, "CMEGlobex_Grains", "grain", annual_drift=0.03),
}
PRODUCT_BY_CODE = {p.code: p for p in PRODUCTS.values()}
TICK_BY_CODE = np.array([0] + [PRODUCT_BY_CODE[c].tick for c in sorted(PRODUCT_BY_CODE)], dtype=np.int64)


@dataclass(frozen=True)
class Contracts:
    """Every contract of one product, ordered by expiration (one row per contract, as arrays)."""

    instrument_id: np.ndarray  # uint32
    raw_symbol: np.ndarray  # object (str)
    year: np.ndarray
    month: np.ndarray
    expiration_ns: np.ndarray  # int64
    activation_ns: np.ndarray  # int64


def _third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def _business_day_before(day: dt.date, count: int) -> dt.date:
    """The `count`-th weekday before `day` (exchange holidays ignored: the listing is a model)."""
    seen = 0
    while seen < count:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            seen += 1
    return day


def _first_of_next_month(year: int, month: int) -> dt.date:
    return dt.date(year + month // 12, month % 12 + 1, 1)


def _expiry_moment(rule: str, year: int, month: int) -> dt.datetime:
    if rule == "third_friday":  # equity index: third Friday 09:30 New York
        return dt.datetime.combine(_third_friday(year, month), dt.time(9, 30), tzinfo=NEW_YORK)
    if rule == "gold":  # third-last business day of the month before the contract month, 12:30 Chicago
        prev_year, prev_month = (year, month - 1) if month > 1 else (year - 1, 12)
        return dt.datetime.combine(_business_day_before(_first_of_next_month(prev_year, prev_month), 3),
                                   dt.time(12, 30), tzinfo=CHICAGO)
    if rule == "bond":  # seventh business day before the contract month's last business day, 12:01 Chicago
        last_business = _business_day_before(_first_of_next_month(year, month), 1)
        return dt.datetime.combine(_business_day_before(last_business, 7), dt.time(12, 1), tzinfo=CHICAGO)
    if rule == "grain":  # business day before the 15th of the contract month, 12:00 Chicago
        return dt.datetime.combine(_business_day_before(dt.date(year, month, 15), 1), dt.time(12, 0),
                                   tzinfo=CHICAGO)
    raise ValueError(f"unknown expiry rule {rule!r}")


@cache
def product_contracts(root: str) -> Contracts:
    """All contracts of `root` expiring from two years before ORIGIN to two years after DATA_END."""
    product = PRODUCTS[root]
    rows = []
    for year in range(ORIGIN.year - 2, DATA_END.year + 3):
        for code in product.months:
            month = MONTH_CODES.index(code) + 1
            iid = product.code * ID_STRIDE + (year - 2000) * 12 + month
            expiry = int(_expiry_moment(product.expiry_rule, year, month).timestamp()) * NS
            rows.append((iid, f"{root}{code}{year % 10}", year, month, expiry))
    expiration = np.array([r[4] for r in rows], dtype=np.int64)
    # a contract is listed when the one LISTED_CONTRACTS places earlier expires
    activation = np.empty_like(expiration)
    activation[LISTED_CONTRACTS:] = expiration[:-LISTED_CONTRACTS]
    activation[:LISTED_CONTRACTS] = expiration[:LISTED_CONTRACTS] - 400 * DAY_NS
    return Contracts(
        instrument_id=np.array([r[0] for r in rows], dtype=np.uint32),
        raw_symbol=np.array([r[1] for r in rows], dtype=object),
        year=np.array([r[2] for r in rows], dtype=np.int64),
        month=np.array([r[3] for r in rows], dtype=np.int64),
        expiration_ns=expiration,
        activation_ns=activation,
    )
