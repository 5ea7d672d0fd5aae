"""The order-book schemas of the synthetic market (mbo, mbp-1, mbp-10; tbbo's BBO), as a mixin of
SyntheticMarket: one session's book is generated once from its trades (book.py) and cached by bytes."""

from __future__ import annotations

import datetime as dt

import numpy as np

from hdi_core.errors import HdiError
from hdi_gateway.exchange_calendar import NS
from hdi_gateway.synthetic import book, depth, snapshot
from hdi_gateway.synthetic.products import ID_STRIDE, PRODUCTS, TICK_BY_CODE

BOOK_SCHEMAS = ("mbo", "mbp-1", "mbp-10")
MBP_DEPTH = {"mbp-1": 1, "mbp-10": 10}


class BookSchemas:
    """Needs from its host: seed, session_plan, trade_dates, _session_trades, _roots_for, _cached, _store."""

    def session_book(self, product: str, trade_date: dt.date) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(MBO records of the product's session in DBN v3 MboMsg layout, the BBO before each trade)."""
        root = self._product(product).root  # type: ignore[attr-defined]
        key = ("book", root, trade_date)
        value = self._cached(key)  # type: ignore[attr-defined]
        if value is None:
            trades = self._session_trades(root, trade_date)  # type: ignore[attr-defined]
            plan = self.session_plan(root, trade_date)  # type: ignore[attr-defined]
            p = PRODUCTS[root]
            mbo, bbo = book.session_book(trades, p.tick, plan.open_ns, self.seed,  # type: ignore[attr-defined]
                                         p.code, trade_date.toordinal())
            value = {"mbo": mbo, **bbo}
            self._store(key, value)  # type: ignore[attr-defined]
        bbo = {k: v for k, v in value.items() if k != "mbo"}
        return value["mbo"], bbo

    def session_mbo(self, product: str, trade_date: dt.date) -> np.ndarray:
        """One product's session of MBO records (all its listed contracts), DBN v3 MboMsg dtype, ts_recv order."""
        return self.session_book(product, trade_date)[0]

    def session_mbp(self, product: str, trade_date: dt.date, depth_n: int = 10) -> np.ndarray:
        """One product's session of mbp-`depth_n` records (1 or 10), derived from session_mbo."""
        return self._mbp_cursor(product, trade_date, depth_n).records(0, len(self.session_mbo(product, trade_date)))

    def session_snapshot(self, product: str, trade_date: dt.date, ts_ns: int,
                         instrument_ids: np.ndarray | None = None) -> np.ndarray:
        """The MBO snapshot of the session's book just before `ts_ns` (records with ts_recv < ts_ns applied),
        stamped ts_recv = ts_ns: what a live subscription with snapshot=True, or a mid-session replay, starts with."""
        mbo = self.session_mbo(product, trade_date)
        upto = int(np.searchsorted(mbo["ts_recv"], np.uint64(max(ts_ns, 0)), side="left"))
        return snapshot.mbo_snapshot(mbo, upto, int(ts_ns), instrument_ids)

    def _mbp_cursor(self, product: str, trade_date: dt.date, depth_n: int) -> depth.MbpCursor:
        """The session's resumable mbp replay (a few kept): a live gateway's windows in order cost their rows."""
        root = self._product(product).root  # type: ignore[attr-defined]
        key = ("cursor", root, trade_date, depth_n)
        cursor = self._cached(key)  # type: ignore[attr-defined]
        if cursor is None:
            mbo = self.session_mbo(root, trade_date)
            cursor = depth.MbpCursor(mbo, depth_n, _ticks(mbo))
            self._store(key, cursor)  # type: ignore[attr-defined]
        return cursor

    def _book_records(self, schema: str, ids: np.ndarray | None, start_ns: int, end_ns: int) -> np.ndarray:
        """mbo / mbp-N records with ts_recv in [start_ns, end_ns) (Databento filters on ts_recv)."""
        if schema not in BOOK_SCHEMAS:
            raise HdiError(f"schema {schema!r} is not an order-book schema; book schemas: {BOOK_SCHEMAS}")
        parts = []
        for root in self._roots_for(ids):  # type: ignore[attr-defined]
            for day in self.trade_dates(root, start_ns - NS, end_ns):  # type: ignore[attr-defined]
                mbo = self.session_mbo(root, day)
                a, b = np.searchsorted(mbo["ts_recv"], np.array([max(start_ns, 0), max(end_ns, 0)], np.uint64))
                if b <= a:
                    continue
                if schema == "mbo":
                    part = mbo[a:b]
                else:
                    part = self._mbp_cursor(root, day, MBP_DEPTH[schema]).records(int(a), int(b))
                if ids is not None:
                    part = part[np.isin(part["instrument_id"], ids)]
                if len(part):
                    parts.append(part)
        if not parts:
            return np.zeros(0, dtype=book.MBO_DTYPE if schema == "mbo" else depth.MBP_DTYPES[MBP_DEPTH[schema]])
        out = np.concatenate(parts)
        if len(parts) > 1:
            out = out[np.argsort(out["ts_recv"], kind="stable")]
        return out


def _ticks(mbo: np.ndarray) -> dict[int, int]:
    return {int(i): int(TICK_BY_CODE[int(i) // ID_STRIDE]) for i in np.unique(mbo["instrument_id"])}
