"""Reconciliation against the exchange's own numbers: cleared volume, and the vendor's 1-minute bars.

Pure: the asset fetches the statistics and ohlcv-1m records through the Databento resource and passes them in.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hdi_core.calendar.arrays import Sessions, session_index
from hdi_core.checks.common import MAX_EXAMPLES, CheckOutcome, _iso, _plain
from hdi_core.continuous.bars import column_i64

STAT_CLEARED_VOLUME = 6  # Databento statistics stat_type: cleared volume of the trade date
UNDEF_STAT_QUANTITY = 2**31 - 1  # Databento's "no value" of a statistic's quantity (int32 max)
OHLC = ("open", "high", "low", "close")


def single_contract_dates(ts: np.ndarray, iid: np.ndarray, sessions: Sessions,
                          complete_until_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(trade dates, instrument) of the dates whose ticks are all of one contract and whose last segment has
    closed by complete_until_ns: the dates on which the continuous series holds a contract's whole day."""
    idx = session_index(ts, sessions)
    inside = idx >= 0
    day = sessions.trade_date[idx[inside]].astype(np.int64)
    pairs = np.unique(np.stack([day, iid[inside]]), axis=1) if inside.any() else np.zeros((2, 0), np.int64)
    days, n_ids = np.unique(pairs[0], return_counts=True)
    last_close = np.maximum.reduceat(sessions.close_ns, np.flatnonzero(
        np.r_[True, sessions.trade_date[1:] != sessions.trade_date[:-1]])) if len(sessions) else np.zeros(0)
    closed_days = np.unique(sessions.trade_date).astype(np.int64)[last_close <= complete_until_ns]
    keep = (n_ids == 1) & np.isin(days, closed_days)
    one_iid = pairs[1][np.searchsorted(pairs[0], days[keep])]
    return days[keep].astype("datetime64[D]"), one_iid


def volume_reconciliation(ticks: pa.Table, sessions: Sessions, statistics: pa.Table, complete_until_ns: int,
                          drop_rows: np.ndarray | None = None, skip_dates: np.ndarray | None = None) -> CheckOutcome:
    """Per contract and trade date, the ticks' volume equals the exchange's cleared volume (stat_type 6).

    Only dates on which the continuous ticks hold one contract's whole day are comparable (a roll date splits
    it); a date without a published cleared volume is counted, not failed. `drop_rows` (records delivered
    twice, reported by timestamp_continuity) are left out, and `skip_dates` (trade dates another check already
    failed, e.g. an outage) are not compared, so each defect fails one check.
    """
    ts, iid, size = (column_i64(ticks, k) for k in ("ts_event", "instrument_id", "size"))
    if drop_rows is not None and len(drop_rows):
        keep = np.ones(len(ts), bool)
        keep[drop_rows] = False
        ts, iid, size = ts[keep], iid[keep], size[keep]
    days, contract = single_contract_dates(ts, iid, sessions, complete_until_ns)
    skipped = np.isin(days, np.asarray(skip_dates if skip_dates is not None else [], "datetime64[D]"))
    days, contract = days[~skipped], contract[~skipped]
    idx = session_index(ts, sessions)
    tick_day = np.where(idx >= 0, sessions.trade_date[np.maximum(idx, 0)].astype(np.int64), -1)
    order = np.argsort(tick_day, kind="stable")
    starts = np.searchsorted(tick_day[order], days.astype(np.int64), side="left")
    ends = np.searchsorted(tick_day[order], days.astype(np.int64), side="right")
    csum = np.r_[0, np.cumsum(size[order])]
    tick_volume = csum[ends] - csum[starts]
    stats = statistics.filter(pc.equal(statistics["stat_type"], STAT_CLEARED_VOLUME)) \
        if statistics.num_rows else statistics
    s_iid, s_qty = column_i64(stats, "instrument_id"), column_i64(stats, "quantity")
    s_day = column_i64(stats, "ts_ref").astype("datetime64[ns]").astype("datetime64[D]").astype(np.int64)
    valid = s_qty != UNDEF_STAT_QUANTITY
    key_stats = s_day[valid] * 2**24 + s_iid[valid]  # last published value per (date, contract) wins
    order_s = np.argsort(key_stats, kind="stable")
    key_sorted, qty_sorted = key_stats[order_s], s_qty[valid][order_s]
    key = days.astype(np.int64) * 2**24 + contract
    pos = np.searchsorted(key_sorted, key, side="right") - 1
    found = (pos >= 0) & (key_sorted[np.maximum(pos, 0)] == key) if len(key_sorted) else np.zeros(len(key), bool)
    cleared = np.where(found, qty_sorted[np.maximum(pos, 0)] if len(qty_sorted) else 0, -1)
    bad = found & (cleared != tick_volume)
    examples = [{"trade_date": str(days[k]), "instrument_id": int(contract[k]), "tick_volume": int(tick_volume[k]),
                 "cleared_volume": int(cleared[k]), "reason": "tick volume differs from the exchange's cleared volume"}
                for k in np.flatnonzero(bad)[:MAX_EXAMPLES]]
    count = int(bad.sum())
    details = {"comparable_dates": len(days), "dates_left_to_other_checks": int(skipped.sum()),
               "dates_with_cleared_volume": int(found.sum()),
               "dates_without_cleared_volume": int((~found).sum()), "mismatches": count}
    return CheckOutcome("volume_reconciliation", count == 0, count, details, examples, {"volume": "exact"})


def ohlcv_1m_reconciliation(hdi: pa.Table, vendor: pa.Table, tolerance: int) -> CheckOutcome:
    """HDI's 1-minute bars of one contract equal the vendor's ohlcv-1m on the same minutes: both bucket by the
    interval start (ts_event = minute start, UTC; sessions open on whole minutes, so the anchors agree); prices
    within `tolerance` (fixed point), volume exactly; a minute on one side only is a mismatch."""
    h_ts, v_ts = column_i64(hdi, "ts_event"), column_i64(vendor, "ts_event")
    both = np.intersect1d(h_ts, v_ts)
    only = np.setxor1d(h_ts, v_ts)
    hi, vi = np.searchsorted(h_ts, both), np.searchsorted(v_ts, both)
    worst = np.zeros(len(both), np.int64)
    for name in OHLC:  # four columns, not a loop over bars
        worst = np.maximum(worst, np.abs(column_i64(hdi, name)[hi] - column_i64(vendor, name)[vi]))
    vol_bad = column_i64(hdi, "volume")[hi] != column_i64(vendor, "volume")[vi]
    bad = (worst > tolerance) | vol_bad
    examples = [{"ts_event": _iso(t), "reason": "minute on one side only"} for t in only[:MAX_EXAMPLES]]
    examples += [{"ts_event": _iso(both[k]), "max_price_difference": int(worst[k]),
                  "hdi_volume": int(column_i64(hdi, "volume")[hi[k]]),
                  "vendor_volume": int(column_i64(vendor, "volume")[vi[k]]),
                  "reason": "bar differs from the vendor's ohlcv-1m"} for k in np.flatnonzero(bad)[:MAX_EXAMPLES]]
    count = int(bad.sum()) + len(only)
    details = {"minutes_compared": len(both), "minutes_on_one_side": len(only), "mismatches": int(bad.sum()),
               "max_price_difference": int(worst.max()) if len(worst) else 0}
    return CheckOutcome("ohlcv_1m_reconciliation", count == 0, count, _plain(details), examples[:MAX_EXAMPLES],
                        {"price_tolerance": tolerance, "volume": "exact"})
