"""The synthetic market's price and volume model: pure functions of (seed, product, trade date), vectorized.

Price model: a per-product daily "fair" level is a seeded log random walk from ORIGIN (an overnight move
at each open plus an intraday move); inside a trade date the fair level follows a Brownian bridge from its
first open to its last close on a one-second grid (through any break: the market is silent, the level moves).
A contract trades at the fair level times (1 + carry_rate * years_to_expiry), rounded to its tick, so two
contracts printed at the same moment differ by exactly the carry spread.
Volume model: the front month holds the volume until the roll window, then the share moves linearly to the
next month over five trade dates (the leader switches on the third); open interest follows two dates later.
A quarter of every non-leading contract's trades are calendar-spread legs printed at the same ts_event as a
trade in the leading contract. Trades fall only inside the exchange's trading segments.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from hdi_gateway.exchange_calendar import NS
from hdi_gateway.synthetic.products import CHICAGO, FIXED, ORIGIN, Contracts, Product

BUSINESS_DAYS_PER_YEAR = 261
MEAN_REVERSION = 0.99  # daily AR(1) coefficient of the deviation from trend: about +-8% for ES
ROLL_SESSIONS = 5
SPREAD_LEG_FRACTION = 0.25  # share of a non-leading contract's trades printed as spread legs
YEAR_NS = 365 * 86_400 * NS
MINUTE_NS = 60 * NS


@dataclass(frozen=True)
class SessionPlan:
    """What one product trades for one trade date: per listed contract, trade count, volume and open interest."""

    trade_date: dt.date
    open_ns: int  # first segment's open
    close_ns: int  # last segment's close: the settlement moment
    contract_index: np.ndarray  # indices into Contracts, nearest expiration first
    n_trades: np.ndarray  # int64
    volume: np.ndarray  # int64, sum of the trade sizes
    open_interest: np.ndarray  # int64
    segment_open_ns: np.ndarray  # int64, the trade date's trading segments
    segment_close_ns: np.ndarray  # int64


def day_index(days) -> np.ndarray:
    """Row of each trade date in daily_levels: business days since ORIGIN."""
    return np.busday_count(np.datetime64(ORIGIN, "D"), np.asarray(days, dtype="datetime64[D]"))


def daily_levels(seed: int, product: Product, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(open level, close level) of every business day from ORIGIN."""
    z = np.random.default_rng([seed, product.code, 0]).standard_normal((n_days, 2))
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
    return np.exp(log_open), np.exp(log_close)


def fair_path(seed: int, product: Product, trade_date: dt.date, n_seconds: int, open_level: float,
              close_level: float) -> np.ndarray:
    """Fair level on a one-second grid over the trade date: a Brownian bridge from its open to its close."""
    rng = np.random.default_rng([seed, product.code, trade_date.toordinal(), 2])
    walk = np.empty(n_seconds + 1)
    walk[0] = 0.0
    step = 0.6 * product.daily_vol / np.sqrt(n_seconds)
    np.cumsum(rng.standard_normal(n_seconds) * step, out=walk[1:])
    t = np.arange(n_seconds + 1) / n_seconds
    log_open, log_close = np.log(open_level), np.log(close_level)
    return np.exp(log_open + t * (log_close - log_open) + walk - t * walk[-1])


def contract_prices(product: Product, contracts: Contracts, index: int, ts: np.ndarray,
                    fair: np.ndarray) -> np.ndarray:
    years = np.maximum(contracts.expiration_ns[index] - ts, 0) / YEAR_NS
    points = fair * (1.0 + product.carry_rate * years)
    return np.rint(points / (product.tick / FIXED)).astype(np.int64) * product.tick


def make_plan(seed: int, product: Product, contracts: Contracts, trade_date: dt.date, ticks_per_session: int,
              segment_open_ns: np.ndarray, segment_close_ns: np.ndarray) -> SessionPlan:
    open_ns, close_ns = int(segment_open_ns[0]), int(segment_close_ns[-1])
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

    rng = np.random.default_rng([seed, product.code, trade_date.toordinal(), 1])
    draws = rng.random((3, 8))  # fixed draw count keeps the stream independent of the listing
    activity = np.exp(0.15 * (draws[0, 0] - 0.5) * 2)
    n_trades = np.rint(ticks_per_session * activity * vol_share)
    n_trades = np.maximum(n_trades, 1).astype(np.int64)
    size_noise = 1.0 + 0.06 * (draws[1, : len(listed)] - 0.5)
    volume = n_trades + np.rint(n_trades * (product.mean_trade_size - 1.0) * size_noise).astype(np.int64)
    oi_noise = 1.0 + 0.04 * (draws[2, : len(listed)] - 0.5)
    open_interest = np.rint(product.open_interest * oi_share * oi_noise).astype(np.int64)
    return SessionPlan(trade_date, open_ns, close_ns, listed, n_trades, volume, open_interest,
                       segment_open_ns, segment_close_ns)


def minute_weights(edges: np.ndarray, segment_open_ns: np.ndarray, segment_close_ns: np.ndarray) -> np.ndarray:
    """Relative trading intensity of each minute [edges[i], edges[i+1]) by Chicago clock; 0 outside segments."""
    first = dt.datetime.fromtimestamp(int(edges[0]) / NS, tz=CHICAGO)
    offset = first.hour * 60 + first.minute
    clock = (offset + (edges[:-1] - edges[0]) // MINUTE_NS) % 1440  # minutes after midnight, Chicago
    w = np.ones(len(clock))
    w[(clock >= 17 * 60) & (clock < 18 * 60)] = 1.5
    w[(clock >= 2 * 60) & (clock < 8 * 60 + 30)] = 2.5
    w[(clock >= 8 * 60 + 30) & (clock < 15 * 60 + 15)] = 8.0
    w[(clock >= 8 * 60 + 30) & (clock < 9 * 60)] = 14.0
    w[(clock >= 15 * 60) & (clock < 15 * 60 + 15)] = 14.0
    w[(clock >= 15 * 60 + 15) & (clock < 16 * 60)] = 1.5
    # silent between segments: a minute trades only if it starts inside one (segments are whole minutes)
    seg = np.searchsorted(segment_open_ns, edges[:-1], side="right") - 1
    inside = (seg >= 0) & (edges[:-1] < segment_close_ns[np.maximum(seg, 0)])
    return np.where(inside, w, 0.0)


def sorted_times(
    rng: np.random.Generator, n: int, edges: np.ndarray, weights: np.ndarray, lo: int, hi: int
) -> np.ndarray:
    """n sorted timestamps in [lo, hi) drawn from the piecewise-constant intensity `weights` over `edges`.

    Sorted uniforms (normalized exponential spacings) pushed through the monotone inverse CDF need no sort.
    A zero-weight minute never receives a timestamp.
    """
    seg_lo = np.maximum(edges[:-1], lo)
    overlap = np.clip(np.minimum(edges[1:], hi) - seg_lo, 0, None)
    mass = weights * overlap
    cdf = np.cumsum(mass)
    spacings = np.cumsum(rng.standard_exponential(n + 1))
    if cdf[-1] <= 0:  # the contract's window holds no trading minute
        return np.empty(0, dtype=np.int64)
    target = spacings[:-1] * (cdf[-1] / spacings[-1])
    b = np.minimum(np.searchsorted(cdf, target, side="right"), len(cdf) - 1)
    offset = ((target - (cdf[b] - mass[b])) / weights[b]).astype(np.int64)
    return seg_lo[b] + np.clip(offset, 0, overlap[b] - 1)


def sizes_summing_to(rng: np.random.Generator, n: int, volume: int, mean_size: float) -> np.ndarray:
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


def session_trades(seed: int, product: Product, contracts: Contracts, plan: SessionPlan,
                   path: np.ndarray) -> dict[str, np.ndarray]:
    """All trades of one product for one trade date, sorted by ts_event, as columns."""
    rng = np.random.default_rng([seed, product.code, plan.trade_date.toordinal(), 3])
    open_ns, close_ns = plan.open_ns, plan.close_ns
    n_minutes = -(-(close_ns - open_ns) // MINUTE_NS)
    edges = open_ns + np.arange(n_minutes + 1, dtype=np.int64) * MINUTE_NS
    edges[-1] = close_ns
    weights = minute_weights(edges, plan.segment_open_ns, plan.segment_close_ns)

    times: list[np.ndarray] = []
    windows = []
    for j, ci in enumerate(plan.contract_index):
        lo = max(open_ns, int(contracts.activation_ns[ci]))
        hi = min(close_ns, int(contracts.expiration_ns[ci]))
        windows.append((lo, hi))
        times.append(sorted_times(rng, int(plan.n_trades[j]), edges, weights, lo, hi))
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
        prices.append(contract_prices(product, contracts, int(ci), ts, path[(ts - open_ns) // NS]))
        sizes.append(sizes_summing_to(rng, len(ts), int(plan.volume[j]), product.mean_trade_size))
        ids.append(np.full(len(ts), contracts.instrument_id[ci], dtype=np.uint32))
    ts_event = np.concatenate(times)
    order = np.argsort(ts_event, kind="stable")
    ts_event = ts_event[order]
    n = len(ts_event)
    latency = rng.integers(150_000, 400_000, n)
    return {
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
