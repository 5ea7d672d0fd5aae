"""Pictures of a continuous series, rendered with matplotlib (Agg) to PNG bytes: no Dagster, no database, no lake.

`continuous_chart_png`: the back-adjusted closes with each roll marked and every raw contract overlaid, shifted
by the rolls after it, so the adjusted line must sit on each contract (a wrong gap shows as a step off the line).
`coverage_strip_png`: the product calendar's trading time of a window, minute by minute, with and without bars.
Prices arrive as floats (presentation); callers convert from int64 fixed point (1e-9).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MINUTE_NS = 60 * 1_000_000_000
HOUR_NS = 60 * MINUTE_NS
PRICE_SCALE = 1e-9  # int64 fixed point -> float, for drawing only
MAX_POINTS = 6_000  # closes drawn per line: finer than the pixels, and keeps the PNG small


@dataclass(frozen=True)
class ContractLine:
    """One contract's closes (ns, float) and the shift the adjustment applies to it."""

    symbol: str
    ts_ns: np.ndarray
    close: np.ndarray
    shift: float = 0.0
    factor: float = 1.0

    def shifted(self) -> np.ndarray:
        return self.close * self.factor + self.shift


@dataclass(frozen=True)
class RollMark:
    switch_ns: int
    old_symbol: str
    new_symbol: str
    gap: float


def last_per_interval(ts_ns: np.ndarray, values: np.ndarray, interval_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The last value of each interval (by time, stable): 1-minute or hourly closes of ticks or bars."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    if not len(ts_ns):
        return ts_ns, np.asarray(values)
    values = np.asarray(values)
    if np.any(ts_ns[1:] < ts_ns[:-1]):  # lake partitions are time-ordered: sort only when they are not
        order = np.argsort(ts_ns, kind="stable")
        ts_ns, values = ts_ns[order], values[order]
    bucket = ts_ns // interval_ns
    last = np.flatnonzero(np.append(bucket[1:] != bucket[:-1], True))
    return bucket[last] * interval_ns, values[last]


def choose_interval(span_ns: int) -> int:
    """1-minute closes for up to ~2 weeks, hourly up to ~3 years (a half-year window: ~3,000 points), else daily."""
    for interval in (MINUTE_NS, HOUR_NS):
        if span_ns / interval <= MAX_POINTS * 4:
            return interval
    return 24 * HOUR_NS


def contract_offsets(method: str, first_ts_ns: int, switch_ns: np.ndarray, roll_gap: np.ndarray,
                     old_price: np.ndarray, new_price: np.ndarray) -> tuple[float, float]:
    """(shift, factor) the adjustment gives a contract whose tenure starts at first_ts_ns, computed from the roll
    events alone (not from the adjusted prices), so the overlay is an independent check of them."""
    order = np.argsort(np.asarray(switch_ns, dtype=np.int64), kind="stable")
    switch = np.asarray(switch_ns, dtype=np.int64)[order]
    k = int(np.searchsorted(switch, first_ts_ns, side="right"))  # rolls at or before the tenure's start
    gap = np.asarray(roll_gap, dtype=np.float64)[order] * PRICE_SCALE
    if method == "panama_backward":
        return round(float(gap[k:].sum()), 9), 1.0
    if method == "panama_forward":
        return round(-float(gap[:k].sum()), 9), 1.0
    if method == "ratio_backward":
        ratio = np.asarray(new_price, np.float64)[order] / np.asarray(old_price, np.float64)[order]
        return 0.0, float(np.prod(ratio[k:]))
    return 0.0, 1.0


def _figure(width: float, height: float):  # noqa: ANN202 - matplotlib types are heavy to import for a hint
    import matplotlib

    matplotlib.use("Agg")  # no display, no GUI toolkit: workers, CI and the CLI alike
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _dates(ts_ns: np.ndarray) -> np.ndarray:
    return np.asarray(ts_ns, dtype="datetime64[ns]").astype("datetime64[ms]").astype(object)


def _png(fig) -> bytes:  # noqa: ANN001
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def _thin(ts_ns: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, len(ts_ns) // MAX_POINTS)
    return (ts_ns, values) if step == 1 else (ts_ns[::step], values[::step])


def continuous_chart_png(title: str, ts_ns: np.ndarray, adjusted: np.ndarray, contracts: Sequence[ContractLine],
                         rolls: Sequence[RollMark], subtitle: str = "") -> bytes:
    """The adjusted closes (black), each contract's shifted raw closes (colour, dashed) and the rolls (vertical
    lines labelled old -> new and the gap), as a PNG."""
    fig = _figure(10, 4.2)
    ax = fig.add_subplot()
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")
    for i, line in enumerate(contracts):
        t, v = _thin(np.asarray(line.ts_ns), line.shifted())
        if len(t):
            ax.plot(_dates(t), v, color=colours[i % len(colours)], lw=2.4, alpha=0.55,
                    label=f"{line.symbol} raw{_offset_label(line)}")
    t, v = _thin(np.asarray(ts_ns), np.asarray(adjusted, dtype=np.float64))
    ax.plot(_dates(t), v, color="black", lw=0.7, label="adjusted")
    low, high = (float(np.nanmin(v)), float(np.nanmax(v))) if len(v) else (0.0, 1.0)
    for roll in rolls:
        when = _dates(np.array([roll.switch_ns]))[0]
        ax.axvline(when, color="crimson", lw=0.9, ls="--")
        ax.annotate(f"{roll.old_symbol}→{roll.new_symbol}\ngap {roll.gap:+g}", (when, high), fontsize=7,
                    color="crimson", ha="left", va="top", xytext=(3, 0), textcoords="offset points")
    ax.set_ylim(low - 0.04 * (high - low or 1), high + 0.12 * (high - low or 1))
    ax.set_title(title + (f"  ({subtitle})" if subtitle else ""), fontsize=10)
    ax.grid(alpha=0.25)
    ax.legend(loc="lower left", fontsize=7, ncols=4)
    fig.autofmt_xdate()
    return _png(fig)


def _offset_label(line: ContractLine) -> str:
    if line.factor != 1.0:
        return f" ×{line.factor:.5f}"
    return f" {line.shift:+g}" if line.shift else ""


def minute_coverage(open_ns: np.ndarray, close_ns: np.ndarray, bar_ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every trading minute of the sessions [open, close) and whether any bar starts in it."""
    minutes = [np.arange(o // MINUTE_NS, -(-c // MINUTE_NS), dtype=np.int64) for o, c in zip(open_ns, close_ns,
                                                                                                strict=True)]
    trading = np.unique(np.concatenate(minutes)) if minutes else np.array([], np.int64)
    with_bars = np.unique(np.asarray(bar_ts_ns, dtype=np.int64) // MINUTE_NS)
    return trading * MINUTE_NS, np.isin(trading, with_bars)


def _runs(minute_ns: np.ndarray, flags: np.ndarray) -> list[tuple[int, int, bool]]:
    """(start ns, length ns, flag) of consecutive minutes with the same flag."""
    if not len(minute_ns):
        return []
    breaks = np.flatnonzero((np.diff(minute_ns) != MINUTE_NS) | (flags[1:] != flags[:-1])) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(minute_ns)]])
    return [(int(minute_ns[s]), int(minute_ns[e - 1] + MINUTE_NS - minute_ns[s]), bool(flags[s]))
            for s, e in zip(starts, ends, strict=True)]


def coverage_strip_png(title: str, open_ns: np.ndarray, close_ns: np.ndarray, bar_ts_ns: np.ndarray) -> bytes:
    """A strip over the window: green trading minutes with bars, red trading minutes without, blank no trading."""
    minute_ns, covered = minute_coverage(open_ns, close_ns, bar_ts_ns)
    fig = _figure(10, 1.5)
    ax = fig.add_subplot()
    day = 86_400 * 1e9
    for colour, flag in (("tab:green", True), ("tab:red", False)):
        spans = [(start / day, length / day) for start, length, f in _runs(minute_ns, covered) if f == flag]
        if spans:
            ax.broken_barh(spans, (0, 1), facecolors=colour, linewidth=0)
    share = float(covered.mean()) if len(covered) else 0.0
    ax.set_yticks([])
    ax.set_ylim(0, 1)
    ax.xaxis_date()
    ax.set_title(f"{title}: {share:.1%} of {len(covered):,} trading minutes have bars (red: none)", fontsize=9)
    return _png(fig)


def markdown_image(png: bytes, alt: str, path: str | None = None) -> str:
    """Markdown with the PNG inline (a base64 data URI) and, when given, where the file lies."""
    text = f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
    return text + (f"\n\n`{path}`" if path else "")
