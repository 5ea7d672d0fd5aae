"""Absorption zones on hand-built mbp-10 tapes (one holds then breaks, one holds), any split equals the whole,
evidence points at real events, and the real mbp-10 sample."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from orderflow_tapes import TICK, mbp_tape, random_book
from repo_paths import DBN_SAMPLES

from hdi_core.dbn.arrow import records_to_table
from hdi_core.dbn.decode import decode_file
from hdi_core.orderflow import AbsorptionDetector, TopOfBook, absorption_zones, top_of_book

SAMPLE_MBP10 = DBN_SAMPLES / "dbn" / "test_data.mbp-10.v3.dbn.zst"
# (ms, action, side, price ticks, size, bid ticks, bid size, ask ticks, ask size); the book after each record
HOLDS_THEN_BREAKS = [
    (0, "A", "B", 100, 20, 100, 20, 101, 30),
    (10, "T", "A", 100, 15, 100, 20, 101, 30),  # sellers hit 100: the zone opens, 20 shown
    (11, "C", "B", 100, 15, 100, 5, 101, 30),
    (20, "A", "B", 100, 20, 100, 25, 101, 30),  # refill 1
    (30, "T", "A", 100, 20, 100, 25, 101, 30),
    (31, "C", "B", 100, 20, 100, 5, 101, 30),
    (40, "A", "B", 100, 20, 100, 25, 101, 30),  # refill 2
    (50, "T", "A", 100, 25, 100, 25, 101, 30),
    (51, "C", "B", 100, 25, 99, 10, 101, 30),  # the level is gone: price moved through
]
HOLDS = [
    (0, "A", "A", 101, 30, 99, 20, 101, 30),
    (10, "T", "B", 101, 25, 99, 20, 101, 30),  # buyers lift 101
    (11, "C", "A", 101, 25, 99, 20, 101, 5),
    (12, "A", "A", 101, 30, 99, 20, 101, 35),  # refill
    (20, "T", "B", 101, 30, 99, 20, 101, 35),
    (21, "C", "A", 101, 30, 99, 20, 101, 5),
    (30, "A", "A", 100, 10, 99, 20, 100, 10),  # a lower offer: buyers gave up, the zone held
]


def _book(rows: list[tuple]) -> TopOfBook:
    return TopOfBook(**mbp_tape(rows))


def test_a_zone_that_holds_then_breaks() -> None:
    zones = absorption_zones(_book(HOLDS_THEN_BREAKS), min_volume=50).to_pylist()
    assert len(zones) == 1
    z = zones[0]
    assert (z["side"], z["price"], z["outcome"], z["rule"]) == ("B", 100 * TICK, "broke", "absorption_top_of_book")
    assert (z["volume"], z["trades"], z["refills"], z["initial_size"], z["max_displayed"]) == (60, 3, 2, 20, 25)
    t0 = 1_700_000_000 * 10**9
    assert (z["start_ts"], z["end_ts"], z["duration_ns"]) == (t0 + 10_000_000, t0 + 51_000_000, 41_000_000)
    assert (z["first_index"], z["first_sequence"], z["last_index"], z["last_sequence"]) == (1, 1001, 7, 1007)


def test_a_zone_that_holds() -> None:
    zones = absorption_zones(_book(HOLDS), min_volume=50).to_pylist()
    assert [(z["side"], z["outcome"], z["volume"], z["refills"]) for z in zones] == [("A", "held", 55, 1)]


def test_thresholds_and_idle_close() -> None:
    book = _book(HOLDS_THEN_BREAKS)
    assert absorption_zones(book, min_volume=61).num_rows == 0  # not enough volume
    assert absorption_zones(book, min_volume=1, min_absorbed_ratio=3.0).num_rows == 0  # 60 <= 3 x 20 shown
    idle = _book([*HOLDS_THEN_BREAKS[:5], (9_000, "A", "A", 101, 1, 100, 25, 101, 31)])
    zones = absorption_zones(idle, min_volume=30, max_idle_ms=5_000).to_pylist()
    t0 = 1_700_000_000 * 10**9
    assert [(z["outcome"], z["end_ts"], z["volume"]) for z in zones] == [("held", t0 + 30_000_000, 35)]


def test_a_zone_standing_at_the_end_is_open() -> None:
    zones = absorption_zones(_book(HOLDS_THEN_BREAKS[:7]), min_volume=30).to_pylist()
    assert [(z["outcome"], z["volume"], z["refills"]) for z in zones] == [("open", 35, 2)]


def _zones(book: TopOfBook, splits: list[int]) -> pa.Table:
    detector = AbsorptionDetector(min_volume=20, min_absorbed_ratio=1.0, max_idle_ms=2_000)
    edges = [0, *splits, len(book)]
    parts = [detector.feed(book.slice(a, b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return pa.concat_tables([*parts, detector.flush()])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_split_gives_the_whole_tape_result(seed: int) -> None:
    book = _book(random_book(seed, 4_000))
    whole = absorption_zones(book, min_volume=20, min_absorbed_ratio=1.0, max_idle_ms=2_000)
    assert whole.num_rows > 5
    rng = np.random.default_rng(seed)
    for _ in range(5):
        splits = sorted(rng.choice(np.arange(1, len(book)), int(rng.integers(1, 40)), replace=False).tolist())
        assert _zones(book, splits).equals(whole)
    assert _zones(book, list(range(1, len(book)))).equals(whole)  # one record per batch


def test_evidence_references_trades_that_exist() -> None:
    book = _book(random_book(5, 3_000))
    for z in absorption_zones(book, min_volume=20).to_pylist():
        for end in ("first", "last"):
            i = z[f"{end}_index"]
            assert (book.ts[i], book.sequence[i]) == (z[f"{end}_ts_recv"], z[f"{end}_sequence"])
            assert (chr(book.action[i]), book.price[i]) == ("T", z["price"])
        assert z["volume"] > z["initial_size"] and z["end_ts"] >= z["start_ts"]


def test_real_mbp10_sample() -> None:
    records = decode_file(SAMPLE_MBP10).records_of()
    book = top_of_book(records)
    # checked by hand: two cancels (ask 3722.75, bid 3720.00), no trade: no zone
    assert [chr(a) for a in book.action] == ["C", "C"] and book.sequence.tolist() == [1170352, 1170356]
    assert int(book.bid_px[0]) == int(records["bid_px_00"][0]) and int(book.ask_sz[1]) == int(records["ask_sz_00"][1])
    assert absorption_zones(book).num_rows == 0
    from_arrow = top_of_book(records_to_table(records))  # text action/side, int64 times
    assert from_arrow.action.tolist() == book.action.tolist() and from_arrow.ts.tolist() == book.ts.tolist()


def _oracle(rows: list[tuple], min_volume: int, ratio: float, idle_ms: int) -> list[tuple]:
    """The rule as the module docstring states it, in plain Python over the mbp rows (no shared code)."""
    zones: dict[str, dict | None] = {"B": None, "A": None}
    out: list[tuple] = []

    def close(side: str, end: int, outcome: str) -> None:
        z = zones[side]
        zones[side] = None
        if z["volume"] >= min_volume and z["volume"] > ratio * z["initial"]:
            out.append((side, z["price"], z["start"], end, z["volume"], z["trades"], z["refills"], z["initial"],
                        z["max"], outcome, z["first"], z["last"]))

    for i, (ms, action, side, px, sz, bpx, bsz, apx, asz) in enumerate(rows):
        for s in ("B", "A"):
            if zones[s] and ms - zones[s]["last_ms"] > idle_ms:
                close(s, zones[s]["last_ms"], "held")
        if action == "T" and side in "AB":
            s = "B" if side == "A" else "A"
            z = zones[s]
            if z and px == z["price"]:
                z.update(volume=z["volume"] + sz, trades=z["trades"] + 1, last=i, last_ms=ms)
            elif z:
                close(s, ms, "broke" if (px < z["price"] if s == "B" else px > z["price"]) else "held")
            best, shown = (bpx, bsz) if s == "B" else (apx, asz)
            if zones[s] is None and px == best:
                zones[s] = {"price": px, "volume": sz, "trades": 1, "refills": 0, "initial": shown, "max": shown,
                            "shown": shown, "start": ms, "first": i, "last": i, "last_ms": ms}
        for s in ("B", "A"):  # every row carries F_LAST here
            z = zones[s]
            if z is None:
                continue
            best, shown = (bpx, bsz) if s == "B" else (apx, asz)
            if best == z["price"]:
                z["refills"] += shown > z["shown"]
                z["shown"] = shown
                z["max"] = max(z["max"], shown)
            else:
                close(s, ms, "broke" if ((best < z["price"]) == (s == "B")) else "held")
    for s in ("B", "A"):
        if zones[s]:
            close(s, zones[s]["last_ms"], "open")
    return out


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_matches_a_plain_loop_oracle(seed: int) -> None:
    rows = random_book(seed, 3_000)
    zones = absorption_zones(_book(rows), min_volume=15, min_absorbed_ratio=0.8, max_idle_ms=1_500).to_pylist()
    t0 = 1_700_000_000 * 10**9
    got = sorted((z["side"], z["price"] // TICK, (z["start_ts"] - t0) // 10**6, (z["end_ts"] - t0) // 10**6,
                  z["volume"], z["trades"], z["refills"], z["initial_size"], z["max_displayed"], z["outcome"],
                  z["first_index"], z["last_index"]) for z in zones)
    expected = sorted(_oracle(rows, 15, 0.8, 1_500))
    assert len(expected) > 5
    assert got == expected
