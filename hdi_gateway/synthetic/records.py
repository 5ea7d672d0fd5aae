"""DBN v3 record arrays of the synthetic market, filled column by column from the model's columns (no per-tick
Python objects): trades, tbbo, OHLCV bars, statistics and definitions."""

from __future__ import annotations

from collections.abc import Iterator

import databento_dbn as dbn
import numpy as np

from hdi_gateway.exchange_calendar import DAY_NS, NS
from hdi_gateway.synthetic.prices import SessionPlan
from hdi_gateway.synthetic.products import (
    FIXED,
    PUBLISHER_ID,
    UNDEF_PRICE,
    Contracts,
    Product,
)

UNDEF_STAT_QUANTITY = dbn.UNDEF_STAT_QUANTITY
UNDEF_TIMESTAMP = dbn.UNDEF_TIMESTAMP
INT32_MAX = 2**31 - 1

TRADE_DTYPE = np.dtype(dbn.v3.TradeMsg._dtypes)
MBP1_DTYPE = np.dtype(dbn.v3.MBP1Msg._dtypes)
OHLCV_DTYPE = np.dtype(dbn.v3.OHLCVMsg._dtypes)
STAT_DTYPE = np.dtype(dbn.v3.StatMsg._dtypes)
DEFINITION_DTYPE = np.dtype(dbn.v3.InstrumentDefMsg._dtypes)

RTYPE_MBP0, RTYPE_MBP1, RTYPE_DEFINITION, RTYPE_STATISTICS = 0x00, 0x01, 0x13, 0x18
OHLCV_RTYPE = {"ohlcv-1s": 0x20, "ohlcv-1m": 0x21, "ohlcv-1h": 0x22, "ohlcv-1d": 0x23}
OHLCV_INTERVAL_NS = {"ohlcv-1s": NS, "ohlcv-1m": 60 * NS, "ohlcv-1h": 3600 * NS, "ohlcv-1d": DAY_NS}
STAT_SETTLEMENT, STAT_OPEN_INTEREST, STAT_CLEARED_VOLUME = 3, 9, 6
# CME SettlPriceType bits (stat_flags): final (1) | actual (2); a preliminary settlement lacks the final bit
SETTLEMENT_FINAL_FLAGS, SETTLEMENT_PRELIMINARY_FLAGS = 3, 2
PRELIMINARY_DELAY_NS = 15 * 60 * NS  # preliminary settlement 15 min after the close, inside the halt
OPEN_INTEREST_DELAY_NS = 40 * 60 * NS
# the final settlement comes hours later: after 00:00 UTC for a 16:00 CT close, so ts_recv is the next UTC day
FINAL_DELAY_NS = 150 * 60 * NS
STATISTICS_LAST_DELAY_NS = max(PRELIMINARY_DELAY_NS, OPEN_INTEREST_DELAY_NS, FINAL_DELAY_NS)
FILL_BLOCK_BYTES = 1 << 20  # records filled per step: the block stays in cache while every field is written


def blocks(cols: dict[str, np.ndarray], n: int, itemsize: int) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """(lo, hi, columns[lo:hi]) in cache-sized steps, so a record block is written field by field in cache."""
    step = max(1024, FILL_BLOCK_BYTES // itemsize)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        yield lo, hi, {k: v[lo:hi] for k, v in cols.items()}


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


def _fill_tbbo_fields(out: np.ndarray, cols: dict[str, np.ndarray]) -> None:
    """Each trade with the order book's BBO just before it (book.py: the side the aggressor took sits at the
    trade price with at least the trade's size)."""
    _fill_trade_fields(out, cols, RTYPE_MBP1)
    for side in ("bid", "ask"):
        for field in ("px", "sz", "ct"):
            out[f"{side}_{field}_00"] = cols[f"{side}_{field}"]


def trade_records(parts: list[dict[str, np.ndarray]], tbbo: bool = False) -> np.ndarray:
    """Trades (or tbbo) records of column parts, filled in place part by part: no full-size intermediates."""
    out = np.zeros(sum(len(p["ts_event"]) for p in parts), dtype=MBP1_DTYPE if tbbo else TRADE_DTYPE)
    at = 0
    for cols in parts:
        n = len(cols["ts_event"])
        for lo, hi, block in blocks(cols, n, out.dtype.itemsize):
            if tbbo:
                _fill_tbbo_fields(out[at + lo:at + hi], block)
            else:
                _fill_trade_fields(out[at + lo:at + hi], block, RTYPE_MBP0)
        at += n
    return out


def ohlcv_records(schema: str, cols: dict[str, np.ndarray], lo: int, start_ns: int, end_ns: int) -> np.ndarray:
    """Bars from trade columns (ts_event >= lo): ts_event = interval start, no bar for an empty interval."""
    interval = OHLCV_INTERVAL_NS[schema]
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


def statistics_records(plan: SessionPlan, contracts: Contracts, settlement: np.ndarray,
                       trade_date_ns: int) -> np.ndarray:
    """Per listed contract: preliminary settlement, open interest, cleared volume (the trade date's trade sizes
    summed, as the session's trades), then the final settlement (stat 3, 9, 6, 3)."""
    n = len(plan.contract_index)
    out = np.zeros(4 * n, dtype=STAT_DTYPE)
    out["length"] = STAT_DTYPE.itemsize // 4
    out["rtype"] = RTYPE_STATISTICS
    out["publisher_id"] = PUBLISHER_ID
    out["instrument_id"] = np.tile(contracts.instrument_id[plan.contract_index], 4)
    offsets = np.arange(n, dtype=np.int64) * 1_000  # one packet per contract, in listing order
    recv = np.concatenate([plan.close_ns + PRELIMINARY_DELAY_NS + offsets,
                           plan.close_ns + OPEN_INTEREST_DELAY_NS + offsets,
                           plan.close_ns + OPEN_INTEREST_DELAY_NS + 500 + offsets,  # with open interest
                           plan.close_ns + FINAL_DELAY_NS + offsets])
    out["ts_recv"] = recv
    out["ts_event"] = recv - 20_000
    out["ts_in_delta"] = 15_000
    out["ts_ref"] = trade_date_ns  # the trade date the statistic applies to
    undef_price = np.full(n, UNDEF_PRICE, dtype=np.int64)
    undef_quantity = np.full(n, UNDEF_STAT_QUANTITY, dtype=np.int64)
    out["price"] = np.concatenate([settlement, undef_price, undef_price, settlement])
    out["quantity"] = np.concatenate([undef_quantity, plan.open_interest, plan.volume, undef_quantity])
    out["stat_type"] = np.repeat([STAT_SETTLEMENT, STAT_OPEN_INTEREST, STAT_CLEARED_VOLUME, STAT_SETTLEMENT], n)
    out["stat_flags"] = np.repeat([SETTLEMENT_PRELIMINARY_FLAGS, 255, 255, SETTLEMENT_FINAL_FLAGS], n)
    out["update_action"] = 1  # StatUpdateAction.NEW
    out["sequence"] = 1 + np.arange(4 * n)
    return out


def definition_records(product: Product, plan: SessionPlan, c: Contracts, opening_level: float) -> np.ndarray:
    """One definition per listed contract at the trade date's open (or at a mid-session listing)."""
    root = product.root
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
    limit_tick = product.tick / FIXED
    out["high_limit_price"] = np.int64(np.rint(opening_level * 1.07 / limit_tick)) * product.tick
    out["low_limit_price"] = np.int64(np.rint(opening_level * 0.93 / limit_tick)) * product.tick
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


def select_by_recv(out: np.ndarray, ids: np.ndarray | None, start_ns: int, end_ns: int) -> np.ndarray:
    keep = (out["ts_recv"] >= np.uint64(max(start_ns, 0))) & (out["ts_recv"] < np.uint64(max(end_ns, 0)))
    if ids is not None:
        keep &= np.isin(out["instrument_id"], ids)
    out = out[keep]
    return out[np.lexsort((out["instrument_id"], out["ts_recv"]))]
