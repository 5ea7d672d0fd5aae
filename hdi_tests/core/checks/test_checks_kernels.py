"""The new failure modes of the checks, on small hand-made inputs: bad ticks, return outliers, calendar
coverage and silences, record order, the exact roll identity, reconciliation; and configs/checks.yaml."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from hdi_core.calendar import CHICAGO, NS, calendar_sessions
from hdi_core.checks import indicator_sanity, roll_continuity, timestamp_continuity
from hdi_core.checks.coverage import record_order, regular_hours, silences
from hdi_core.checks.ohlc import bad_ticks
from hdi_core.checks.reconcile import ohlcv_1m_reconciliation, volume_reconciliation
from hdi_core.config.checks import load_checks, thresholds_for
from hdi_core.continuous.bars import ohlcv_1s
from hdi_core.errors import HdiError

TICK = 250_000_000
MINUTE = 60 * NS


def ct(y: int, m: int, d: int, hh: int, mm: int = 0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=CHICAGO).timestamp()) * NS


def walk(n: int, seed: int = 3) -> np.ndarray:
    return 5000 * NS + np.cumsum(np.random.default_rng(seed).integers(-2, 3, n)) * TICK


def test_bad_tick_is_a_reverting_spike_of_one_contract() -> None:
    price = walk(2000)
    ts = np.arange(2000, dtype=np.int64) * NS
    iid = np.ones(2000, np.int64)
    assert bad_ticks(ts, price, iid, TICK)[0] == 0
    spiked = price.copy()
    spiked[700] += 200 * TICK
    count, examples, details = bad_ticks(ts, spiked, iid, TICK)
    assert count == 1 and examples[0]["tick_row"] == 700 and examples[0]["price"] == spiked[700]
    assert details["bad_tick_floor"] == 40 * TICK
    level = price.copy()
    level[700:] += 200 * TICK  # a jump that stays is not a bad print
    assert bad_ticks(ts, level, iid, TICK)[0] == 0
    other = iid.copy()
    other[700] = 2  # another contract's print: roll_continuity's business
    assert bad_ticks(ts, spiked, other, TICK)[0] == 0


def _bars(price: np.ndarray, session: np.ndarray) -> pa.Table:
    n = len(price)
    return pa.table({"ts_event": np.arange(n, dtype=np.int64) * 10 * NS, "open": price, "high": price, "low": price,
                     "close": price, "volume": np.ones(n, np.int64), "trade_count": np.ones(n, np.int64),
                     "session_id": session})


def test_return_outlier_unless_a_roll_or_session_edge_explains_it() -> None:
    price = walk(3000, seed=5)
    session = np.repeat([0, 1], 1500)
    jumped = price.copy()
    jumped[1000:] += 400 * TICK
    kw = {"tick_size": TICK, "step_ns": 10 * NS}
    assert indicator_sanity(_bars(price, session), session=session, **kw).passed
    outcome = indicator_sanity(_bars(jumped, session), session=session, **kw)
    assert not outcome.passed and outcome.details["return_outliers"] == 1
    explained = np.array([1000 * 10 * NS - NS])  # a roll switch inside that bar's interval
    assert indicator_sanity(_bars(jumped, session), session=session, explained_ns=explained, **kw).passed
    at_edge = price.copy()
    at_edge[1500:] += 400 * TICK  # the jump happens between two sessions
    assert indicator_sanity(_bars(at_edge, session), session=session, **kw).passed


def test_silence_and_missing_trade_date_against_the_calendar() -> None:
    sessions = calendar_sessions("CME Globex Equity", ct(2024, 3, 4, 0), ct(2024, 3, 9, 0))
    open_days = np.unique(sessions.trade_date)
    ts = np.concatenate([np.arange(o, c, 60 * NS) for o, c in zip(sessions.open_ns, sessions.close_ns, strict=True)])
    rng = np.random.default_rng(1)
    ticks = pa.table({"ts_event": ts, "price": walk(len(ts)), "size": rng.integers(1, 5, len(ts))})
    bars = ohlcv_1s(ticks, sessions)
    kw = {"expected_dates": open_days, "regular_minutes": (510, 900), "max_silence_minutes": 30}
    assert timestamp_continuity(bars, sessions, NS, **kw).passed
    hole = (ts >= ct(2024, 3, 6, 9)) & (ts < ct(2024, 3, 6, 10))
    outcome = timestamp_continuity(ohlcv_1s(ticks.filter(pa.array(~hole)), sessions), sessions, NS, **kw)
    assert not outcome.passed and outcome.details["long_silences"] == 1
    assert outcome.first_violations[0]["reason"] == "silence inside regular hours longer than the limit"
    day = sessions.trade_date[session_index_of(ts, sessions)] == np.datetime64("2024-03-07")
    outcome = timestamp_continuity(ohlcv_1s(ticks.filter(pa.array(~day)), sessions), sessions, NS, **kw)
    assert outcome.details["missing_trade_dates"] == 1 and outcome.details["long_silences"] == 0


def session_index_of(ts: np.ndarray, sessions) -> np.ndarray:
    from hdi_core.calendar import session_index

    return session_index(ts, sessions)


def test_regular_hours_clip_at_an_early_close_and_silences_count_edges() -> None:
    sessions = calendar_sessions("CME Globex Equity", ct(2024, 11, 27, 0), ct(2024, 11, 30, 0))  # Black Friday
    start, end = regular_hours(sessions, 510, 900)
    assert end[-1] == ct(2024, 11, 29, 12, 15)  # the 12:15 CT early close ends regular hours
    s, n = silences(np.array([start[0] + 5 * MINUTE]), NS, start[:1], end[:1], 30 * MINUTE)
    assert len(s) == 1 and s[0] == start[0] + 5 * MINUTE + NS  # from the last trade to the close


def test_record_order_and_duplicates_but_not_trades_sharing_a_timestamp() -> None:
    base = {"ts_event": [1, 2, 2, 3], "ts_recv": [10, 20, 20, 30], "sequence": [1, 2, 3, 4],
            "instrument_id": [7] * 4, "price": [5, 5, 5, 6], "size": [1, 1, 1, 2]}
    back, twice = record_order(pa.table(base))
    assert len(back) == 0 and len(twice) == 0
    dup = {k: v[:2] + [v[1]] + v[2:] for k, v in base.items()}
    assert record_order(pa.table(dup))[1].tolist() == [2]
    swapped = {k: [v[0], v[2], v[1], v[3]] if k != "ts_recv" else [10, 30, 20, 40] for k, v in base.items()}
    assert record_order(pa.table(swapped))[0].tolist() == [2]


def _rolled(gap_applied: int) -> tuple[pa.Table, pa.Table]:
    ts = np.array([1, 2, 3, 4], np.int64) * NS
    raw = np.array([100, 101, 111, 112], np.int64) * NS  # new contract 10 above: its first print at 111
    iid = np.array([1, 1, 2, 2], np.int64)
    adjusted = raw + np.where(ts < 3 * NS, gap_applied, 0)
    ticks = pa.table({"ts_event": ts, "price": raw, "instrument_id": iid, "adjusted_price": adjusted})
    events = pa.table({"switch_ns": [3 * NS], "old_price": [100 * NS], "new_price": [109 * NS],
                       "old_instrument_id": [1], "new_instrument_id": [2], "roll_gap": [9 * NS]})
    return ticks, events


@pytest.mark.parametrize(("applied", "reason"), [(9 * NS, None), (0, "roll left unadjusted"),
                                                 (-9 * NS, "gap has the wrong sign"),
                                                 (10 * NS, "gap measured across the overnight move "
                                                           "(last old trade vs first new trade)"),
                                                 (8 * NS, "jump differs from new move minus old move")])
def test_roll_identity_is_exact(applied: int, reason: str | None) -> None:
    ticks, events = _rolled(applied)
    outcome = roll_continuity(ticks, None, events)
    assert outcome.passed is (reason is None)
    if reason:
        assert outcome.first_violations[0]["reason"] == reason


def test_ratio_identity_and_a_contract_change_without_its_roll() -> None:
    ticks, events = _rolled(0)
    ratio = 109 / 100
    adjusted = np.rint(ticks["price"].to_numpy() * np.where(ticks["ts_event"].to_numpy() < 3 * NS, ratio, 1.0))
    ratio_ticks = ticks.set_column(3, "adjusted_price", pa.array(adjusted.astype(np.int64)))
    assert roll_continuity(ratio_ticks, None, events, method="ratio_backward").passed
    ok, _ = _rolled(9 * NS)
    outcome = roll_continuity(ok, None, events.slice(0, 0))
    assert outcome.details["changes_without_roll"] == 1
    assert outcome.first_violations[0]["reason"] == "instrument change without a roll event"


def test_volume_and_one_minute_reconciliation() -> None:
    sessions = calendar_sessions("CME Globex Equity", ct(2024, 3, 4, 0), ct(2024, 3, 7, 0))
    ts = np.array([sessions.open_ns[0] + MINUTE, sessions.open_ns[0] + 2 * MINUTE, sessions.open_ns[1] + MINUTE])
    ticks = pa.table({"ts_event": ts, "instrument_id": [5, 5, 5], "size": [2, 3, 4]})
    day = [np.datetime64(d, "ns").astype(np.int64) for d in sessions.trade_date[:2]]
    stats = pa.table({"stat_type": [6, 6, 3], "instrument_id": [5, 5, 5], "ts_ref": [day[0], day[1], day[1]],
                      "quantity": [5, 9, 2**31 - 1]})
    outcome = volume_reconciliation(ticks, sessions, stats, int(sessions.close_ns[1]))
    assert not outcome.passed and outcome.violations == 1
    assert outcome.first_violations[0]["cleared_volume"] == 9 and outcome.first_violations[0]["tick_volume"] == 4
    bars = pa.table({"ts_event": [0, 60], "open": [1, 2], "high": [1, 2], "low": [1, 2], "close": [1, 2],
                     "volume": [1, 1]})
    assert ohlcv_1m_reconciliation(bars, bars, 0).passed
    assert ohlcv_1m_reconciliation(bars, bars.slice(0, 1), 0).violations == 1


def test_checks_yaml_defaults_overrides_and_errors(tmp_path, monkeypatch) -> None:
    assert thresholds_for("ZC").continuity.regular_hours == ("08:30", "13:20")
    assert thresholds_for("ES").continuity.max_silence_minutes == 30
    assert load_checks().defaults.severity.ohlcv_1m_reconciliation == "warn"
    monkeypatch.setenv("HDI_CONFIG_DIR", str(tmp_path))
    (tmp_path / "checks.yaml").write_text("defaults:\n  bad_tick:\n    min_jump_tick: 3\n")
    with pytest.raises(HdiError, match=r"checks.yaml: defaults.bad_tick.min_jump_tick: Extra inputs"):
        load_checks()
    (tmp_path / "checks.yaml").write_text("products:\n  ES:\n    continuity: {max_silence: 3}\n")
    with pytest.raises(HdiError, match=r"checks.yaml: products.ES.continuity.max_silence"):
        load_checks()


def test_dense_filled_seconds_are_counted_and_capped() -> None:
    sessions = calendar_sessions("CME Globex Equity", ct(2024, 3, 5, 0), ct(2024, 3, 6, 0))
    open_ns = int(sessions.open_ns[0])
    ts = open_ns + np.array([0, 1, 600], np.int64) * NS  # ten minutes between the last two trades
    bars = ohlcv_1s(pa.table({"ts_event": ts, "price": walk(3), "size": [1, 1, 1]}), sessions, dense=True)
    assert timestamp_continuity(bars, sessions, NS, dense=True).details["filled_bars"] == 598
    capped = timestamp_continuity(bars, sessions, NS, dense=True, max_filled_fraction=0.5)
    assert not capped.passed and capped.first_violations[-1]["reason"] == "too many filled (invented) bars"


def test_warn_results_are_shown_but_do_not_fail_the_report() -> None:
    from dagster import AssetCheckSeverity

    from hdi_assets.continuous.checks import check_result
    from hdi_core.checks import CheckOutcome, validation_report

    warn = CheckOutcome("ohlcv_1m_reconciliation", False, 3, {"minutes_compared": 10}, [{"reason": "x"}],
                        {"price_tolerance": 0}, "warn")
    error = CheckOutcome("ohlc_integrity", False, 1, {}, [], {"min_jump_ticks": 40})
    assert check_result(warn, "ohlcv_1s").severity == AssetCheckSeverity.WARN
    assert check_result(error, "ohlcv_1s").severity == AssetCheckSeverity.ERROR
    assert check_result(warn, "ohlcv_1s").metadata["thresholds"].value == {"price_tolerance": 0}
    assert validation_report([warn])["passed"] is True
    assert validation_report([warn, error])["passed"] is False
