"""The synthetic order book, replayed by a plain-Python reference book (dicts and lists, one record at a time,
as Databento's order-tracking example): consistency of every order event, the trades inside the MBO stream,
the book before each trade, mbp-1/mbp-10 and tbbo equal to the reference book's levels, determinism, and the
book schemas through the unmodified databento client."""

from __future__ import annotations

import datetime as dt
import hashlib

import databento as db
import numpy as np
import pytest

from hdi_gateway.synthetic import DATASET, TEST_TICKS_PER_SESSION, SyntheticMarket

NS = 1_000_000_000
UNDEF = 2**63 - 1
F_LAST, F_SNAPSHOT, F_BAD_TS_RECV = 128, 32, 8
DAY = dt.date(2024, 3, 12)  # inside the ES March 2024 roll: two contracts trade, with spread legs


class ReferenceBook:
    """Orders by (instrument, order id); per instrument and side, price -> order ids in priority order."""

    def __init__(self) -> None:
        self.orders: dict[tuple[int, int], list] = {}  # -> [side, price, size]
        self.levels: dict[tuple[int, str], dict[int, list[int]]] = {}

    def side_levels(self, iid: int, side: str) -> dict[int, list[int]]:
        return self.levels.setdefault((iid, side), {})

    def top(self, iid: int, side: str, n: int) -> list[tuple[int, int, int]]:
        """(price, total size, order count) of the n best levels of a side."""
        levels = self.side_levels(iid, side)
        prices = sorted(levels, reverse=side == "B")[:n]
        return [(p, sum(self.orders[(iid, o)][2] for o in levels[p]), len(levels[p])) for p in prices]

    def better_levels(self, iid: int, side: str, price: int) -> int:
        levels = self.side_levels(iid, side)
        return sum(1 for p in levels if (p > price if side == "B" else p < price))

    def apply(self, rec) -> None:
        iid, oid, action, side = int(rec["instrument_id"]), int(rec["order_id"]), rec["action"], rec["side"]
        price, size = int(rec["price"]), int(rec["size"])
        key = (iid, oid)
        if action == "R":
            for s in ("B", "A"):
                for ids in self.side_levels(iid, s).values():
                    for o in ids:
                        del self.orders[(iid, o)]
                self.levels[(iid, s)] = {}
        elif action == "A":
            assert key not in self.orders, f"add of a live order id {oid}"
            assert size > 0
            self.orders[key] = [side, price, size]
            self.side_levels(iid, side).setdefault(price, []).append(oid)
        elif action in ("C", "F", "M"):
            assert key in self.orders, f"{action} of unknown order {oid}"
            o_side, o_price, o_size = self.orders[key]
            assert o_side == side, f"{action} on the wrong side for order {oid}"
            if action == "C":
                assert o_price == price and 0 < size <= o_size, f"cancel of {size} from {o_size}"
                self.orders[key][2] -= size
                if self.orders[key][2] == 0:
                    self._unlink(iid, side, price, oid)
                    del self.orders[key]
            elif action == "F":
                assert o_price == price and 0 < size <= o_size, f"fill of {size} from {o_size}"
            else:
                assert size > 0
                if price != o_price or size > o_size:  # loses priority
                    self._unlink(iid, side, o_price, oid)
                    self.side_levels(iid, side).setdefault(price, []).append(oid)
                self.orders[key] = [side, price, size]

    def _unlink(self, iid: int, side: str, price: int, oid: int) -> None:
        ids = self.side_levels(iid, side)[price]
        ids.remove(oid)
        if not ids:
            del self.side_levels(iid, side)[price]


def as_rows(records: np.ndarray) -> list[dict]:
    """Records as plain dicts (str action/side), for the loops of the reference."""
    out = []
    for r in records.tolist():
        row = dict(zip(records.dtype.names, r, strict=True))
        for field in ("action", "side"):
            row[field] = row[field].decode()
        out.append(row)
    return out


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)


@pytest.fixture(scope="module")
def session(market: SyntheticMarket) -> dict:
    plan = market.session_plan("ES", DAY)
    mbo = market.session_mbo("ES", DAY)
    trades = market.records(DATASET, "trades", None, plan.open_ns, plan.close_ns)
    trades = trades[trades["instrument_id"] // 10_000 == 1]
    return {"plan": plan, "mbo": mbo, "rows": as_rows(mbo), "trades": trades}


@pytest.fixture(scope="module")
def replay(session: dict) -> dict:
    """Replays the session once: the checks below read what it saw before and after every record."""
    book = ReferenceBook()
    before_trade, fills_of_trade, after = [], [], []
    current_fills: list | None = None
    for row in session["rows"]:
        iid = row["instrument_id"]
        if row["action"] == "T":
            rest = "A" if row["side"] == "B" else "B"
            queue = book.side_levels(iid, rest).get(row["price"], [])
            before_trade.append({"top_b": book.top(iid, "B", 1), "top_a": book.top(iid, "A", 1),
                                 "queue": [(o, book.orders[(iid, o)][2]) for o in queue]})
            current_fills = []
            fills_of_trade.append(current_fills)
        elif row["action"] == "F":
            assert current_fills is not None
            current_fills.append((row["order_id"], row["size"]))
        else:
            current_fills = None if row["action"] != "C" else current_fills
        old = book.orders.get((iid, row["order_id"]))
        old_price = old[1] if old else None
        book.apply(row)
        after.append({"old_price": old_price,
                      "b": book.top(iid, "B", 10), "a": book.top(iid, "A", 10),
                      "depth": (book.better_levels(iid, row["side"], row["price"])
                                if row["side"] in "BA" and row["action"] in "ACM" else 0),
                      "old_depth": (book.better_levels(iid, row["side"], old_price)
                                    if old_price is not None and row["action"] == "M" and old_price != row["price"]
                                    else 99),
                      "trade_depth": (book.better_levels(iid, "A" if row["side"] == "B" else "B", row["price"])
                                      if row["action"] == "T" else 0)})
        if row["flags"] & F_LAST and row["side"] in "BAN":
            bid, ask = book.top(iid, "B", 1), book.top(iid, "A", 1)
            assert not (bid and ask and bid[0][0] >= ask[0][0]), f"crossed book after {row}"
    return {"before_trade": before_trade, "fills": fills_of_trade, "after": after}


def test_every_order_event_refers_to_a_live_order_and_the_book_never_crosses(replay: dict) -> None:
    assert replay["after"], "the replay raised on an inconsistent record if this is empty"


def test_the_stream_is_ordered_and_flagged_as_databento(session: dict) -> None:
    mbo = session["mbo"]
    assert (np.diff(mbo["ts_recv"].astype(np.int64)) >= 0).all()
    assert (np.diff(mbo["sequence"].astype(np.int64)) >= 0).all()
    assert (mbo["ts_recv"] >= mbo["ts_event"]).all()
    actions = set(mbo["action"].tobytes().decode())
    assert actions == {"R", "A", "C", "M", "T", "F"}
    snapshot = (mbo["flags"] & F_SNAPSHOT) != 0
    assert snapshot[: snapshot.sum()].all(), "the opening snapshot comes first"
    assert ((mbo["flags"][snapshot] & F_BAD_TS_RECV) != 0).all()
    assert (mbo["action"][snapshot][[0]] == b"R").all()
    assert (mbo["order_id"][mbo["action"] == b"T"] == 0).all()
    assert (mbo["flags"][-1] & F_LAST) != 0


def test_every_trade_is_a_t_record_in_the_book(session: dict) -> None:
    trades, mbo = session["trades"], session["mbo"]
    t = mbo[mbo["action"] == b"T"]
    assert len(t) == len(trades) > 1000
    for field in ("ts_event", "ts_recv", "price", "size", "side", "instrument_id", "sequence", "ts_in_delta"):
        assert np.array_equal(t[field], trades[field]), field


def test_the_resting_side_holds_the_trade_at_its_best_price(session: dict, replay: dict) -> None:
    t_rows = [r for r in session["rows"] if r["action"] == "T"]
    for row, seen, fills in zip(t_rows, replay["before_trade"], replay["fills"], strict=True):
        best_rest = seen["top_a"] if row["side"] == "B" else seen["top_b"]
        other = seen["top_b"] if row["side"] == "B" else seen["top_a"]
        assert best_rest and best_rest[0][0] == row["price"], row
        assert best_rest[0][1] >= row["size"], row
        assert other, f"one-sided book before {row}"
        # the fills take the queue at the trade price in priority order, the last one possibly partly
        assert sum(size for _, size in fills) == row["size"]
        for (oid, size), (queued, resting) in zip(fills, seen["queue"], strict=False):
            assert oid == queued and size <= resting
        assert all(size == resting for (_, size), (_, resting) in zip(fills[:-1], seen["queue"], strict=False))


def _expected_mbp(session: dict, replay: dict, n: int) -> list[tuple]:
    out = []
    for row, seen in zip(session["rows"], replay["after"], strict=True):
        action = row["action"]
        if action in ("F", "N"):
            continue
        if action in "ACM" and min(seen["depth"], seen["old_depth"]) >= n:
            continue
        depth = seen["trade_depth"] if action == "T" else seen["depth"]
        levels = []
        for side in ("b", "a"):
            top = seen[side][:n]
            levels.append(top + [(UNDEF, 0, 0)] * (n - len(top)))
        out.append((row["ts_recv"], row["ts_event"], action, row["side"], row["price"], row["size"], depth,
                    levels))
    return out


@pytest.mark.parametrize("n", [1, 10])
def test_mbp_equals_the_reference_book_after_each_event(market: SyntheticMarket, session: dict, replay: dict,
                                                         n: int) -> None:
    got = market.session_mbp("ES", DAY, n)
    expected = _expected_mbp(session, replay, n)
    assert len(got) == len(expected)
    for rec, (recv, event, action, side, price, size, depth, (bids, asks)) in zip(
            as_rows(got), expected, strict=True):
        assert (rec["ts_recv"], rec["ts_event"], rec["action"], rec["side"], rec["price"], rec["size"]) == (
            recv, event, action, side, price, size)
        assert rec["depth"] == depth, rec
        for j in range(n):
            assert (rec[f"bid_px_{j:02d}"], rec[f"bid_sz_{j:02d}"], rec[f"bid_ct_{j:02d}"]) == bids[j], (j, rec)
            assert (rec[f"ask_px_{j:02d}"], rec[f"ask_sz_{j:02d}"], rec[f"ask_ct_{j:02d}"]) == asks[j], (j, rec)
    rtypes = np.unique(got["rtype"])
    assert rtypes.tolist() == [1 if n == 1 else 10]


def test_tbbo_is_the_reference_bbo_before_each_trade(market: SyntheticMarket, session: dict, replay: dict) -> None:
    plan = session["plan"]
    ids = np.unique(session["trades"]["instrument_id"])
    tbbo = market.records(DATASET, "tbbo", ids, plan.open_ns, plan.close_ns)
    assert len(tbbo) == len(replay["before_trade"])
    for rec, seen in zip(as_rows(tbbo), replay["before_trade"], strict=True):
        assert (rec["bid_px_00"], rec["bid_sz_00"], rec["bid_ct_00"]) == seen["top_b"][0]
        assert (rec["ask_px_00"], rec["ask_sz_00"], rec["ask_ct_00"]) == seen["top_a"][0]


def test_book_schemas_are_deterministic_whatever_is_asked_first(session: dict) -> None:
    plan = session["plan"]
    mid = (plan.open_ns + plan.close_ns) // 2
    first = SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)
    second = SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)
    a = [first.records(DATASET, s, None, mid, mid + 3600 * NS).tobytes() for s in ("mbo", "mbp-10", "tbbo")]
    second.records(DATASET, "trades", None, plan.open_ns - 86_400 * NS, plan.close_ns)
    b = [second.records(DATASET, s, None, mid, mid + 3600 * NS).tobytes() for s in ("tbbo", "mbp-10", "mbo")]
    assert a == b[::-1] and all(len(x) > 0 for x in a)
    assert first.session_mbo("ES", DAY).tobytes() == session["mbo"].tobytes()
    other = SyntheticMarket(seed=8, ticks_per_session=TEST_TICKS_PER_SESSION).session_mbo("ES", DAY)
    assert other.tobytes() != session["mbo"].tobytes()


def test_a_window_is_the_session_cut_on_ts_recv(market: SyntheticMarket, session: dict) -> None:
    mbo = session["mbo"]
    lo, hi = int(mbo["ts_recv"][len(mbo) // 3]), int(mbo["ts_recv"][2 * len(mbo) // 3])
    window = market.records(DATASET, "mbo", np.unique(mbo["instrument_id"]), lo, hi)
    keep = (mbo["ts_recv"] >= lo) & (mbo["ts_recv"] < hi)
    assert window.tobytes() == mbo[keep].tobytes()
    mbp = market.records(DATASET, "mbp-10", np.unique(mbo["instrument_id"]), lo, hi)
    full = market.session_mbp("ES", DAY, 10)
    assert mbp.tobytes() == full[(full["ts_recv"] >= lo) & (full["ts_recv"] < hi)].tobytes()


@pytest.mark.parametrize("schema", ["mbo", "mbp-1", "mbp-10", "tbbo"])
def test_book_schemas_through_the_databento_client(synthetic_client: db.Historical, schema: str) -> None:
    store = synthetic_client.timeseries.get_range(DATASET, "2024-03-12T14:00", "2024-03-12T14:30",
                                                  symbols=["ES.v.0"], stype_in="continuous", schema=schema)
    df = store.to_df()
    assert len(df) > 0 and set(df["symbol"]) == {"ES.v.0"}
    records = list(store)
    if schema == "mbo":
        assert isinstance(records[0], db.MBOMsg)
        assert set(df["action"]) <= {"A", "C", "M", "T", "F"} and set(df["side"]) <= {"A", "B"}
        assert (df.loc[df["action"] == "T", "order_id"] == 0).all()
    else:
        assert isinstance(records[0], db.MBP10Msg if schema == "mbp-10" else db.MBP1Msg)
        assert (df["bid_px_00"] < df["ask_px_00"]).all()
        if schema == "tbbo":
            assert set(df["action"]) == {"T"}


def _packets_end_with_f_last(records: np.ndarray) -> None:
    """A packet (same instrument, ts_recv and sequence, contiguous): only its last record is F_LAST."""
    key = np.stack([records["instrument_id"].astype(np.int64), records["ts_recv"].astype(np.int64),
                    records["sequence"].astype(np.int64)], axis=1)
    last = np.ones(len(records), dtype=bool)
    last[:-1] = (key[1:] != key[:-1]).any(axis=1)
    flagged = (records["flags"] & F_LAST) != 0
    wrong = np.flatnonzero(last != flagged)
    assert len(wrong) == 0, records[wrong[:3]]
    trades = np.flatnonzero(records["action"] == b"T")
    assert not flagged[trades].any(), "a trade's fills and cancels follow it in its packet"


@pytest.mark.parametrize("schema", ["mbo", "mbp-1", "mbp-10"])
def test_each_packet_ends_with_f_last(market: SyntheticMarket, session: dict, schema: str) -> None:
    records = session["mbo"] if schema == "mbo" else market.session_mbp("ES", DAY, int(schema[4:]))
    _packets_end_with_f_last(records)


def test_mbp_windows_in_any_order_equal_one_replay(session: dict) -> None:
    """A live gateway asks consecutive windows (the replay resumes); an earlier window afterwards starts over."""
    plan = session["plan"]
    market = SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)
    edges = np.linspace(plan.open_ns, plan.close_ns + NS, 7).astype(np.int64).tolist()
    for schema in ("mbp-1", "mbp-10"):
        whole = market.records(DATASET, schema, None, edges[0], edges[-1])
        pieces = [market.records(DATASET, schema, None, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        assert b"".join(p.tobytes() for p in pieces) == whole.tobytes()
        again = market.records(DATASET, schema, None, edges[2], edges[3])
        assert again.tobytes() == pieces[2].tobytes()


def test_the_book_leaves_trades_and_tbbo_prices_as_they_were(market: SyntheticMarket) -> None:
    """Known answers computed before the order book existed (seed 7, test volume, 2024-03-11 + 5 days)."""
    start = 1_710_115_200 * NS
    trades = market.records(DATASET, "trades", None, start, start + 5 * 86_400 * NS)
    assert len(trades) == 49_776
    assert hashlib.sha256(trades.tobytes()).hexdigest()[:16] == "83dbedd2d1a25559"
    tbbo = market.records(DATASET, "tbbo", None, start, start + 5 * 86_400 * NS)
    tick = np.where(trades["instrument_id"] // 10_000 == 4, 31_250_000,
                    np.where(trades["instrument_id"] // 10_000 == 3, 100_000_000, 250_000_000))
    buy = trades["side"] == b"B"
    # the book quotes the other side one tick from the trade: the prices the hashed tbbo always had
    assert np.array_equal(tbbo["ask_px_00"], np.where(buy, trades["price"], trades["price"] + tick))
    assert np.array_equal(tbbo["bid_px_00"], np.where(buy, trades["price"] - tick, trades["price"]))
