"""The symbol catalogue (migration 0008): one small row per stored series with its row count and time span.

Loads call `refresh_after_load` for what they wrote; reads call `entries` / `known_symbols` instead of scanning
the big tables. An empty catalogue over stored data (data loaded before 0008) is rebuilt once, on first read."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .core import Database

log = logging.getLogger(__name__)

VENDOR_TARGETS = ("ohlcv_data", "trades_data", "tbbo_data", "statistics_data", "definitions_data")
TARGETS = ("continuous_bars", "roll_events", *VENDOR_TARGETS)
# A futures outright's root: ESU4 -> ES, ESZ24 -> ES (month code, then a 1-2 digit year); spreads stay NULL.
ROOT_PATTERN = "^([A-Z0-9]+?)[FGHJKMNQUVXZ][0-9]{1,2}$"
EPOCH_START = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # "every instant" for a whole rebuild
EPOCH_END = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)

_PART_COLUMNS = ("target, symbol, part, granularity, adjustment_method, instrument_id, root_symbol, row_count, "
                 "min_ts, max_ts, min_trade_date, max_trade_date")
# continuous_bars key columns -> symbol_catalog_parts columns (a replace names its partition with these)
_BAR_KEYS = {"continuous_symbol": "symbol", "window": "part", "granularity": "granularity",
             "adjustment_method": "adjustment_method"}


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
def _roll_up(cur: Any, target: str, where: str, params: list[Any]) -> None:
    """Sum the parts of the series matching `where` (on symbol_catalog columns) into symbol_catalog."""
    cur.execute(f"DELETE FROM symbol_catalog WHERE target = %s AND {where}", [target, *params])
    cur.execute(f"""INSERT INTO symbol_catalog (target, symbol, granularity, adjustment_method, instrument_id,
                        root_symbol, row_count, min_ts, max_ts, min_trade_date, max_trade_date)
                    SELECT target, symbol, granularity, adjustment_method, min(instrument_id), min(root_symbol),
                           sum(row_count), min(min_ts), max(max_ts), min(min_trade_date), max(max_trade_date)
                    FROM symbol_catalog_parts WHERE target = %s AND {where}
                    GROUP BY target, symbol, granularity, adjustment_method""", [target, *params])


def _refresh_bars(cur: Any, keys: dict[str, Any], span: tuple[Any, Any] | None) -> None:
    """Recount one replaced partition of continuous_bars (a window: bounded to its time span when known)."""
    known = {k: str(v) for k, v in keys.items() if k in _BAR_KEYS}
    part_where = " AND ".join(f"{_BAR_KEYS[k]} = %s" for k in known)
    cur.execute(f"DELETE FROM symbol_catalog_parts WHERE target = 'continuous_bars' AND {part_where}",
                list(known.values()))
    if span is not None:
        bar_where = " AND ".join(f'"{k}"::text = %s' if k == "window" else f"{k} = %s" for k in known)
        cur.execute(f"""INSERT INTO symbol_catalog_parts ({_PART_COLUMNS})
                        SELECT 'continuous_bars', continuous_symbol, "window"::text, granularity, adjustment_method,
                               NULL, min(root_symbol), count(*), min(ts), max(ts), min(trade_date), max(trade_date)
                        FROM continuous_bars WHERE {bar_where} AND ts >= %s AND ts <= %s
                        GROUP BY continuous_symbol, "window", granularity, adjustment_method""",
                    [*known.values(), *span])
    _roll_up(cur, "continuous_bars", "symbol = %s", [known["continuous_symbol"]])


def record_bars_load(cur: Any, keys: dict[str, Any], rows: Any) -> None:
    """In a bars load's own transaction, after it stored `rows` (Arrow) as the partition `keys`: the window's
    catalogue parts counted from those rows (no rescan of what was just written), then the symbol's roll-up.
    Readers see the new rows and their counts in one commit. Without a window key: the scan of _refresh_bars."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .binary import to_days, to_unix_micros
    from .tables import from_micros

    cur.execute("SELECT pg_advisory_xact_lock(hashtext('hdi_symbol_catalog'), hashtext('continuous_bars'))")
    known = {k: str(v) for k, v in keys.items() if k in _BAR_KEYS}
    if "window" not in known or "continuous_symbol" not in known:
        _refresh_bars(cur, keys, _loaded_span(cur, "continuous_bars", keys))
        return
    part_where = " AND ".join(f"{_BAR_KEYS[k]} = %s" for k in known)
    cur.execute(f"DELETE FROM symbol_catalog_parts WHERE target = 'continuous_bars' AND {part_where}",
                list(known.values()))
    groups = [c for c in ("granularity", "adjustment_method") if c not in known]
    if rows.num_rows:
        plain = {c: rows.column(c).combine_chunks() for c in groups}
        plain = {c: (a.dictionary_decode() if pa.types.is_dictionary(a.type) else a).cast(pa.string())
                 for c, a in plain.items()}
        if all(len(pc.unique(a)) == 1 for a in plain.values()):  # the usual case: one series per window
            index = pa.array(np.zeros(rows.num_rows, dtype=np.int32))
            labels: list[dict[str, str]] = [{c: a[0].as_py() for c, a in plain.items()}]
        else:
            combined = pc.binary_join_element_wise(*plain.values(), "\x1f")
            encoded = pc.dictionary_encode(combined)
            index = encoded.indices
            labels = [dict(zip(groups, str(v).split("\x1f"), strict=True)) for v in encoded.dictionary.to_pylist()]
        micros = to_unix_micros(rows.column("ts").combine_chunks(), "ts")[0]
        days = to_days(rows.column("trade_date").combine_chunks(), "trade_date")[0].astype(np.int64)
        roots = rows.column("root_symbol").combine_chunks()
        roots = (roots.dictionary_decode() if pa.types.is_dictionary(roots.type) else roots).cast(pa.string())
        group_of_row = index.to_numpy(zero_copy_only=False)
        epoch = dt.date(1970, 1, 1)
        for g, label in enumerate(labels):
            mask = group_of_row == g if len(labels) > 1 else slice(None)
            values = {**known, **label}
            cur.execute(f"""INSERT INTO symbol_catalog_parts ({_PART_COLUMNS})
                            SELECT 'continuous_bars', %s, %s::date::text, %s, %s, NULL,
                                   (SELECT min(r) FROM unnest(%s::text[]) r), %s, %s, %s, %s, %s""",
                        (values["continuous_symbol"], values["window"], values["granularity"],
                         values["adjustment_method"],
                         pc.unique(roots if len(labels) == 1 else roots.filter(pa.array(mask))).to_pylist(),
                         int(micros[mask].size), from_micros(int(micros[mask].min())),
                         from_micros(int(micros[mask].max())), epoch + dt.timedelta(days=int(days[mask].min())),
                         epoch + dt.timedelta(days=int(days[mask].max()))))
    _roll_up(cur, "continuous_bars", "symbol = %s", [known["continuous_symbol"]])


def _refresh_rolls(cur: Any, symbols: Iterable[str]) -> None:
    """roll_events is small: recount the symbols' rows whole."""
    symbols = sorted(set(symbols))
    cur.execute("DELETE FROM symbol_catalog_parts WHERE target = 'roll_events' AND symbol = ANY(%s)", (symbols,))
    cur.execute(f"""INSERT INTO symbol_catalog_parts ({_PART_COLUMNS})
                    SELECT 'roll_events', continuous_symbol, '', '', method, NULL,
                           split_part(continuous_symbol, '.', 1), count(*), min(switch_ts), max(switch_ts),
                           min(switch_ts)::date, max(switch_ts)::date
                    FROM roll_events WHERE continuous_symbol = ANY(%s) GROUP BY continuous_symbol, method""",
                (symbols,))
    _roll_up(cur, "roll_events", "symbol = ANY(%s)", [symbols])


def _refresh_vendor(cur: Any, table: str, ids: Iterable[int], span: tuple[Any, Any] | None) -> None:
    """Recount the UTC days of `span` of these instruments in one vendor table (its primary key leads with
    instrument_id, ts_event: an index range per instrument); span None: their whole history."""
    from psycopg2 import sql

    ids = sorted({int(i) for i in ids})
    days = (span[0].date().isoformat(), span[1].date().isoformat()) if span else ("", "9999")
    cur.execute("""DELETE FROM symbol_catalog_parts WHERE target = %s AND instrument_id = ANY(%s)
                   AND part >= %s AND part <= %s""", (table, ids, *days))
    bounded = sql.SQL("AND ts_event >= %s::date AND ts_event < %s::date + 1" if span else "")
    gran = sql.SQL("granularity" if table == "ohlcv_data" else "''")
    cur.execute(sql.SQL("""INSERT INTO symbol_catalog_parts ({columns})
                           SELECT {target}, instrument_id::text, (ts_event::date)::text, {gran}, '', instrument_id,
                                  NULL, count(*), min(ts_event), max(ts_event), min(ts_event)::date,
                                  max(ts_event)::date
                           FROM {table} WHERE instrument_id = ANY(%s) {bounded}
                           GROUP BY instrument_id, ts_event::date{more}""").format(
        columns=sql.SQL(_PART_COLUMNS), target=sql.Literal(table), gran=gran, table=sql.Identifier(table),
        bounded=bounded, more=sql.SQL(", granularity" if table == "ohlcv_data" else "")),
        (ids, *days) if span else (ids,))
    _roll_up(cur, table, "instrument_id = ANY(%s)", [ids])
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


def _loaded_span(cur: Any, table: str, keys: dict[str, Any]) -> tuple[Any, Any] | None:
    """The [first, last] instant replace_partition just recorded for this partition (None: it is empty)."""
    import json

    cur.execute('SELECT min_ts, max_ts FROM hdi_loaded_partitions WHERE target = %s AND "partition" = %s',
                (table, json.dumps(keys, default=str, sort_keys=True)))
    row = cur.fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def refresh_after_load(db: Database, table: str, written: Any) -> None:
    """Recount what a load wrote: `written` is the partition's key dict (replace) or the loaded Arrow table
    (upsert). A failure is logged, never raised: the data is stored, and `hdi db catalog` rebuilds."""
    try:
        with db.raw() as conn, conn.cursor() as cur:
            # one refresh of a table at a time: two concurrent roll-ups of a symbol would clash on its rows
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('hdi_symbol_catalog'), hashtext(%s))", (table,))
            if table == "continuous_bars" and isinstance(written, dict) and "continuous_symbol" in written:
                _refresh_bars(cur, written, _loaded_span(cur, table, written))
            elif table == "roll_events" and isinstance(written, dict):
                symbol = written.get("continuous_symbol")
                _refresh_rolls(cur, [symbol] if symbol else _all_continuous(cur, table))
            elif table in VENDOR_TARGETS and "instrument_id" in getattr(written, "column_names", ()):
                import pyarrow.compute as pc

                from .tables import table_info, time_range

                ids = [i for i in pc.unique(written.column("instrument_id")).to_pylist() if i is not None]
                if ids:
                    _refresh_vendor(cur, table, ids, time_range(table_info(db, table), written))
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
        cur.execute("LOCK TABLE symbol_catalog, symbol_catalog_parts IN EXCLUSIVE MODE")
        cur.execute("DELETE FROM symbol_catalog_parts")
        cur.execute("DELETE FROM symbol_catalog")
        for symbol in _all_continuous(cur, "continuous_bars"):
            _refresh_bars(cur, {"continuous_symbol": symbol}, (EPOCH_START, EPOCH_END))
        _refresh_rolls(cur, _all_continuous(cur, "roll_events"))
        for table in VENDOR_TARGETS:
            cur.execute(f"SELECT DISTINCT instrument_id FROM {table}")  # table: from a fixed tuple
            ids = [row[0] for row in cur.fetchall()]
            if ids:
                _refresh_vendor(cur, table, ids, None)
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
