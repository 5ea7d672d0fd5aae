"""The chain's asset checks: thresholds from configs/checks.yaml, the pure checks of hdi_core.checks, and the
reconciliation fetches through the Databento resource; results as AssetCheckResults with their metadata."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, MetadataValue

from hdi_assets.partitions import ProductConfig
from hdi_core import checks
from hdi_core.calendar import Sessions, session_index
from hdi_core.checks.common import MAX_EXAMPLES, WARN, CheckOutcome
from hdi_core.checks.coverage import record_order
from hdi_core.checks.reconcile import ohlcv_1m_reconciliation, single_contract_dates, volume_reconciliation
from hdi_core.config.checks import CheckThresholds, thresholds_for
from hdi_core.continuous import bars
from hdi_core.units import NS
from hdi_resources.databento import DatabentoResource

RECONCILIATION_CHECKS = ("volume_reconciliation", "ohlcv_1m_reconciliation")
ONE_SECOND_CHECKS = (*checks.CHECKPOINTS, *RECONCILIATION_CHECKS)
DERIVED_BAR_CHECKS = ("session_alignment", "no_nan_or_inf")
ADJUSTMENT_CHECKS = ("roll_continuity", "within_contract_changes")


def thresholds(product: ProductConfig) -> CheckThresholds:
    return thresholds_for(product.symbol)


def with_severity(outcome: CheckOutcome, limits: CheckThresholds) -> CheckOutcome:
    """The outcome with the severity configured for its check."""
    return outcome.with_thresholds(getattr(limits.severity, outcome.name, "error"))


def check_result(outcome: CheckOutcome, asset_name: str) -> AssetCheckResult:
    """Counts, thresholds and the first violations as metadata; ERROR blocks the load, WARN is only shown."""
    severity = AssetCheckSeverity.WARN if outcome.severity == WARN else AssetCheckSeverity.ERROR
    scalars = {k: v for k, v in outcome.details.items() if isinstance(v, int | float | str | bool)}
    return AssetCheckResult(
        check_name=outcome.name,
        asset_key=asset_name,
        passed=bool(outcome.passed),
        severity=severity,
        metadata={
            "violations": outcome.violations,
            **scalars,
            "thresholds": MetadataValue.json(outcome.thresholds),
            "first_violations": MetadataValue.json(outcome.first_violations),
        },
    )


def report_json(outcomes: list[CheckOutcome]) -> str:
    return json.dumps(checks.validation_report(outcomes), indent=2)


def explained_times(ticks: pa.Table, events: pa.Table) -> np.ndarray:
    """Times a big return is explained by: every roll switch and every change of instrument in the ticks."""
    ts = ticks["ts_event"].to_numpy()
    iid = ticks["instrument_id"].to_numpy()
    changes = ts[np.flatnonzero(iid[1:] != iid[:-1]) + 1]
    return np.unique(np.concatenate([events["switch_ns"].to_numpy().astype(np.int64), changes]))


def expected_trade_dates(calendar: Sessions, start_ns: int, data_end_ns: int) -> np.ndarray:
    """The trade dates the exchange had in the window, up to the data's available end."""
    whole = (calendar.open_ns >= start_ns) & (calendar.close_ns <= data_end_ns)
    return np.unique(calendar.trade_date[whole])


def one_second_outcomes(product: ProductConfig, ticks: pa.Table, delivered: pa.Table, second_bars: pa.Table,
                        bar_sessions: Sessions, calendar: Sessions, events: pa.Table, start_ns: int,
                        data_end_ns: int) -> list[CheckOutcome]:
    """The five checkpoints on the 1 s bars and the ticks they come from (`ticks` in ts_event order,
    `delivered` in the index-time order they were fetched in), with the product's thresholds."""
    limits = thresholds(product)
    cont = limits.continuity
    ind = limits.indicators
    bad = limits.bad_tick
    session = second_bars["session_id"].to_numpy()
    explained = explained_times(ticks, events)
    expected = expected_trade_dates(calendar, start_ns, data_end_ns)
    outcomes = checks.run_side_by_side([
        lambda: checks.session_alignment(second_bars, bar_sessions, NS),
        lambda: checks.ohlc_integrity(second_bars, ticks, product.tick_size, bad.min_jump_ticks, bad.jump_sigmas,
                                      bad.revert_fraction),
        lambda: checks.indicator_sanity(second_bars, ind.period, explained_ns=explained, step_ns=NS,
                                        tick_size=product.tick_size, max_return_sigmas=ind.max_return_sigmas,
                                        min_sigma_ticks=ind.min_sigma_ticks,
                                        max_silence_ns=int(cont.max_silence_minutes * 60 * NS), session=session),
        lambda: checks.timestamp_continuity(second_bars, bar_sessions, NS, product.dense_bars, expected_dates=expected,
                                            regular_minutes=cont.regular_minutes if cont.liquid else None,
                                            max_silence_minutes=cont.max_silence_minutes,
                                            max_filled_fraction=cont.max_filled_fraction, ticks=delivered,
                                            calendar=calendar),
        lambda: checks.no_nan_or_inf(second_bars),
    ])
    return [with_severity(o, limits) for o in outcomes]


def flagged_dates(outcomes: list[CheckOutcome], calendar: Sessions) -> np.ndarray:
    """Trade dates of the violations other checks reported (their first examples)."""
    stamps = [np.datetime64(str(row["ts_event"]).rstrip("Z"), "ns").astype(np.int64)
              for o in outcomes for row in o.first_violations if isinstance(row.get("ts_event"), str)]
    idx = session_index(np.asarray(stamps, dtype=np.int64), calendar)
    named = [np.datetime64(row["trade_date"], "D") for o in outcomes for row in o.first_violations
             if isinstance(row.get("trade_date"), str)]
    return np.unique(np.concatenate([calendar.trade_date[idx[idx >= 0]], np.asarray(named, "datetime64[D]")]))


def reconciliation_outcomes(context: AssetExecutionContext, databento: DatabentoResource, product: ProductConfig,
                            ticks: pa.Table, calendar: Sessions, data_end_ns: int,
                            others: list[CheckOutcome]) -> list[CheckOutcome]:
    """Tick volume vs the exchange's cleared volume, and sampled 1 m bars vs Databento's ohlcv-1m; each
    fetch priced first (cost in the metadata) and counted against the resource's budget. Trade dates on which
    `others` already reported a violation are left to them (one defect, one failing check)."""
    limits = thresholds(product)
    skip = flagged_dates(others, calendar)
    spec = limits.reconciliation
    raw_symbols = sorted({str(s) for s in ticks["raw_symbol"].to_pylist()}) if ticks.num_rows else []
    ids_by_symbol = _ids_by_symbol(ticks)
    outcomes = []
    if spec.volume and raw_symbols:
        start, end = int(calendar.open_ns.min()), databento.clamp_end(product.dataset, "statistics",
                                                                      int(calendar.close_ns.max()) + 2 * 86_400 * NS)
        cost = databento.get_cost(product.dataset, "statistics", raw_symbols, start, end, context=context)
        stats = databento.get_range(dataset=product.dataset, schema="statistics", symbols=raw_symbols,
                                    stype_in="raw_symbol", start=start, end=end, context=context).table
        _, twice = record_order(ticks)
        outcome = volume_reconciliation(ticks, calendar, stats, data_end_ns, drop_rows=twice, skip_dates=skip)
        outcomes.append(_costed(outcome, cost))
    else:
        outcomes.append(CheckOutcome("volume_reconciliation", True, 0, {"not_run": "disabled or no ticks"}))
    if spec.ohlcv_1m_sessions and ticks.num_rows:
        outcomes.append(_bars_vs_vendor(context, databento, product, ticks, calendar, data_end_ns,
                                        spec.ohlcv_1m_sessions, int(spec.ohlcv_1m_tolerance_ticks * product.tick_size),
                                        ids_by_symbol, skip))
    else:
        outcomes.append(CheckOutcome("ohlcv_1m_reconciliation", True, 0, {"not_run": "disabled or no ticks"}))
    return [with_severity(o, limits) for o in outcomes]


def _costed(outcome: CheckOutcome, cost_usd: float) -> CheckOutcome:
    return CheckOutcome(outcome.name, outcome.passed, outcome.violations,
                        {**outcome.details, "databento_cost_usd": float(cost_usd)}, outcome.first_violations,
                        outcome.thresholds, outcome.severity)


def _ids_by_symbol(ticks: pa.Table) -> dict[int, str]:
    if ticks.num_rows == 0:
        return {}
    ids = ticks["instrument_id"].to_numpy()
    first = np.unique(ids, return_index=True)[1]
    symbols = ticks["raw_symbol"].take(pa.array(first)).to_pylist()
    return {int(ids[i]): str(s) for i, s in zip(first, symbols, strict=True)}


def _bars_vs_vendor(context: AssetExecutionContext, databento: DatabentoResource, product: ProductConfig,
                    ticks: pa.Table, calendar: Sessions, data_end_ns: int, n_sessions: int, tolerance: int,
                    symbols: dict[int, str], skip: np.ndarray) -> CheckOutcome:
    """HDI's 1 m bars of the raw (unadjusted) ticks of a few whole single-contract trade dates, spread over the
    window, against Databento's ohlcv-1m of that contract for the same segments."""
    ts, iid = ticks["ts_event"].to_numpy(), ticks["instrument_id"].to_numpy()
    days, contract = single_contract_dates(ts, iid, calendar, data_end_ns)
    usable = ~np.isin(days, skip)
    days, contract = days[usable], contract[usable]
    pick = np.unique(np.linspace(0, len(days) - 1, min(n_sessions, len(days))).round().astype(int)) \
        if len(days) else np.zeros(0, int)
    hdi_parts, vendor_parts, cost = [], [], 0.0
    for k in pick:  # a handful of sampled trade dates, one request each
        rows = calendar.trade_date == days[k]
        day_sessions = Sessions(calendar.open_ns[rows], calendar.close_ns[rows], calendar.trade_date[rows])
        start, end = int(day_sessions.open_ns.min()), int(day_sessions.close_ns.max())
        in_day = session_index(ts, day_sessions) >= 0
        day_ticks = ticks.filter(pa.array(in_day)).select(["ts_event", "price", "size", "instrument_id",
                                                           "raw_symbol"])
        hdi_parts.append(bars.resample(bars.ohlcv_1s(day_ticks, day_sessions), "1m", day_sessions))
        symbol = symbols[int(contract[k])]
        cost += databento.get_cost(product.dataset, "ohlcv-1m", [symbol], start, end, context=context)
        vendor = databento.get_range(dataset=product.dataset, schema="ohlcv-1m", symbols=[symbol],
                                     stype_in="raw_symbol", start=start, end=end, context=context).table
        vendor_parts.append(vendor.select(["ts_event", "open", "high", "low", "close", "volume"]).cast(
            pa.schema([(name, pa.int64()) for name in ("ts_event", "open", "high", "low", "close", "volume")])))
    if not hdi_parts:
        return CheckOutcome("ohlcv_1m_reconciliation", True, 0, {"sampled_trade_dates": 0})
    outcome = ohlcv_1m_reconciliation(pa.concat_tables(hdi_parts).sort_by("ts_event"),
                                      pa.concat_tables(vendor_parts).sort_by("ts_event"), tolerance)
    outcome = _costed(outcome, cost)
    return CheckOutcome(outcome.name, outcome.passed, outcome.violations,
                        {**outcome.details, "sampled_trade_dates": ", ".join(str(days[k]) for k in pick)},
                        outcome.first_violations, outcome.thresholds, outcome.severity)


def merged_outcome(outcomes: list[CheckOutcome], labels: list[str]) -> CheckOutcome:
    """One outcome of the same check over several tables: counts summed, examples labelled by table."""
    count = sum(o.violations for o in outcomes)
    details = {f"{label}_{k}": v for label, o in zip(labels, outcomes, strict=True) for k, v in o.details.items()}
    examples = [{"table": label, **row}
                for label, o in zip(labels, outcomes, strict=True) for row in o.first_violations]
    return CheckOutcome(outcomes[0].name, count == 0, count, details, examples[: MAX_EXAMPLES])
