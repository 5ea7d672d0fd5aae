"""One chart's data, read through the read layer (query / rolls), shared by `hdi plot` (PNG, standalone HTML) and
the API's chart page: continuous candles, the rolls, each raw contract shifted by the later rolls' gaps, and the
validation status of each window when the lake has it.

Raw contracts come from the vendor tables (ohlcv_data) when they hold the contract, else from the continuous
bars' provenance (raw_symbol per bar, de-adjusted with the roll events), which the legend says.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa

from hdi_resources import charts
from hdi_resources.db import read as reads
from hdi_resources.db.readerrors import BadRequest, NotFound, TooLarge

log = logging.getLogger(__name__)

BAR_CHOICES = ("1m", "5m", "15m", "1h", "1d")
LIBRARY = "lightweight-charts.standalone.production.js"
MAX_CANDLES = 250_000  # ~15 MB of JSON for the page: beyond it a larger bar size says the same
_US = 1_000


@dataclass
class ContractSeries:
    symbol: str
    source: str  # "vendor" (ohlcv_data) or "provenance" (the continuous bars' raw_symbol)
    ts_ns: np.ndarray
    raw_close: np.ndarray
    shift: float
    factor: float


@dataclass
class ChartData:
    symbol: str  # as resolved (ES.v.0)
    root: str
    bars: str
    start: str | None
    end: str | None
    method: str
    ts_ns: np.ndarray
    ohlc: dict[str, np.ndarray]
    rolls: list[dict[str, Any]] = field(default_factory=list)
    contracts: list[ContractSeries] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)


def auto_bars(start: str | None, end: str | None) -> str:
    """1-minute bars for up to three weeks, hourly up to ~a year, daily beyond (or without bounds)."""
    try:
        days = (dt.date.fromisoformat(str(end)[:10]) - dt.date.fromisoformat(str(start)[:10])).days
    except ValueError:
        return "1d"
    return "1m" if days <= 21 else ("1h" if days <= 400 else "1d")


def _ns(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy() * _US


def chart_data(db: Any, symbol: str, start: str | None = None, end: str | None = None,
               bars: str | None = None) -> ChartData:
    """Everything a chart of one continuous series over [start, end) shows; NotFound/BadRequest as the reads."""
    bars = bars or auto_bars(start, end)
    if bars not in BAR_CHOICES:
        raise BadRequest(f"bars {bars[:10]!r} is not one of {', '.join(BAR_CHOICES)}")
    table = reads.query(db, symbol, f"ohlcv-{bars}", start, end, prices="float", limit=MAX_CANDLES + 1)
    if table.num_rows > MAX_CANDLES:
        raise TooLarge(f"over {MAX_CANDLES:,} {bars} bars in that range; choose a larger bar size or a shorter range")
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    shown, method = meta.get("hdi.symbol", symbol), meta.get("hdi.adjustment_method", "")
    if "raw_symbol" not in table.column_names or not method:
        raise BadRequest(f"{symbol!r} is not a continuous series; chart a product (ES) or a series (ES.v.0)")
    ts = _ns(table["ts"])
    ohlc = {k: table[k].to_numpy(zero_copy_only=False).astype(np.float64) for k in ("open", "high", "low", "close")}
    events = _rolls(db, shown)
    data = ChartData(shown, table["root_symbol"][0].as_py() if table.num_rows else symbol, bars, start, end, method,
                     ts, ohlc)
    lo, hi = (int(ts.min()), int(ts.max())) if len(ts) else (0, 0)
    for e in events:
        if lo <= e["switch_ns"] <= hi:
            k = min(int(np.searchsorted(ts, e["switch_ns"])), len(ts) - 1)  # the first bar of the new contract
            data.rolls.append({**e, "bar_ns": int(ts[k])})
    data.contracts = _contracts(db, table, ts, events, method, bars, start, end)
    data.checks = _checks(data.root, table)
    return data


def _rolls(db: Any, shown: str) -> list[dict[str, Any]]:
    """Every roll of the series (all windows: a backward adjustment moves prices by every later gap)."""
    try:
        table = reads.rolls(db, shown, prices="float")
    except NotFound:
        return []
    seen, out = set(), []
    for r in table.to_pylist():
        switch_ns = int(r["switch_ts"].timestamp() * 1e6) * _US
        if r["continuous_symbol"] != shown or switch_ns in seen:
            continue
        seen.add(switch_ns)
        out.append({"switch_ns": switch_ns, "old": r["old_raw_symbol"], "new": r["new_raw_symbol"],
                    "gap": float(r["roll_gap"]), "old_price": float(r["old_price"]),
                    "new_price": float(r["new_price"]), "trade_date": str(r["trade_date"])})
    return sorted(out, key=lambda e: e["switch_ns"])


def _contracts(db: Any, table: pa.Table, ts: np.ndarray, events: list[dict[str, Any]], method: str, bars: str,
               start: str | None, end: str | None) -> list[ContractSeries]:
    switch = np.array([e["switch_ns"] for e in events], np.int64)
    gap = np.array([e["gap"] for e in events], np.float64) / charts.PRICE_SCALE
    old = np.array([e["old_price"] for e in events], np.float64)
    new = np.array([e["new_price"] for e in events], np.float64)
    symbols = table["raw_symbol"].to_numpy(zero_copy_only=False)
    close = table["close"].to_numpy(zero_copy_only=False).astype(np.float64)
    out = []
    for symbol in dict.fromkeys(s for s in symbols if s):
        mine = symbols == symbol
        shift, factor = charts.contract_offsets(method, int(ts[mine].min()), switch, gap, old, new)
        vendor = _vendor_closes(db, symbol, bars, start, end)
        if vendor is not None:
            out.append(ContractSeries(symbol, "vendor", vendor[0], vendor[1], shift, factor))
        else:  # the bar's own contract: the adjusted close taken back by its shift
            out.append(ContractSeries(symbol, "provenance", ts[mine], (close[mine] - shift) / factor, shift, factor))
    return out


def _vendor_closes(db: Any, contract: str, bars: str, start: str | None,
                   end: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The contract's own closes from ohlcv_data at the chart's bar size (or 1m resampled), or None."""
    for schema in dict.fromkeys((f"ohlcv-{bars}", "ohlcv-1m")):
        try:
            table = reads.query(db, contract, schema, start, end, raw=True, prices="float", limit=reads.MAX_LIMIT)
        except (NotFound, BadRequest):
            continue
        if table.num_rows and "close_price" in table.column_names:
            ts = _ns(table["ts_event"])
            close = table["close_price"].to_numpy(zero_copy_only=False).astype(np.float64)
            interval = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86_400}[bars] * 1_000_000_000
            return charts.last_per_interval(ts, close, interval)
    return None


def _checks(root: str, table: pa.Table) -> list[dict[str, Any]]:
    """Each window's ohlcv_1s validation report from the lake, where there is one (else nothing)."""
    from hdi_resources import lake

    if "window" not in table.column_names:
        return []
    out = []
    for window in sorted({w for w in table["window"].to_pylist() if w is not None}):
        try:
            report = json.loads(lake.read_json("ohlcv_1s", "validation_report.json", symbol=root,
                                               window=str(window)))
        except Exception:  # noqa: BLE001 - no lake here, or no report: the status is simply omitted
            continue
        failed = [c["checkpoint"] for c in report.get("checkpoints", []) if not c.get("passed")]
        out.append({"window": str(window), "passed": bool(report.get("passed")), "failed": failed})
    return out


def to_json(data: ChartData) -> dict[str, Any]:
    """The page's shape: times in UTC seconds (lightweight-charts), column-wise arrays."""
    def sec(ns: np.ndarray) -> list[int]:
        return (np.asarray(ns, np.int64) // 1_000_000_000).tolist()

    def num(values: np.ndarray) -> list[float | None]:
        return [None if not np.isfinite(v) else round(float(v), 9) for v in values]

    return {
        "symbol": data.symbol, "root": data.root, "bars": data.bars, "start": data.start, "end": data.end,
        "adjustment_method": data.method,
        "candles": {"time": sec(data.ts_ns), **{k: num(v) for k, v in data.ohlc.items()}},
        "rolls": [{"time": int(r["bar_ns"]) // 1_000_000_000, "switch": int(r["switch_ns"]) // 1_000_000_000,
                   "old": r["old"], "new": r["new"], "gap": r["gap"], "trade_date": r["trade_date"]}
                  for r in data.rolls],
        "contracts": [{"symbol": c.symbol, "source": c.source, "shift": c.shift, "factor": c.factor,
                       "time": sec(c.ts_ns), "close": num(c.raw_close * c.factor + c.shift)} for c in data.contracts],
        "checks": data.checks,
    }


def png(data: ChartData) -> bytes:
    """The matplotlib picture of the same data (`hdi plot --output x.png`)."""
    lines = [charts.ContractLine(f"{c.symbol}{' (provenance)' if c.source == 'provenance' else ''}", c.ts_ns,
                                 c.raw_close, c.shift, c.factor) for c in data.contracts]
    marks = [charts.RollMark(r["switch_ns"], r["old"], r["new"], r["gap"]) for r in data.rolls]
    span = f"{data.start or '…'} – {data.end or '…'}"
    return charts.continuous_chart_png(f"{data.symbol} {data.bars} closes, {span}", data.ts_ns, data.ohlc["close"],
                                       lines, marks, subtitle=data.method)


def static_file(name: str) -> bytes:
    return resources.files("hdi_app.api").joinpath("static", name).read_bytes()


def page_html(data: ChartData | None = None) -> str:
    """The chart page. Without data it loads through the API (served at /); with data it is one standalone file
    with the library and the data inlined (`hdi plot --output x.html`), opened without any server."""
    page = static_file("chart.html").decode()
    if data is None:
        return page
    library = static_file(LIBRARY).decode().replace("</script", "<\\/script")
    payload = json.dumps(to_json(data), allow_nan=False).replace("</", "<\\/")
    page = page.replace(f'<script src="/static/{LIBRARY}"></script>', f"<script>{library}</script>")
    return page.replace("const EMBEDDED = null;", f"const EMBEDDED = {payload};")
