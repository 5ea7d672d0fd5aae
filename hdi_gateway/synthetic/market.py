"""A deterministic synthetic CME Globex market (dataset GLBX.MDP3): ES, NQ, GC, ZB and ZC futures.

Everything is a pure function of (seed, product, trade date): a trade date is generated on demand, vectorized,
and cached in a small LRU, so any query returns byte-identical records whatever was asked before. When each
product trades comes from the exchange calendar library (hdi_gateway.exchange_calendar), never from HDI; the
model itself is in prices.py and the record layouts in records.py.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from hdi_core.errors import HdiError
from hdi_gateway import exchange_calendar as calendar
from hdi_gateway.exchange_calendar import DAY_NS, NS
from hdi_gateway.source import Instrument
from hdi_gateway.synthetic import prices, records
from hdi_gateway.synthetic.book_market import BOOK_SCHEMAS, BookSchemas
from hdi_gateway.synthetic.prices import SessionPlan
from hdi_gateway.synthetic.products import DATA_END, DATASET, ID_STRIDE, ORIGIN, PRODUCTS, Product, product_contracts

TEST_TICKS_PER_SESSION = 2_000
DEFAULT_TICKS_PER_SESSION = {"ES": 300_000, "NQ": 200_000, "GC": 60_000, "ZB": 80_000, "ZC": 40_000}
# Generated trade dates are kept by bytes, not count: ES at default volume is ~12 MB a session, so the
# default holds a ~2-week ALL_SYMBOLS request at default volume (~270 MB) or years at test volume.
SESSION_CACHE_BYTES = int(os.environ.get("HDI_REPLAY_SESSION_CACHE_MB", "384")) << 20
# entries; "trades" and "book" (a session's MBO: ~8 records of 56 bytes a trade) are bounded by bytes
# "cursor": resumable mbp replays (~20 bytes an MBO record each: ~45 MB an ES session), by count
CACHE_LIMITS = {"trades": 1 << 30, "book": 1 << 30, "cursor": 8, "path": 64, "plan": 8192}
CACHE_BYTE_LIMITS = {"trades": SESSION_CACHE_BYTES, "book": SESSION_CACHE_BYTES}
SCHEMAS_SERVED = (
    "trades", "tbbo", "mbo", "mbp-1", "mbp-10", "ohlcv-1s", "ohlcv-1m", "ohlcv-1h", "ohlcv-1d", "statistics",
    "definition",
)


def _date_ns(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp()) * NS


def _nbytes(value: object) -> int:
    """Bytes held by a cached column dict (or array)."""
    if isinstance(value, dict):
        return sum(int(v.nbytes) for v in value.values())
    return int(getattr(value, "nbytes", 0))


def _empty_trades() -> dict[str, np.ndarray]:
    return {"ts_event": np.empty(0, np.int64), "ts_recv": np.empty(0, np.int64),
            "price": np.empty(0, np.int64), "size": np.empty(0, np.uint32),
            "instrument_id": np.empty(0, np.uint32), "side": np.empty(0, np.uint8),
            "ts_in_delta": np.empty(0, np.int32), "sequence": np.empty(0, np.uint32)}


class SyntheticMarket(BookSchemas):
    """Deterministic synthetic GLBX.MDP3 data source implementing the gateway's DataSource."""

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

        Computed from the plans alone (no ticks); trades generated for that trade date sum to `volume`.
        """
        self._check_dataset(dataset)
        dates, ids, volumes, ois = [], [], [], []
        for root in PRODUCTS:
            contracts = product_contracts(root)
            for day in self.trade_dates(root, _date_ns(start_date) - DAY_NS, _date_ns(end_date) + 2 * DAY_NS):
                if not start_date <= day < end_date:
                    continue
                plan = self.session_plan(root, day)
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
        if schema in ("trades", "tbbo"):
            parts = self._trade_parts(start_ns, end_ns, ids, with_book=schema == "tbbo")
            return records.trade_records(parts, tbbo=schema == "tbbo")
        if schema in BOOK_SCHEMAS:
            return self._book_records(schema, ids, start_ns, end_ns)
        if schema in records.OHLCV_RTYPE:
            interval = records.OHLCV_INTERVAL_NS[schema]
            lo, hi = start_ns // interval * interval, -(-end_ns // interval) * interval
            return records.ohlcv_records(schema, self._trade_columns(lo, hi, ids), lo, start_ns, end_ns)
        if schema == "statistics":
            return self._statistics_records(ids, start_ns, end_ns)
        if schema == "definition":
            return self._definition_records(ids, start_ns, end_ns)
        raise HdiError(f"schema {schema!r} is not served by the synthetic {DATASET} market; "
                       f"served: {', '.join(SCHEMAS_SERVED)}")

    # ----- the exchange calendar and the true prices, for tests ----------------------------------------------

    def trade_dates(self, product: str, start_ns: int, end_ns: int) -> list[dt.date]:
        """The product's trade dates whose trading overlaps [start_ns, end_ns), inside [ORIGIN, DATA_END)."""
        name = self._product(product).calendar
        td = calendar.trade_dates(name)
        rows = calendar.trade_dates_between(name, max(start_ns, self._start_ns), min(end_ns, self._end_ns))
        rows = rows[(td.open_ns[rows] >= self._start_ns) & (td.close_ns[rows] <= self._end_ns)]
        return [d.astype(object) for d in td.trade_date[rows]]

    def fair_price(self, product: str, ts_ns: np.ndarray | int) -> np.ndarray:
        """The product's fair level (float points) at each timestamp; between trade dates, the last close."""
        root = self._product(product).root
        td = calendar.trade_dates(PRODUCTS[root].calendar)
        ts = np.atleast_1d(np.asarray(ts_ns, dtype=np.int64))
        out = np.full(ts.shape, np.nan)
        if ts.size == 0:
            return out
        row = np.searchsorted(td.open_ns, ts, side="right") - 1
        if (row < 0).any() or (ts < self._start_ns).any():
            raise HdiError(f"fair_price: timestamp before the synthetic data starts ({ORIGIN})")
        inside = ts < td.close_ns[row]
        for r in np.unique(row[inside]):
            sel = inside & (row == r)
            day = td.trade_date[r].astype(object)
            out[sel] = self._fair_path(root, day)[(ts[sel] - td.open_ns[r]) // NS]
        if (~inside).any():
            _, closes = self._daily_levels(root)
            out[~inside] = closes[prices.day_index(td.trade_date[row[~inside]])]
        return out

    def contract_price(self, raw_symbol: str, ts_ns: np.ndarray | int) -> np.ndarray:
        """The contract's true price (int64, 1e-9) at each timestamp: fair level plus carry, on its tick."""
        ts = np.atleast_1d(np.asarray(ts_ns, dtype=np.int64))
        root, index = self._contract_of(raw_symbol, int(np.median(ts)) if ts.size else self._start_ns)
        return prices.contract_prices(PRODUCTS[root], product_contracts(root), index, ts,
                                      self.fair_price(root, ts))

    def session_plan(self, product: str, trade_date: dt.date) -> SessionPlan:
        """Listed contracts and their trade count, volume and open interest for one trade date (cached)."""
        root = self._product(product).root
        key = ("plan", root, trade_date)
        plan = self._cached(key)
        if plan is None:
            name = PRODUCTS[root].calendar
            row = calendar.trade_date_row(name, trade_date)
            if row < 0 or not ORIGIN <= trade_date < DATA_END:
                raise HdiError(f"{trade_date} is not a {root} trade date of the exchange calendar {name!r} "
                               f"(from {ORIGIN} to {DATA_END})")
            seg_open, seg_close = calendar.segment_bounds(name, row)
            plan = prices.make_plan(self.seed, PRODUCTS[root], product_contracts(root), trade_date,
                                    self.ticks_per_session[root], seg_open, seg_close)
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

    def _daily_levels(self, root: str) -> tuple[np.ndarray, np.ndarray]:
        """(open level, close level) of every business day from ORIGIN, indexed by prices.day_index."""
        levels = self._levels.get(root)
        if levels is None:
            n_days = int(np.busday_count(np.datetime64(ORIGIN, "D"), np.datetime64(DATA_END, "D"))) + 1
            levels = prices.daily_levels(self.seed, PRODUCTS[root], n_days)
            self._levels[root] = levels
        return levels

    def _fair_path(self, root: str, trade_date: dt.date) -> np.ndarray:
        key = ("path", root, trade_date)
        path = self._cached(key)
        if path is None:
            plan = self.session_plan(root, trade_date)
            opens, closes = self._daily_levels(root)
            day = int(prices.day_index([trade_date])[0])
            path = prices.fair_path(self.seed, PRODUCTS[root], trade_date, int((plan.close_ns - plan.open_ns) // NS),
                                    float(opens[day]), float(closes[day]))
            self._store(key, path)
        return path

    def _session_trades(self, root: str, trade_date: dt.date) -> dict[str, np.ndarray]:
        key = ("trades", root, trade_date)
        cols = self._cached(key)
        if cols is None:
            cols = prices.session_trades(self.seed, PRODUCTS[root], product_contracts(root),
                                         self.session_plan(root, trade_date), self._fair_path(root, trade_date))
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
        codes = set((ids // ID_STRIDE).tolist())
        return [root for root, p in PRODUCTS.items() if p.code in codes]

    def _trade_parts(self, start_ns: int, end_ns: int, ids: np.ndarray | None,
                     with_book: bool = False) -> list[dict[str, np.ndarray]]:
        """Trades with ts_event in [start_ns, end_ns) as column dicts in time order (one per trade date when
        one product is asked; products with different calendars interleave, so several are merged); with_book
        adds the book's BBO just before each trade (bid_px, ask_px, bid_sz, ask_sz, bid_ct, ask_ct)."""
        by_root: list[list[dict[str, np.ndarray]]] = []
        for root in self._roots_for(ids):
            contracts = product_contracts(root)
            parts: list[dict[str, np.ndarray]] = []
            for day in self.trade_dates(root, start_ns, end_ns):
                cols = self._session_trades(root, day)
                if with_book:
                    cols = {**cols, **self.session_book(root, day)[1]}
                a, b = np.searchsorted(cols["ts_event"], [start_ns, end_ns], side="left")
                part = {k: v[a:b] for k, v in cols.items()}
                if ids is not None and not np.isin(
                        contracts.instrument_id[self.session_plan(root, day).contract_index], ids).all():
                    keep = np.isin(part["instrument_id"], ids)
                    part = {k: v[keep] for k, v in part.items()}
                if len(part["ts_event"]):
                    parts.append(part)
            if parts:
                by_root.append(parts)
        if len(by_root) <= 1:
            return by_root[0] if by_root else []
        # products with different calendars interleave: merge them one UTC day at a time (bounded memory)
        merged_parts = []
        for lo in range(start_ns - start_ns % DAY_NS, end_ns, DAY_NS):
            pieces = []
            for parts in by_root:
                for part in parts:
                    a, b = np.searchsorted(part["ts_event"], [lo, lo + DAY_NS], side="left")
                    if b > a:
                        pieces.append({k: v[a:b] for k, v in part.items()})
            if pieces:
                merged = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
                order = np.argsort(merged["ts_event"], kind="stable")
                merged_parts.append({k: v[order] for k, v in merged.items()})
        return merged_parts

    def _trade_columns(self, start_ns: int, end_ns: int, ids: np.ndarray | None) -> dict[str, np.ndarray]:
        parts = self._trade_parts(start_ns, end_ns, ids)
        if not parts:
            return _empty_trades()
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _statistics_records(self, ids: np.ndarray | None, start_ns: int, end_ns: int) -> np.ndarray:
        """Per trade date and listed contract: preliminary and final settlement (stat 3), open interest (9)."""
        rows = []
        for root in self._roots_for(ids):
            for day in self.trade_dates(root, start_ns - DAY_NS, end_ns + DAY_NS):
                plan = self.session_plan(root, day)
                if (plan.close_ns + records.STATISTICS_LAST_DELAY_NS + NS < start_ns
                        or plan.close_ns + records.PRELIMINARY_DELAY_NS >= end_ns):
                    continue
                rows.append(records.statistics_records(plan, product_contracts(root),
                                                       self._settlements(root, plan), _date_ns(day)))
        out = np.concatenate(rows) if rows else np.zeros(0, dtype=records.STAT_DTYPE)
        return records.select_by_recv(out, ids, start_ns, end_ns)

    def _settlements(self, root: str, plan: SessionPlan) -> np.ndarray:
        """Each listed contract's settlement: its price at the close (an expiring one at its last nanosecond)."""
        contracts = product_contracts(root)
        settle_at = np.minimum(contracts.expiration_ns[plan.contract_index] - 1, plan.close_ns)
        path = self._fair_path(root, plan.trade_date)
        day_close = self._daily_levels(root)[1][prices.day_index([plan.trade_date])[0]]
        out = np.empty(len(settle_at), dtype=np.int64)
        for j, ci in enumerate(plan.contract_index):
            moment = settle_at[j:j + 1]
            fair = path[(moment - plan.open_ns) // NS] if settle_at[j] < plan.close_ns else np.array([day_close])
            out[j] = prices.contract_prices(PRODUCTS[root], contracts, int(ci), moment, fair)[0]
        return out

    def _definition_records(self, ids: np.ndarray | None, start_ns: int, end_ns: int) -> np.ndarray:
        """One definition per listed contract per trade date, at its open (or at a mid-session listing)."""
        rows = []
        for root in self._roots_for(ids):
            opens = self._daily_levels(root)[0]
            for day in self.trade_dates(root, start_ns - DAY_NS, end_ns + DAY_NS):
                plan = self.session_plan(root, day)
                opening = float(opens[prices.day_index([day])[0]])
                rows.append(records.definition_records(PRODUCTS[root], plan, product_contracts(root), opening))
        out = np.concatenate(rows) if rows else np.zeros(0, dtype=records.DEFINITION_DTYPE)
        return records.select_by_recv(out, ids, start_ns, end_ns)
