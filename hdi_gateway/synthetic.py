"""A deterministic synthetic CME Globex market (dataset GLBX.MDP3) for ES, NQ and GC futures.

Everything is a pure function of (seed, product, trade date): a session is generated on demand, vectorized,
and cached in a small LRU, so any query returns byte-identical records whatever was asked before.

Price model: a per-product daily "fair" level is a seeded log random walk from ORIGIN (an overnight move
at each open plus an intraday move); inside a session the fair level follows a Brownian bridge from that
session's open level to its close level on a one-second grid. A contract trades at the fair level times
(1 + carry_rate * years_to_expiry), rounded to its tick, so every deferred month trades above the front and
two contracts printed at the same moment differ by exactly the carry spread.
Volume model: the front month holds the volume until the roll window, then the share moves linearly to the
next month over five sessions (the leader switches on the third); open interest follows two sessions later.
A quarter of every non-leading contract's trades are calendar-spread legs printed at the same ts_event as a
trade in the leading contract.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

import databento_dbn as dbn
import numpy as np
import pandas as pd

from hdi_core.errors import HdiError
from hdi_core.sessions import CHICAGO, DAY_NS, NS, globex_sessions, session_index
from hdi_gateway.source import Instrument

DATASET = "GLBX.MDP3"
PUBLISHER_ID = 1  # GLBX.MDP3.GLBX
ORIGIN = dt.date(2018, 1, 1)  # the fair-level random walks start here
BUSINESS_DAYS_PER_YEAR = 261
MEAN_REVERSION = 0.99  # daily AR(1) coefficient of the deviation from trend: about +-8% for ES
DATA_END = dt.date(2030, 1, 1)  # exclusive; fixed so dataset_range never depends on the wall clock
TEST_TICKS_PER_SESSION = 2_000
DEFAULT_TICKS_PER_SESSION = {"ES": 300_000, "NQ": 200_000, "GC": 60_000}
# Generated trade sessions are kept by bytes, not count: ES at default volume is ~12 MB a session, so the
# default holds a ~2-week ALL_SYMBOLS request at default volume (~270 MB) or years at test volume.
SESSION_CACHE_BYTES = int(os.environ.get("HDI_REPLAY_SESSION_CACHE_MB", "384")) << 20
CACHE_LIMITS = {"trades": 1 << 30, "path": 64, "plan": 8192}  # entries; "trades" is bounded by bytes
CACHE_BYTE_LIMITS = {"trades": SESSION_CACHE_BYTES}
LISTED_CONTRACTS = 4  # front + next three
ROLL_SESSIONS = 5
SPREAD_LEG_FRACTION = 0.25  # share of a non-leading contract's trades printed as spread legs
MONTH_CODES = "FGHJKMNQUVXZ"
YEAR_NS = 365 * DAY_NS
FIXED = 1_000_000_000  # databento_dbn.FIXED_PRICE_SCALE
UNDEF_PRICE = dbn.UNDEF_PRICE
UNDEF_STAT_QUANTITY = dbn.UNDEF_STAT_QUANTITY
UNDEF_TIMESTAMP = dbn.UNDEF_TIMESTAMP
INT32_MAX = 2**31 - 1
NEW_YORK = ZoneInfo("America/New_York")

TRADE_DTYPE = np.dtype(dbn.v3.TradeMsg._dtypes)
MBP1_DTYPE = np.dtype(dbn.v3.MBP1Msg._dtypes)
OHLCV_DTYPE = np.dtype(dbn.v3.OHLCVMsg._dtypes)
STAT_DTYPE = np.dtype(dbn.v3.StatMsg._dtypes)
DEFINITION_DTYPE = np.dtype(dbn.v3.InstrumentDefMsg._dtypes)

RTYPE_MBP0, RTYPE_MBP1, RTYPE_DEFINITION, RTYPE_STATISTICS = 0x00, 0x01, 0x13, 0x18
OHLCV_RTYPE = {"ohlcv-1s": 0x20, "ohlcv-1m": 0x21, "ohlcv-1h": 0x22, "ohlcv-1d": 0x23}
OHLCV_INTERVAL_NS = {"ohlcv-1s": NS, "ohlcv-1m": 60 * NS, "ohlcv-1h": 3600 * NS, "ohlcv-1d": DAY_NS}
STAT_SETTLEMENT, STAT_OPEN_INTEREST = 3, 9
SETTLEMENT_FLAGS = 3  # CME SettlPriceType bits: final (1) | actual (2)
SETTLEMENT_DELAY_NS = 15 * 60 * NS  # settlement published 15 min after the close, inside the halt
OPEN_INTEREST_DELAY_NS = 40 * 60 * NS
SCHEMAS_SERVED = (
    "trades", "tbbo", "ohlcv-1s", "ohlcv-1m", "ohlcv-1h", "ohlcv-1d", "statistics", "definition",
)


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
    annual_drift: float = 0.0  # log growth per year of the level the walk reverts to (keeps levels realistic)


PRODUCTS: dict[str, Product] = {
    "ES": Product("ES", 1, "HMUZ", 250_000_000, 50, "XCME", 2680.0, 0.011, 0.025, 8, 2_400_000, 4.0,
                  10_000_000, "IPNT", 5, 64, 6 * FIXED, annual_drift=0.10),
    "NQ": Product("NQ", 2, "HMUZ", 250_000_000, 20, "XCME", 6400.0, 0.014, 0.025, 8, 250_000, 2.5,
                  10_000_000, "IPNT", 5, 64, 25 * FIXED, annual_drift=0.15),
    "GC": Product("GC", 3, "GJMQVZ", 100_000_000, 100, "XCEC", 1305.0, 0.009, 0.040, 10, 450_000, 2.0,
                  FIXED, "OZTY", 2, 80, 10 * FIXED, annual_drift=0.09),
}
_PRODUCT_BY_CODE = {p.code: p for p in PRODUCTS.values()}
_ID_STRIDE = 10_000  # instrument_id // _ID_STRIDE is the product code


@dataclass(frozen=True)
class Contracts:
    """Every contract of one product, ordered by expiration (one row per contract, as arrays)."""

    instrument_id: np.ndarray  # uint32
    raw_symbol: np.ndarray  # object (str)
    year: np.ndarray
    month: np.ndarray
    expiration_ns: np.ndarray  # int64
    activation_ns: np.ndarray  # int64


@dataclass(frozen=True)
class SessionPlan:
    """What one product trades in one session: per listed contract, trade count, volume and open interest."""

    trade_date: dt.date
    open_ns: int
    close_ns: int
    contract_index: np.ndarray  # indices into Contracts, nearest expiration first
    n_trades: np.ndarray  # int64
    volume: np.ndarray  # int64, sum of the trade sizes
    open_interest: np.ndarray  # int64


def _third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def _third_last_business_day(year: int, month: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    day, seen = nxt, 0
    while seen < 3:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            seen += 1
    return day


def _expiration_ns(product: Product, year: int, month: int) -> int:
    if product.months == "HMUZ":  # third Friday 09:30 New York
        moment = dt.datetime.combine(_third_friday(year, month), dt.time(9, 30), tzinfo=NEW_YORK)
    else:  # GC: third-last business day of the month before the contract month, 12:30 Chicago
        prev_year, prev_month = (year, month - 1) if month > 1 else (year - 1, 12)
        moment = dt.datetime.combine(_third_last_business_day(prev_year, prev_month), dt.time(12, 30),
                                     tzinfo=CHICAGO)
    return int(moment.timestamp()) * NS


@cache
def product_contracts(root: str) -> Contracts:
    """All contracts of `root` expiring from two years before ORIGIN to two years after DATA_END."""
    product = PRODUCTS[root]
    rows = []
    for year in range(ORIGIN.year - 2, DATA_END.year + 3):
        for code in product.months:
            month = MONTH_CODES.index(code) + 1
            iid = product.code * _ID_STRIDE + (year - 2000) * 12 + month
            rows.append((iid, f"{root}{code}{year % 10}", year, month, _expiration_ns(product, year, month)))
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


def _date_ns(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp()) * NS


def _minute_weights(n_minutes: int) -> np.ndarray:
    """Relative trading intensity of each minute of a session opening 17:00 Chicago (U-shaped day session)."""
    clock = (17 * 60 + np.arange(n_minutes)) % 1440  # minutes after midnight, Chicago
    w = np.ones(n_minutes)
    w[(clock >= 17 * 60) & (clock < 18 * 60)] = 1.5
    w[(clock >= 2 * 60) & (clock < 8 * 60 + 30)] = 2.5
    w[(clock >= 8 * 60 + 30) & (clock < 15 * 60 + 15)] = 8.0
    w[(clock >= 8 * 60 + 30) & (clock < 9 * 60)] = 14.0
    w[(clock >= 15 * 60) & (clock < 15 * 60 + 15)] = 14.0
    w[(clock >= 15 * 60 + 15) & (clock < 16 * 60)] = 1.5
    return w


def _sorted_times(
    rng: np.random.Generator, n: int, edges: np.ndarray, weights: np.ndarray, lo: int, hi: int
) -> np.ndarray:
    """n sorted timestamps in [lo, hi) drawn from the piecewise-constant intensity `weights` over `edges`.

    Sorted uniforms (normalized exponential spacings) pushed through the monotone inverse CDF need no sort.
    """
    seg_lo = np.maximum(edges[:-1], lo)
    overlap = np.clip(np.minimum(edges[1:], hi) - seg_lo, 0, None)
    mass = weights * overlap
    cdf = np.cumsum(mass)
    spacings = np.cumsum(rng.standard_exponential(n + 1))
    target = spacings[:-1] * (cdf[-1] / spacings[-1])
    b = np.minimum(np.searchsorted(cdf, target, side="right"), len(cdf) - 1)
    offset = ((target - (cdf[b] - mass[b])) / weights[b]).astype(np.int64)
    return seg_lo[b] + np.clip(offset, 0, overlap[b] - 1)


def _sizes_summing_to(rng: np.random.Generator, n: int, volume: int, mean_size: float) -> np.ndarray:
    """n heavy-tailed trade sizes >= 1 whose sum is exactly `volume` (largest-remainder allocation)."""
    extra_total = volume - n
    if n == 0 or extra_total <= 0:
        return np.ones(n, dtype=np.uint32)
    raw = rng.geometric(1.0 / mean_size, n).astype(np.float64) - 1.0
    raw[rng.random(n) < 0.02] *= 8.0  # occasional block-sized prints
    total = raw.sum()
    if total <= 0:
        raw[:] = 1.0
        total = float(n)
    share = raw * (extra_total / total)
    base = np.floor(share)
    remainder = min(int(extra_total - base.sum()), n)
    if remainder > 0:
        base[np.argpartition(base - share, remainder - 1)[:remainder]] += 1
    return (1 + base).astype(np.uint32)


FILL_BLOCK_BYTES = 1 << 20  # records filled per step: the block stays in cache while every field is written


def _blocks(cols: dict[str, np.ndarray], n: int, itemsize: int) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """(lo, hi, columns[lo:hi]) in cache-sized steps, so a record block is written field by field in cache."""
    step = max(1024, FILL_BLOCK_BYTES // itemsize)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        yield lo, hi, {k: v[lo:hi] for k, v in cols.items()}


def _nbytes(value: object) -> int:
    """Bytes held by a cached column dict (or array)."""
    if isinstance(value, dict):
        return sum(int(v.nbytes) for v in value.values())
    return int(getattr(value, "nbytes", 0))


class SyntheticMarket:
    """Deterministic synthetic GLBX.MDP3 data source (ES, NQ, GC) implementing the gateway's DataSource."""

    def __init__(self, seed: int = 7, ticks_per_session: int | dict[str, int] | None = None) -> None:
        self.seed = int(seed)
        if ticks_per_session is None:
            self.ticks_per_session = dict(DEFAULT_TICKS_PER_SESSION)
        elif isinstance(ticks_per_session, int):
            self.ticks_per_session = {root: int(ticks_per_session) for root in PRODUCTS}
        else:
            unknown = set(ticks_per_session) - set(PRODUCTS)
            if unknown:
                raise HdiError(
                    f"ticks_per_session: unknown product(s) {sorted(unknown)}; known: {list(PRODUCTS)}")
            self.ticks_per_session = {**DEFAULT_TICKS_PER_SESSION, **ticks_per_session}
        self._start_ns = _date_ns(ORIGIN)
        self._end_ns = _date_ns(DATA_END)
        self._levels: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._caches: dict[str, OrderedDict[tuple, object]] = {kind: OrderedDict() for kind in CACHE_LIMITS}
        self._cache_bytes: dict[str, int] = {kind: 0 for kind in CACHE_LIMITS}
        self._lock = threading.Lock()

    # ----- DataSource -----------------------------------------------------------------------------------

    def datasets(self) -> list[str]:
        return [DATASET]

    def schemas(self, dataset: str) -> list[str]:
        self._check_dataset(dataset)
        return list(SCHEMAS_SERVED)

    def dataset_range(self, dataset: str) -> tuple[int, int, dict[str, tuple[int, int]]]:
        self._check_dataset(dataset)
        return self._start_ns, self._end_ns, {s: (self._start_ns, self._end_ns) for s in SCHEMAS_SERVED}

    def instruments(self, dataset: str, start_ns: int, end_ns: int) -> list[Instrument]:
        self._check_dataset(dataset)
        out = []
        for root, product in PRODUCTS.items():
            c = product_contracts(root)
            for i in np.flatnonzero((c.activation_ns < end_ns) & (c.expiration_ns > start_ns)):
                out.append(Instrument(int(c.instrument_id[i]), str(c.raw_symbol[i]), f"{root}.FUT",
                                      int(c.expiration_ns[i]), int(c.activation_ns[i]), product.tick,
                                      product.multiplier))
        return out

    def daily_stats(self, dataset: str, start_date: dt.date, end_date: dt.date) -> pd.DataFrame:
        """Per trade date in [start_date, end_date) and listed contract: volume and open interest.

        Computed from the session plans alone (no ticks); trades generated for that session sum to `volume`.
        """
        self._check_dataset(dataset)
        dates, ids, volumes, ois = [], [], [], []
        sessions = self._sessions(_date_ns(start_date) - DAY_NS, _date_ns(end_date) + DAY_NS)
        for i in range(len(sessions)):
            day = sessions.trade_date[i].astype(object)
            if not start_date <= day < end_date:
                continue
            for root in PRODUCTS:
                plan = self.session_plan(root, day)
                contracts = product_contracts(root)
                dates.extend([day] * len(plan.contract_index))
                ids.append(contracts.instrument_id[plan.contract_index])
                volumes.append(plan.volume)
                ois.append(plan.open_interest)
        if not dates:
            return pd.DataFrame({"date": pd.Series([], dtype=object),
                                 "instrument_id": pd.Series([], dtype="uint32"),
                                 "volume": pd.Series([], dtype="int64"),
                                 "open_interest": pd.Series([], dtype="int64")})
        frame = pd.DataFrame({"date": dates, "instrument_id": np.concatenate(ids),
                              "volume": np.concatenate(volumes), "open_interest": np.concatenate(ois)})
        return frame.sort_values(["date", "instrument_id"], kind="stable").reset_index(drop=True)

    def records(
        self, dataset: str, schema: str, instrument_ids: np.ndarray | None, start_ns: int, end_ns: int
    ) -> np.ndarray:
        self._check_dataset(dataset)
        ids = None if instrument_ids is None else np.asarray(instrument_ids, dtype=np.uint32)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if schema == "trades":
            return self._trade_records(self._trade_parts(start_ns, end_ns, ids))
        if schema == "tbbo":
            return self._tbbo_records(self._trade_parts(start_ns, end_ns, ids))
        if schema in OHLCV_RTYPE:
            return self._ohlcv_records(schema, ids, start_ns, end_ns)
        if schema == "statistics":
            return self._statistics_records(ids, start_ns, end_ns)
        if schema == "definition":
            return self._definition_records(ids, start_ns, end_ns)
        raise HdiError(f"schema {schema!r} is not served by the synthetic {DATASET} market; "
                       f"served: {', '.join(SCHEMAS_SERVED)}")

    # ----- the true prices, for tests ---------------------------------------------------------------------

    def fair_price(self, product: str, ts_ns: np.ndarray | int) -> np.ndarray:
        """The product's fair level (float points) at each timestamp; between sessions, the last close."""
        root = self._product(product).root
        ts = np.atleast_1d(np.asarray(ts_ns, dtype=np.int64))
        out = np.full(ts.shape, np.nan)
        if ts.size == 0:
            return out
        sessions = self._sessions(int(ts.min()) - 5 * DAY_NS, int(ts.max()) + DAY_NS)
        idx = session_index(ts, sessions)
        for i in np.unique(idx[idx >= 0]):
            sel = idx == i
            path = self._fair_path(root, sessions.trade_date[i].astype(object))
            out[sel] = path[(ts[sel] - sessions.open_ns[i]) // NS]
        outside = idx < 0
        if outside.any():
            last = np.searchsorted(sessions.close_ns, ts[outside], side="right") - 1
            if (last < 0).any():
                raise HdiError(f"fair_price: timestamp before the synthetic data starts ({ORIGIN})")
            _, closes = self._daily_levels(root)
            out[outside] = closes[self._day_index(sessions.trade_date[last])]
        return out

    def contract_price(self, raw_symbol: str, ts_ns: np.ndarray | int) -> np.ndarray:
        """The contract's true price (int64, 1e-9) at each timestamp: fair level plus carry, on its tick."""
        ts = np.atleast_1d(np.asarray(ts_ns, dtype=np.int64))
        root, index = self._contract_of(raw_symbol, int(np.median(ts)) if ts.size else self._start_ns)
        return self._contract_prices(root, index, ts, self.fair_price(root, ts))

    def session_plan(self, product: str, trade_date: dt.date) -> SessionPlan:
        """Listed contracts and their trade count, volume and open interest for one session (cached)."""
        root = self._product(product).root
        key = ("plan", root, trade_date)
        plan = self._cached(key)
        if plan is None:
            plan = self._make_plan(root, trade_date)
            self._store(key, plan)
        return plan

    # ----- model --------------------------------------------------------------------------------------------

    def _check_dataset(self, dataset: str) -> None:
        if dataset != DATASET:
            raise HdiError(f"dataset {dataset!r} is not served by the synthetic market; it serves {DATASET}")

    @staticmethod
    def _product(product: str) -> Product:
        try:
            return PRODUCTS[product]
        except KeyError:
            raise HdiError(
                f"product {product!r} is not in the synthetic market; known: {list(PRODUCTS)}") from None

    def _contract_of(self, raw_symbol: str, near_ns: int) -> tuple[str, int]:
        root = raw_symbol[:-2]
        self._product(root)
        c = product_contracts(root)
        candidates = np.flatnonzero(c.raw_symbol == raw_symbol)
        if candidates.size == 0:
            raise HdiError(f"raw symbol {raw_symbol!r} is not a synthetic {root} contract")
        # one-digit years repeat every decade: take the contract whose listing is nearest to the timestamp
        distance = np.maximum(c.activation_ns[candidates] - near_ns, 0) + np.maximum(
            near_ns - c.expiration_ns[candidates], 0)
        return root, int(candidates[np.argmin(distance)])

    def _sessions(self, start_ns: int, end_ns: int):
        """Globex sessions overlapping the range that lie wholly inside [ORIGIN, DATA_END)."""
        s = globex_sessions(max(start_ns, self._start_ns), min(end_ns, self._end_ns))
        keep = (s.open_ns >= self._start_ns) & (s.close_ns <= self._end_ns)
        return type(s)(s.open_ns[keep], s.close_ns[keep], s.trade_date[keep])

    @staticmethod
    def _day_index(days) -> np.ndarray:
        return np.busday_count(np.datetime64(ORIGIN, "D"), np.asarray(days, dtype="datetime64[D]"))

    def _daily_levels(self, root: str) -> tuple[np.ndarray, np.ndarray]:
        """(open level, close level) of every trade date from ORIGIN, indexed by business-day count."""
        levels = self._levels.get(root)
        if levels is None:
            product = PRODUCTS[root]
            n_days = int(np.busday_count(np.datetime64(ORIGIN, "D"), np.datetime64(DATA_END, "D"))) + 1
            z = np.random.default_rng([self.seed, product.code, 0]).standard_normal((n_days, 2))
            overnight = z[:, 0] * product.daily_vol * np.sqrt(0.35)
            intraday = z[:, 1] * product.daily_vol * np.sqrt(0.65)
            # A mean-reverting deviation around a trend that follows the product's history: a plain random walk
            # from 2018 would wander to levels no user of these contracts would recognise.
            trend = np.log(product.origin_level) + product.annual_drift / BUSINESS_DAYS_PER_YEAR * np.arange(n_days)
            deviation = np.empty(n_days)
            level = 0.0
            for day, shock in enumerate(overnight + intraday):  # once per product: ~3,000 days
                level = MEAN_REVERSION * level + shock
                deviation[day] = level
            log_close = trend + deviation
            log_open = np.concatenate([[trend[0]], log_close[:-1]]) + overnight
            levels = (np.exp(log_open), np.exp(log_close))
            self._levels[root] = levels
        return levels

    def _fair_path(self, root: str, trade_date: dt.date) -> np.ndarray:
        """Fair level on a one-second grid over the session: a Brownian bridge from its open to its close."""
        key = ("path", root, trade_date)
        path = self._cached(key)
        if path is not None:
            return path
        product = PRODUCTS[root]
        sessions = self._sessions(_date_ns(trade_date), _date_ns(trade_date) + DAY_NS)
        i = int(np.flatnonzero(sessions.trade_date == np.datetime64(trade_date, "D"))[0])
        n_seconds = int((sessions.close_ns[i] - sessions.open_ns[i]) // NS)
        opens, closes = self._daily_levels(root)
        day = int(self._day_index([trade_date])[0])
        log_open, log_close = np.log(opens[day]), np.log(closes[day])
        rng = np.random.default_rng([self.seed, product.code, trade_date.toordinal(), 2])
        walk = np.empty(n_seconds + 1)
        walk[0] = 0.0
        step = 0.6 * product.daily_vol / np.sqrt(n_seconds)
        np.cumsum(rng.standard_normal(n_seconds) * step, out=walk[1:])
        t = np.arange(n_seconds + 1) / n_seconds
        path = np.exp(log_open + t * (log_close - log_open) + walk - t * walk[-1])
        self._store(key, path)
        return path

    def _contract_prices(self, root: str, index: int, ts: np.ndarray, fair: np.ndarray) -> np.ndarray:
        product = PRODUCTS[root]
        contracts = product_contracts(root)
        years = np.maximum(contracts.expiration_ns[index] - ts, 0) / YEAR_NS
        points = fair * (1.0 + product.carry_rate * years)
        return np.rint(points / (product.tick / FIXED)).astype(np.int64) * product.tick

    def _make_plan(self, root: str, trade_date: dt.date) -> SessionPlan:
        product = PRODUCTS[root]
        contracts = product_contracts(root)
        sessions = self._sessions(_date_ns(trade_date), _date_ns(trade_date) + DAY_NS)
        hit = np.flatnonzero(sessions.trade_date == np.datetime64(trade_date, "D"))
        if hit.size == 0:
            raise HdiError(
                f"{trade_date} is not a synthetic trade date (weekdays from {ORIGIN} to {DATA_END})")
        open_ns, close_ns = int(sessions.open_ns[hit[0]]), int(sessions.close_ns[hit[0]])
        listed = np.flatnonzero((contracts.activation_ns < close_ns) & (contracts.expiration_ns > open_ns))
        front_expiry = dt.datetime.fromtimestamp(contracts.expiration_ns[listed[0]] / NS, tz=dt.UTC).date()
        roll_start = front_expiry - dt.timedelta(days=product.roll_lead_days)
        k = int(np.busday_count(roll_start, trade_date)) if trade_date >= roll_start else -1
        volume_to_next = 0.0 if k < 0 else min(1.0, (k + 1) / (ROLL_SESSIONS + 0.5))
        oi_to_next = 0.0 if k < 2 else min(1.0, (k - 1) / (ROLL_SESSIONS + 0.5))
        # deferred months get a small share that shrinks with distance; the next month keeps a little more
        vol_share = 0.01 / np.maximum(np.arange(len(listed)) - 1.0, 1.0)
        vol_share[0] = max(1.0 - volume_to_next, 0.01)
        vol_share[1] = max(volume_to_next, 0.03)
        vol_share /= vol_share.sum()
        oi_share = np.full(len(listed), 0.02) / np.arange(1, len(listed) + 1)
        oi_share[0] = max(1.0 - oi_to_next, 0.02)
        oi_share[1] = max(oi_to_next, 0.02)

        rng = np.random.default_rng([self.seed, product.code, trade_date.toordinal(), 1])
        draws = rng.random((3, 8))  # fixed draw count keeps the stream independent of the listing
        activity = np.exp(0.15 * (draws[0, 0] - 0.5) * 2)
        n_trades = np.rint(self.ticks_per_session[root] * activity * vol_share)
        n_trades = np.maximum(n_trades, 1).astype(np.int64)
        size_noise = 1.0 + 0.06 * (draws[1, : len(listed)] - 0.5)
        volume = n_trades + np.rint(n_trades * (product.mean_trade_size - 1.0) * size_noise).astype(np.int64)
        oi_noise = 1.0 + 0.04 * (draws[2, : len(listed)] - 0.5)
        open_interest = np.rint(product.open_interest * oi_share * oi_noise).astype(np.int64)
        return SessionPlan(trade_date, open_ns, close_ns, listed, n_trades, volume, open_interest)

    def _session_trades(self, root: str, trade_date: dt.date) -> dict[str, np.ndarray]:
        """All trades of one product in one session, sorted by ts_event, as columns (cached)."""
        key = ("trades", root, trade_date)
        cols = self._cached(key)
        if cols is not None:
            return cols
        product = PRODUCTS[root]
        contracts = product_contracts(root)
        plan = self.session_plan(root, trade_date)
        path = self._fair_path(root, trade_date)
        rng = np.random.default_rng([self.seed, product.code, trade_date.toordinal(), 3])
        open_ns, close_ns = plan.open_ns, plan.close_ns
        n_minutes = -(-(close_ns - open_ns) // (60 * NS))
        edges = open_ns + np.arange(n_minutes + 1, dtype=np.int64) * 60 * NS
        edges[-1] = close_ns
        weights = _minute_weights(n_minutes)

        times: list[np.ndarray] = []
        windows = []
        for j, ci in enumerate(plan.contract_index):
            lo = max(open_ns, int(contracts.activation_ns[ci]))
            hi = min(close_ns, int(contracts.expiration_ns[ci]))
            windows.append((lo, hi))
            times.append(_sorted_times(rng, int(plan.n_trades[j]), edges, weights, lo, hi))
        lead = int(np.argmax(plan.n_trades))
        for j in range(len(times)):
            if j == lead:
                continue
            lo, hi = windows[j]
            pool = times[lead][(times[lead] >= lo) & (times[lead] < hi)]
            if pool.size == 0:
                continue
            # calendar-spread legs: snap some trades onto the next lead trade (monotone: stays sorted)
            legs = np.flatnonzero(rng.random(len(times[j])) < SPREAD_LEG_FRACTION)
            at = np.searchsorted(pool, times[j][legs], side="left")
            inside = at < pool.size
            times[j][legs[inside]] = pool[at[inside]]
            np.maximum.accumulate(times[j], out=times[j])
        prices, sizes, ids = [], [], []
        for j, ci in enumerate(plan.contract_index):
            ts = times[j]
            prices.append(self._contract_prices(root, int(ci), ts, path[(ts - open_ns) // NS]))
            sizes.append(_sizes_summing_to(rng, len(ts), int(plan.volume[j]), product.mean_trade_size))
            ids.append(np.full(len(ts), contracts.instrument_id[ci], dtype=np.uint32))
        ts_event = np.concatenate(times)
        order = np.argsort(ts_event, kind="stable")
        ts_event = ts_event[order]
        n = len(ts_event)
        latency = rng.integers(150_000, 400_000, n)
        cols = {
            "ts_event": ts_event,
            # packets arrive in order, so ts_recv never decreases
            "ts_recv": np.maximum.accumulate(ts_event + latency),
            "price": np.concatenate(prices)[order],
            "size": np.concatenate(sizes)[order],
            "instrument_id": np.concatenate(ids)[order],
            "side": np.where(rng.random(n) < 0.5, np.uint8(ord("B")), np.uint8(ord("A"))),
            "ts_in_delta": rng.integers(10_000, 40_000, n).astype(np.int32),
            "sequence": (1_000 + np.cumsum(rng.integers(1, 12, n))).astype(np.uint32),
        }
        self._store(key, cols)
        return cols

    # ----- cache ------------------------------------------------------------------------------------------

    def _cached(self, key: tuple):
        with self._lock:
            cache = self._caches[key[0]]
            value = cache.get(key)
            if value is not None:
                cache.move_to_end(key)
            return value

    def _store(self, key: tuple, value) -> None:
        kind = key[0]
        byte_limit = CACHE_BYTE_LIMITS.get(kind)
        size = _nbytes(value) if byte_limit is not None else 0
        with self._lock:
            cache = self._caches[kind]
            if key in cache:
                self._cache_bytes[kind] -= _nbytes(cache[key]) if byte_limit is not None else 0
            cache[key] = value
            cache.move_to_end(key)
            self._cache_bytes[kind] += size
            while len(cache) > 1 and (
                len(cache) > CACHE_LIMITS[kind] or (byte_limit is not None and self._cache_bytes[kind] > byte_limit)
            ):
                _, dropped = cache.popitem(last=False)
                self._cache_bytes[kind] -= _nbytes(dropped) if byte_limit is not None else 0

    # ----- schemas ------------------------------------------------------------------------------------------

    def _roots_for(self, ids: np.ndarray | None) -> list[str]:
        if ids is None:
            return list(PRODUCTS)
        codes = set((ids // _ID_STRIDE).tolist())
        return [root for root, p in PRODUCTS.items() if p.code in codes]

    def _trade_parts(self, start_ns: int, end_ns: int, ids: np.ndarray | None) -> list[dict[str, np.ndarray]]:
        """Trades with ts_event in [start_ns, end_ns) as one column dict per session, in time order."""
        sessions = self._sessions(start_ns, end_ns)
        roots = self._roots_for(ids)
        parts: list[dict[str, np.ndarray]] = []
        for i in range(len(sessions)):
            day = sessions.trade_date[i].astype(object)
            session_parts = []
            for root in roots:
                cols = self._session_trades(root, day)
                a, b = np.searchsorted(cols["ts_event"], [start_ns, end_ns], side="left")
                part = {k: v[a:b] for k, v in cols.items()}
                if ids is not None and not np.isin(product_contracts(root).instrument_id[
                        self.session_plan(root, day).contract_index], ids).all():
                    keep = np.isin(part["instrument_id"], ids)
                    part = {k: v[keep] for k, v in part.items()}
                session_parts.append(part)
            if len(session_parts) == 1:
                parts.append(session_parts[0])
            elif session_parts:
                merged = {k: np.concatenate([p[k] for p in session_parts]) for k in session_parts[0]}
                order = np.argsort(merged["ts_event"], kind="stable")  # products interleave in time
                parts.append({k: v[order] for k, v in merged.items()})
        return parts

    def _trade_columns(self, start_ns: int, end_ns: int, ids: np.ndarray | None) -> dict[str, np.ndarray]:
        parts = self._trade_parts(start_ns, end_ns, ids)
        if not parts:
            return self._session_trades_empty()
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    @staticmethod
    def _session_trades_empty() -> dict[str, np.ndarray]:
        return {"ts_event": np.empty(0, np.int64), "ts_recv": np.empty(0, np.int64),
                "price": np.empty(0, np.int64), "size": np.empty(0, np.uint32),
                "instrument_id": np.empty(0, np.uint32), "side": np.empty(0, np.uint8),
                "ts_in_delta": np.empty(0, np.int32), "sequence": np.empty(0, np.uint32)}

    @staticmethod
    def _fill_trade_fields(out: np.ndarray, cols: dict[str, np.ndarray], rtype: int) -> None:
        out["length"] = out.dtype.itemsize // 4
        out["rtype"] = rtype
        out["publisher_id"] = PUBLISHER_ID
        out["instrument_id"] = cols["instrument_id"]
        out["ts_event"] = cols["ts_event"]
        out["price"] = cols["price"]
        out["size"] = cols["size"]
        out["action"] = b"T"
        out["side"] = cols["side"].view("S1")
        out["ts_recv"] = cols["ts_recv"]
        out["ts_in_delta"] = cols["ts_in_delta"]
        out["sequence"] = cols["sequence"]

    def _trade_records(self, parts: list[dict[str, np.ndarray]]) -> np.ndarray:
        out = np.zeros(sum(len(p["ts_event"]) for p in parts), dtype=TRADE_DTYPE)
        at = 0
        for cols in parts:  # fill in place, session by session: no full-size intermediate columns
            n = len(cols["ts_event"])
            for lo, hi, block in _blocks(cols, n, out.dtype.itemsize):
                self._fill_trade_fields(out[at + lo:at + hi], block, RTYPE_MBP0)
            at += n
        return out

    def _tbbo_records(self, parts: list[dict[str, np.ndarray]]) -> np.ndarray:
        out = np.zeros(sum(len(p["ts_event"]) for p in parts), dtype=MBP1_DTYPE)
        at = 0
        for cols in parts:
            n = len(cols["ts_event"])
            for lo, hi, block in _blocks(cols, n, out.dtype.itemsize):
                self._fill_tbbo_fields(out[at + lo:at + hi], block)
            at += n
        return out

    def _fill_tbbo_fields(self, out: np.ndarray, cols: dict[str, np.ndarray]) -> None:
        """Each trade with the BBO just before it: the aggressor's side was the touch the trade took."""
        self._fill_trade_fields(out, cols, RTYPE_MBP1)
        tick = np.array([0] + [_PRODUCT_BY_CODE[c].tick for c in sorted(_PRODUCT_BY_CODE)],
                        dtype=np.int64)[cols["instrument_id"] // _ID_STRIDE]
        buy = cols["side"] == ord("B")
        price = cols["price"]
        out["bid_px_00"] = np.where(buy, price - tick, price)
        out["ask_px_00"] = np.where(buy, price, price + tick)
        # book sizes: a deterministic hash of the sequence number; the side taken holds at least the trade
        h = (cols["sequence"].astype(np.uint64) * np.uint64(2654435761)) >> np.uint64(7)
        resting = (h % np.uint64(40)).astype(np.uint32)
        other = 1 + ((h >> np.uint64(8)) % np.uint64(40)).astype(np.uint32)
        size = cols["size"]
        out["ask_sz_00"] = np.where(buy, size + resting, other)
        out["bid_sz_00"] = np.where(buy, other, size + resting)
        out["ask_ct_00"] = 1 + (h >> np.uint64(16)) % out["ask_sz_00"].astype(np.uint64)
        out["bid_ct_00"] = 1 + (h >> np.uint64(20)) % out["bid_sz_00"].astype(np.uint64)

    def _ohlcv_records(self, schema: str, ids: np.ndarray | None, start_ns: int, end_ns: int) -> np.ndarray:
        """Bars from the market's own trades: ts_event = interval start, no bar for an empty interval."""
        interval = OHLCV_INTERVAL_NS[schema]
        lo = start_ns // interval * interval
        hi = -(-end_ns // interval) * interval
        cols = self._trade_columns(lo, hi, ids)
        bucket = cols["ts_event"] // interval
        key = ((bucket - (lo // interval)) << 20) | cols["instrument_id"].astype(np.int64)
        order = np.argsort(key, kind="stable")
        key_sorted = key[order]
        starts = np.flatnonzero(np.concatenate([[True], key_sorted[1:] != key_sorted[:-1]])) if len(key) \
            else np.empty(0, dtype=np.int64)
        price = cols["price"][order]
        out = np.zeros(len(starts), dtype=OHLCV_DTYPE)
        out["length"] = OHLCV_DTYPE.itemsize // 4
        out["rtype"] = OHLCV_RTYPE[schema]
        out["publisher_id"] = PUBLISHER_ID
        if len(starts):
            ends = np.concatenate([starts[1:], [len(order)]])
            out["instrument_id"] = cols["instrument_id"][order][starts]
            out["ts_event"] = bucket[order][starts] * interval
            out["open"] = price[starts]
            out["close"] = price[ends - 1]
            out["high"] = np.maximum.reduceat(price, starts)
            out["low"] = np.minimum.reduceat(price, starts)
            out["volume"] = np.add.reduceat(cols["size"][order].astype(np.uint64), starts)
        keep = (out["ts_event"] >= np.uint64(start_ns)) & (out["ts_event"] < np.uint64(end_ns))
        return out[keep]

    def _statistics_records(self, ids: np.ndarray | None, start_ns: int, end_ns: int) -> np.ndarray:
        """Per session and listed contract: the settlement (stat 3) and the open interest (stat 9)."""
        sessions = self._sessions(start_ns - DAY_NS, end_ns + DAY_NS)
        rows = []
        for i in range(len(sessions)):
            close_ns = int(sessions.close_ns[i])
            if close_ns + OPEN_INTEREST_DELAY_NS + NS < start_ns or close_ns + SETTLEMENT_DELAY_NS >= end_ns:
                continue
            day = sessions.trade_date[i].astype(object)
            for root in self._roots_for(ids):
                rows.append(self._session_statistics(root, day))
        out = np.concatenate(rows) if rows else np.zeros(0, dtype=STAT_DTYPE)
        return self._select_by_recv(out, ids, start_ns, end_ns)

    def _session_statistics(self, root: str, trade_date: dt.date) -> np.ndarray:
        plan = self.session_plan(root, trade_date)
        contracts = product_contracts(root)
        n = len(plan.contract_index)
        # a contract expiring inside the session settles at its last tradable nanosecond
        settle_at = np.minimum(contracts.expiration_ns[plan.contract_index] - 1, plan.close_ns)
        settlement = np.empty(n, dtype=np.int64)
        for j, ci in enumerate(plan.contract_index):
            moment = np.array([settle_at[j]], dtype=np.int64)
            if settle_at[j] < plan.close_ns:
                fair = self._fair_path(root, trade_date)[(moment - plan.open_ns) // NS]
            else:
                fair = self._daily_levels(root)[1][self._day_index([trade_date])]
            settlement[j] = self._contract_prices(root, int(ci), moment, fair)[0]
        out = np.zeros(2 * n, dtype=STAT_DTYPE)
        out["length"] = STAT_DTYPE.itemsize // 4
        out["rtype"] = RTYPE_STATISTICS
        out["publisher_id"] = PUBLISHER_ID
        out["instrument_id"] = np.tile(contracts.instrument_id[plan.contract_index], 2)
        offsets = np.arange(n, dtype=np.int64) * 1_000  # one packet per contract, in listing order
        recv = np.concatenate([plan.close_ns + SETTLEMENT_DELAY_NS + offsets,
                               plan.close_ns + OPEN_INTEREST_DELAY_NS + offsets])
        out["ts_recv"] = recv
        out["ts_event"] = recv - 20_000
        out["ts_in_delta"] = 15_000
        out["ts_ref"] = _date_ns(trade_date)
        out["price"] = np.concatenate([settlement, np.full(n, UNDEF_PRICE, dtype=np.int64)])
        out["quantity"] = np.concatenate([np.full(n, UNDEF_STAT_QUANTITY, dtype=np.int64),
                                          plan.open_interest])
        out["stat_type"] = np.repeat([STAT_SETTLEMENT, STAT_OPEN_INTEREST], n)
        out["stat_flags"] = np.repeat([SETTLEMENT_FLAGS, 255], n)
        out["update_action"] = 1  # StatUpdateAction.NEW
        out["sequence"] = 1 + np.arange(2 * n)
        return out

    def _definition_records(self, ids: np.ndarray | None, start_ns: int, end_ns: int) -> np.ndarray:
        """One definition per listed contract per session, at the open (or at a mid-session listing)."""
        sessions = self._sessions(start_ns - DAY_NS, end_ns + DAY_NS)
        rows = []
        for i in range(len(sessions)):
            if int(sessions.close_ns[i]) <= start_ns or int(sessions.open_ns[i]) >= end_ns:
                continue
            day = sessions.trade_date[i].astype(object)
            for root in self._roots_for(ids):
                rows.append(self._session_definitions(root, day))
        out = np.concatenate(rows) if rows else np.zeros(0, dtype=DEFINITION_DTYPE)
        return self._select_by_recv(out, ids, start_ns, end_ns)

    def _session_definitions(self, root: str, trade_date: dt.date) -> np.ndarray:
        product = PRODUCTS[root]
        plan = self.session_plan(root, trade_date)
        c = product_contracts(root)
        idx = plan.contract_index
        n = len(idx)
        out = np.zeros(n, dtype=DEFINITION_DTYPE)
        out["length"] = DEFINITION_DTYPE.itemsize // 4
        out["rtype"] = RTYPE_DEFINITION
        out["publisher_id"] = PUBLISHER_ID
        out["instrument_id"] = c.instrument_id[idx]
        recv = np.maximum(c.activation_ns[idx], plan.open_ns) + np.arange(n, dtype=np.int64) * 1_000
        out["ts_recv"] = recv
        out["ts_event"] = recv - 250_000
        out["min_price_increment"] = product.tick
        out["display_factor"] = product.display_factor
        out["expiration"] = c.expiration_ns[idx]
        out["activation"] = c.activation_ns[idx]
        opening = self._daily_levels(root)[0][self._day_index([trade_date])][0]
        limit_tick = product.tick / FIXED
        out["high_limit_price"] = np.int64(np.rint(opening * 1.07 / limit_tick)) * product.tick
        out["low_limit_price"] = np.int64(np.rint(opening * 0.93 / limit_tick)) * product.tick
        out["max_price_variation"] = product.max_price_variation
        out["unit_of_measure_qty"] = product.multiplier * FIXED
        tick_value = product.tick * product.multiplier * product.display_factor // FIXED
        out["min_price_increment_amount"] = tick_value  # in display units, as the ESH1 sample carries it
        for field in ("price_ratio", "strike_price", "leg_price", "leg_delta"):
            out[field] = UNDEF_PRICE
        out["market_depth"] = 10
        out["market_segment_id"] = product.market_segment_id
        out["max_trade_vol"] = 3000
        out["min_trade_vol"] = 1
        for field in ("contract_multiplier", "decay_quantity", "original_contract_size"):
            out[field] = INT32_MAX
        out["appl_id"] = 310
        out["maturity_year"] = c.year[idx]
        out["decay_start_date"] = 65535
        out["currency"] = b"USD"
        out["raw_symbol"] = np.array([s.encode() for s in c.raw_symbol[idx]], dtype="S71")
        out["group"] = root.encode()
        out["exchange"] = product.exchange.encode()
        out["asset"] = root.encode()
        out["cfi"] = b"FFIXSX" if product.exchange == "XCME" else b"FCAXSX"
        out["security_type"] = b"FUT"
        out["unit_of_measure"] = product.unit_of_measure.encode()
        out["instrument_class"] = b"F"
        out["match_algorithm"] = b"F"
        out["main_fraction"] = out["price_display_format"] = out["sub_fraction"] = 255
        out["underlying_product"] = product.underlying_product
        out["security_update_action"] = b"A"
        out["maturity_month"] = c.month[idx]
        out["maturity_day"] = out["maturity_week"] = 255
        out["user_defined_instrument"] = b"N"
        out["contract_multiplier_unit"] = out["flow_schedule_type"] = 127
        out["tick_rule"] = 255
        out["leg_side"] = b"N"
        return out

    @staticmethod
    def _select_by_recv(out: np.ndarray, ids: np.ndarray | None, start_ns: int, end_ns: int) -> np.ndarray:
        keep = (out["ts_recv"] >= np.uint64(max(start_ns, 0))) & (out["ts_recv"] < np.uint64(max(end_ns, 0)))
        if ids is not None:
            keep &= np.isin(out["instrument_id"], ids)
        out = out[keep]
        return out[np.lexsort((out["instrument_id"], out["ts_recv"]))]
