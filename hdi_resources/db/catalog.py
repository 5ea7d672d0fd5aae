"""The symbol catalogue (migration 0008): one small row per stored series with its row count and time span.

Loads call `refresh_after_load` for what they wrote; reads call `entries` / `known_symbols` instead of scanning
the big tables. An empty catalogue over stored data (data loaded before 0008) is rebuilt once, on first read."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Database

log = logging.getLogger(__name__)

VENDOR_TARGETS = ("ohlcv_data", "trades_data", "tbbo_data", "statistics_data", "definitions_data")
TARGETS = ("continuous_bars", "roll_events", *VENDOR_TARGETS)
# A futures outright's root: ESU4 -> ES, ESZ24 -> ES (month code, then a 1-2 digit year); spreads stay NULL.
ROOT_PATTERN = "^([A-Z0-9]+?)[FGHJKMNQUVXZ][0-9]{1,2}$"

_UPSERT = """INSERT INTO symbol_catalog AS c (target, symbol, granularity, adjustment_method, instrument_id,
                 root_symbol, row_count, min_ts, max_ts, min_trade_date, max_trade_date)
             {select}
             ON CONFLICT (target, symbol, granularity, adjustment_method) DO UPDATE SET
                 instrument_id = EXCLUDED.instrument_id,
                 root_symbol = coalesce(EXCLUDED.root_symbol, c.root_symbol),
                 row_count = EXCLUDED.row_count, min_ts = EXCLUDED.min_ts, max_ts = EXCLUDED.max_ts,
                 min_trade_date = EXCLUDED.min_trade_date, max_trade_date = EXCLUDED.max_trade_date,
                 refreshed_at = now()"""


@dataclass(frozen=True)
class Entry:
    """One catalogue row."""

    target: str
    symbol: str
    granularity: str
    adjustment_method: str
    instrument_id: int | None
    raw_symbol: str | None
    root_symbol: str | None
    row_count: int
    min_ts: dt.datetime | None
    max_ts: dt.datetime | None
    min_trade_date: dt.date | None
    max_trade_date: dt.date | None


_ENTRY_COLUMNS = ("target, symbol, granularity, adjustment_method, instrument_id, raw_symbol, root_symbol, "
                  "row_count, min_ts, max_ts, min_trade_date, max_trade_date")


# -- maintenance (the loads) ----------------------------------------------------------------------------------
def _refresh_continuous(cur: Any, symbols: Iterable[str]) -> None:
    symbols = sorted(set(symbols))
    cur.execute("DELETE FROM symbol_catalog WHERE target = 'continuous_bars' AND symbol = ANY(%s)", (symbols,))
    cur.execute(_UPSERT.format(select="""
        SELECT 'continuous_bars', continuous_symbol, granularity, adjustment_method, NULL, min(root_symbol),
               count(*), min(ts), max(ts), min(trade_date), max(trade_date)
        FROM continuous_bars WHERE continuous_symbol = ANY(%s)
        GROUP BY continuous_symbol, granularity, adjustment_method"""), (symbols,))


def _refresh_rolls(cur: Any, symbols: Iterable[str]) -> None:
    symbols = sorted(set(symbols))
    cur.execute("DELETE FROM symbol_catalog WHERE target = 'roll_events' AND symbol = ANY(%s)", (symbols,))
    cur.execute(_UPSERT.format(select="""
        SELECT 'roll_events', continuous_symbol, '', method, NULL, split_part(continuous_symbol, '.', 1),
               count(*), min(switch_ts), max(switch_ts), min(switch_ts)::date, max(switch_ts)::date
        FROM roll_events WHERE continuous_symbol = ANY(%s) GROUP BY continuous_symbol, method"""), (symbols,))


def _refresh_vendor(cur: Any, table: str, ids: Iterable[int]) -> None:
    """Counts and spans of these instruments in one vendor table (its primary key leads with instrument_id)."""
    from psycopg2 import sql

    ids = sorted({int(i) for i in ids})
    granularity = sql.SQL("granularity" if table == "ohlcv_data" else "''")
    select = sql.SQL("""
        SELECT {target}, instrument_id::text, {gran}, '', instrument_id, NULL, count(*), min(ts_event),
               max(ts_event), min(ts_event)::date, max(ts_event)::date
        FROM {table} WHERE instrument_id = ANY(%s) GROUP BY {group}""").format(
        target=sql.Literal(table), gran=granularity, table=sql.Identifier(table),
        group=sql.SQL("instrument_id, granularity" if table == "ohlcv_data" else "instrument_id"))
    cur.execute(sql.SQL(_UPSERT).format(select=select), (ids,))
    name_instruments(cur, ids)


def name_instruments(cur: Any, ids: Iterable[int] | None = None) -> None:
    """Raw symbol and root of catalogue instruments: definitions first, then the vendor's symbol mappings."""
    id_list = None if ids is None else sorted({int(i) for i in ids})
    only = "" if id_list is None else "WHERE instrument_id = ANY(%(ids)s)"
    cur.execute(f"""UPDATE symbol_catalog c SET raw_symbol = d.raw_symbol,
                        root_symbol = coalesce(nullif(d.asset, ''), substring(d.raw_symbol FROM %(root)s))
                    FROM (SELECT DISTINCT ON (instrument_id) instrument_id, raw_symbol, asset
                          FROM definitions_data {only} ORDER BY instrument_id, ts_event DESC) d
                    WHERE c.instrument_id = d.instrument_id""", {"ids": id_list, "root": ROOT_PATTERN})
    cur.execute(f"""UPDATE symbol_catalog c SET raw_symbol = v.symbol,
                        root_symbol = coalesce(c.root_symbol, substring(v.symbol FROM %(root)s))
                    FROM (SELECT DISTINCT ON (instrument_id) instrument_id, symbol FROM vendor_symbols {only}
                          ORDER BY instrument_id, last_date DESC) v
                    WHERE c.instrument_id = v.instrument_id AND c.raw_symbol IS NULL""",
                {"ids": id_list, "root": ROOT_PATTERN})


def refresh_after_load(db: Database, table: str, written: Any) -> None:
    """Refresh the catalogue rows of what a load wrote: `written` is the partition's key dict (replace) or the
    loaded Arrow table (upsert). A failure is logged, never raised: the data is stored, the next load or
    `hdi db catalog` repairs the catalogue."""
    try:
        with db.raw() as conn, conn.cursor() as cur:
            if table in ("continuous_bars", "roll_events") and isinstance(written, dict):
                symbol = written.get("continuous_symbol")
                symbols = [symbol] if symbol else _all_continuous(cur, table)
                (_refresh_continuous if table == "continuous_bars" else _refresh_rolls)(cur, symbols)
            elif table in VENDOR_TARGETS and "instrument_id" in getattr(written, "column_names", ()):
                import pyarrow.compute as pc

                ids = pc.unique(written.column("instrument_id")).to_pylist()
                if ids:
                    _refresh_vendor(cur, table, [i for i in ids if i is not None])
                    if table == "definitions_data":
                        name_instruments(cur, ids)
    except Exception as exc:  # noqa: BLE001 - the load itself succeeded; a stale catalogue is repairable
        log.warning("symbol catalogue refresh after %s load failed: %s", table, exc)


def _all_continuous(cur: Any, table: str) -> list[str]:
    cur.execute(f"SELECT DISTINCT continuous_symbol FROM {table}")  # table: one of two fixed names
    return [row[0] for row in cur.fetchall()]


def refresh_catalog(db: Database) -> int:
    """Rebuild the whole catalogue from the stored tables (one scan each); returns its row count."""
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute("LOCK TABLE symbol_catalog IN EXCLUSIVE MODE")
        cur.execute("DELETE FROM symbol_catalog")
        _refresh_continuous(cur, _all_continuous(cur, "continuous_bars"))
        _refresh_rolls(cur, _all_continuous(cur, "roll_events"))
        for table in VENDOR_TARGETS:
            cur.execute(f"SELECT DISTINCT instrument_id FROM {table}")  # table: from a fixed tuple
            ids = [row[0] for row in cur.fetchall()]
            if ids:
                _refresh_vendor(cur, table, ids)
        name_instruments(cur)
        cur.execute("SELECT count(*) FROM symbol_catalog")
        return int(cur.fetchone()[0])


def record_names(db: Database) -> None:
    """After new symbol mappings: name the catalogue's still unnamed instruments."""
    try:
        with db.raw() as conn, conn.cursor() as cur:
            name_instruments(cur)
    except Exception as exc:  # noqa: BLE001 - see refresh_after_load
        log.warning("symbol catalogue naming failed: %s", exc)


# -- lookups (the reads) ------------------------------------------------------------------------------------
def _ensure_filled(cur: Any, db: Database) -> None:
    """Data loaded before the catalogue existed: build it once (a cheap EXISTS per table otherwise)."""
    cur.execute("SELECT EXISTS (SELECT 1 FROM symbol_catalog)")
    if cur.fetchone()[0]:
        return
    for table in TARGETS:
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")  # table: from a fixed tuple
        if cur.fetchone()[0]:
            log.info("symbol catalogue empty over stored data; rebuilding it")
            refresh_catalog(db)
            return


def entries(cur: Any, db: Database, targets: Iterable[str]) -> list[Entry]:
    """Every catalogue row of these tables (a few hundred at most)."""
    _ensure_filled(cur, db)
    cur.execute(f"SELECT {_ENTRY_COLUMNS} FROM symbol_catalog WHERE target = ANY(%s) AND row_count > 0 "
                "ORDER BY target, symbol, granularity, adjustment_method", (list(targets),))
    return [Entry(*row) for row in cur.fetchall()]


def mapped_ids(cur: Any, symbol: str) -> set[int]:
    """Instrument ids the vendor's symbol mappings or definitions give a raw symbol (both indexed)."""
    cur.execute("""SELECT instrument_id FROM vendor_symbols WHERE symbol = %s
                   UNION SELECT instrument_id FROM definitions_data WHERE raw_symbol = %s""", (symbol, symbol))
    return {int(row[0]) for row in cur.fetchall()}


def known_symbols(rows: Iterable[Entry]) -> list[str]:
    """Names a user may type for these rows: roots, continuous symbols, raw symbols (ids when unnamed)."""
    names: set[str] = set()
    for e in rows:
        if e.root_symbol:
            names.add(e.root_symbol)
        if e.instrument_id is None:
            names.add(e.symbol)
        else:
            names.add(e.raw_symbol or e.symbol)
    return sorted(names)
