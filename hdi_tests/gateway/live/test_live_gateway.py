"""The live gateway against the unmodified databento.Live client over loopback: authentication, every schema
equal to the historical gateway's get_range for the same span, symbology and errors."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import databento as db
import databento_dbn as dbn
import numpy as np
import pytest
from live_client import DATASET, KEY, WAIT_S, connect, send_ns, stream

from hdi_gateway.live import LiveGateway, make_state, start_live_thread

NS = 1_000_000_000
BUSY_AT = "2024-03-05T19:00"  # an ES Tuesday afternoon: session close 21:00, statistics, next open 22:00


def ns_of(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


@pytest.fixture
def gateway_at(synthetic_market) -> Iterator:
    """gateway_at(at, speed=None, faults=None) -> a LiveGateway serving the synthetic market (stopped after)."""
    started: list[LiveGateway] = []

    def start(at: str, speed: float | None = None, faults: str | None = None) -> LiveGateway:
        gateway = start_live_thread(make_state(synthetic_market, ns_of(at), speed, [KEY], faults))
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def test_good_key_authenticates_and_bad_key_is_refused(gateway_at) -> None:
    gateway = gateway_at(BUSY_AT)
    client = connect(gateway.port)
    client.subscribe(DATASET, "trades", "ESH4")
    assert client.session_id
    client.terminate()
    with pytest.raises(db.BentoError, match="Authentication failed"):
        connect(gateway.port, key="db-some-other-key").subscribe(DATASET, "trades", "ESH4")


def test_unknown_dataset_fails_authentication(gateway_at) -> None:
    gateway = gateway_at(BUSY_AT)
    with pytest.raises(db.BentoError, match="Unknown dataset"):
        connect(gateway.port).subscribe("XNAS.ITCH", "trades", "AAPL")


def test_trades_stream_with_parent_mappings_equal_historical(gateway_at, synthetic_client) -> None:
    gateway = gateway_at(BUSY_AT)  # speed max
    lo, hi = ns_of(BUSY_AT), ns_of(BUSY_AT) + 4 * 3600 * NS
    client, got = stream(gateway.port, "trades", "ES.FUT", stype_in="parent")
    try:
        got.wait_until(lambda rs: any(send_ns(r) >= hi for r in rs[-50:] if hasattr(r, "ts_recv")))
    finally:
        client.terminate()
    mapped = {m.instrument_id: m.stype_out_symbol for m in got.of(dbn.SymbolMappingMsg)}
    assert {m.stype_in_symbol for m in got.of(dbn.SymbolMappingMsg)} == {"ES.FUT"}
    historical = synthetic_client.timeseries.get_range(
        DATASET, start=lo, end=hi, symbols="ES.FUT", stype_in="parent", schema="trades")
    expected = [bytes(r) for r in historical]
    live = [bytes(r) for r in got.data() if send_ns(r) < hi]
    assert live == expected and len(live) > 100
    assert set(mapped) == {r.instrument_id for r in historical} | set(mapped)
    assert client.symbology_map == mapped


def _historical_span(client: db.Historical, schema: str, symbols: str, stype_in: str, lo: int, hi: int) -> list:
    """What the live stream must hold for send times in [lo, hi): bars are sent when their interval ends."""
    interval = {"ohlcv-1s": 1, "ohlcv-1m": 60, "ohlcv-1h": 3600, "ohlcv-1d": 86_400}.get(schema, 0) * NS
    store = client.timeseries.get_range(DATASET, start=lo - interval, end=hi - interval, symbols=symbols,
                                        stype_in=stype_in, schema=schema)
    return [r for r in store if lo <= send_ns(r) < hi]


SCHEMA_SPAN_NS = 6 * 3600 * NS  # close, statistics, the next open's definitions and the midnight daily bar


@pytest.mark.parametrize("schema", ["tbbo", "ohlcv-1s", "ohlcv-1m", "ohlcv-1h", "ohlcv-1d", "statistics",
                                    "definition", "mbp-1", "mbp-10", "mbo"])
def test_each_schema_streams_what_historical_serves(gateway_at, synthetic_market, synthetic_client,
                                                    schema: str) -> None:
    if schema not in synthetic_market.schemas(DATASET):
        pytest.skip(f"the synthetic market does not serve {schema} yet (the order book branch adds it)")
    gateway = gateway_at(BUSY_AT)
    lo = ns_of(BUSY_AT)
    hi = lo + SCHEMA_SPAN_NS
    client, got = stream(gateway.port, schema, "ES.FUT", stype_in="parent", heartbeat_interval_s=1)
    try:
        got.wait_until(lambda rs: any(send_ns(r) >= hi for r in rs[-20:] if not isinstance(
            r, dbn.SymbolMappingMsg | dbn.SystemMsg | dbn.ErrorMsg)))
    finally:
        client.terminate()
    expected = [bytes(r) for r in _historical_span(synthetic_client, schema, "ES.FUT", "parent", lo, hi)]
    live = [bytes(r) for r in got.data() if send_ns(r) < hi]
    assert len(expected) > 0
    assert live == expected


def test_two_schemas_in_one_session_interleave_in_send_order(gateway_at, synthetic_client) -> None:
    gateway = gateway_at(BUSY_AT)
    lo, hi = ns_of(BUSY_AT), ns_of(BUSY_AT) + 3 * 3600 * NS
    client = connect(gateway.port)
    from live_client import Collector

    got = Collector()
    client.add_callback(got)
    client.subscribe(DATASET, "trades", "ESH4")
    client.subscribe(DATASET, "ohlcv-1m", "ESH4")
    client.start()
    try:
        got.wait_until(lambda rs: any(isinstance(r, dbn.TradeMsg) and r.ts_recv >= hi for r in rs[-20:]))
    finally:
        client.terminate()
    data = [r for r in got.data() if send_ns(r) < hi]
    times = [send_ns(r) for r in data]
    assert times == sorted(times)
    for schema, kind in (("trades", dbn.TradeMsg), ("ohlcv-1m", dbn.OHLCVMsg)):
        expected = [bytes(r) for r in _historical_span(synthetic_client, schema, "ESH4", "raw_symbol", lo, hi)]
        assert [bytes(r) for r in data if isinstance(r, kind)] == expected and expected


def test_continuous_subscription_keeps_its_contract_across_a_roll(gateway_at, synthetic_market) -> None:
    # Oracle, by hand from the daily volumes: ES.v.0 on UTC day X is the contract with the most volume on the
    # last trade date before X; find the first trade date the next contract leads.
    daily = synthetic_market.daily_stats(DATASET, dt.date(2024, 3, 1), dt.date(2024, 3, 20))
    volume = daily[daily["instrument_id"] // 10_000 == 1].pivot(index="date", columns="instrument_id",
                                                                  values="volume").fillna(0)
    leaders = volume.idxmax(axis=1)
    switch = next(d for d, prev in zip(leaders.index[1:], leaders.iloc[:-1], strict=True) if leaders[d] != prev)
    old_id, new_id = int(leaders.iloc[0]), int(leaders[switch])
    roll_ns = ns_of(str(switch + dt.timedelta(days=1)))  # the first UTC day the new contract is ES.v.0
    gateway = gateway_at(str(np.datetime64(roll_ns - 3600 * NS, "ns")), speed=1800.0)
    before, got_before = stream(gateway.port, "trades", "ES.v.0", stype_in="continuous", heartbeat_interval_s=1)
    try:
        deadline = roll_ns + 5 * 60 * NS
        got_before.wait_until(lambda rs: gateway.state.clock.now() >= deadline)
        after, got_after = stream(gateway.port, "trades", "ES.v.0", stype_in="continuous", heartbeat_interval_s=1)
        try:
            end = roll_ns + 3 * 3600 * NS
            got_after.wait_until(lambda rs: gateway.state.clock.now() >= end + NS)
            got_before.wait_until(lambda rs: any(r.ts_event >= end for r in rs[-5:]))
        finally:
            after.terminate()
    finally:
        before.terminate()
    assert [m.instrument_id for m in got_before.of(dbn.SymbolMappingMsg)] == [old_id]
    assert [m.instrument_id for m in got_after.of(dbn.SymbolMappingMsg)] == [new_id]
    old_trades, new_trades = got_before.data(), got_after.data()
    assert {r.instrument_id for r in old_trades} == {old_id}
    assert any(r.ts_recv >= roll_ns for r in old_trades)  # still the old contract after the roll
    assert {r.instrument_id for r in new_trades} == {new_id} and new_trades


def test_replay_from_start_then_live(gateway_at, synthetic_client) -> None:
    at = ns_of(BUSY_AT)
    gateway = gateway_at(BUSY_AT, speed=600.0)
    start, live_until = at - 2 * 3600 * NS, at + 10 * 60 * NS
    client, got = stream(gateway.port, "trades", "ES.FUT", stype_in="parent", start=start)
    try:
        got.wait_until(lambda rs: any(isinstance(r, dbn.TradeMsg) and r.ts_recv >= live_until for r in rs[-5:]))
        metadata = client.metadata
    finally:
        client.terminate()
    assert metadata is not None and at <= metadata.start < live_until  # the session started live at "now"
    expected = [bytes(r) for r in _historical_span(synthetic_client, "trades", "ES.FUT", "parent", start,
                                                   live_until)]
    assert [bytes(r) for r in got.data() if r.ts_recv < live_until] == expected
    assert any(r.ts_recv < at for r in got.data()) and any(r.ts_recv >= at for r in got.data())


def test_heartbeats_arrive_when_idle(gateway_at) -> None:
    gateway = gateway_at("2024-03-09T12:00", speed=1.0)  # a Saturday: no trading
    client, got = stream(gateway.port, "trades", "ESM4", heartbeat_interval_s=1)
    try:
        got.wait_until(lambda rs: sum(isinstance(r, dbn.SystemMsg) for r in rs) >= 2, timeout=10)
    finally:
        client.terminate()
    beats = got.of(dbn.SystemMsg)
    assert all(b.is_heartbeat() for b in beats) and not got.data()
    assert got.arrived[-1] - got.arrived[0] >= 0.9  # paced by the interval, not sent in a burst


def test_bad_symbol_and_bad_schema_are_error_records(gateway_at) -> None:
    gateway = gateway_at(BUSY_AT)
    client = connect(gateway.port, heartbeat_interval_s=1)
    from live_client import Collector

    got = Collector()
    client.add_callback(got)
    client.subscribe(DATASET, "trades", ["ESH4", "ESZ9X"])
    client.subscribe(DATASET, "imbalance", "ESH4")
    client.start()
    try:
        got.wait_until(lambda rs: len(got.data()) >= 5)
    except BaseException:
        client.terminate()
        raise
    client.stop()  # the client raises the gateway's errors when the session closes, as with Databento
    with pytest.raises(db.BentoError, match="Failed to resolve symbol: ESZ9X"):
        client.block_for_close(timeout=WAIT_S)
    errors = {int(e.code): e.err for e in got.of(dbn.ErrorMsg)}
    assert "ESZ9X" in errors[int(dbn.ErrorCode.SYMBOL_RESOLUTION_FAILED)]
    assert "imbalance" in errors[int(dbn.ErrorCode.INVALID_SUBSCRIPTION)]
    assert [m.stype_in_symbol for m in got.of(dbn.SymbolMappingMsg)] == ["ESH4"]
    assert {r.instrument_id for r in got.data()} == {got.of(dbn.SymbolMappingMsg)[0].instrument_id}


def test_ts_out_appends_the_gateway_send_time_to_every_record(gateway_at, synthetic_client) -> None:
    gateway = gateway_at(BUSY_AT)
    lo, hi = ns_of(BUSY_AT), ns_of(BUSY_AT) + 2 * 3600 * NS
    client = db.Live(KEY, gateway="127.0.0.1", port=gateway.port, ts_out=True)
    from live_client import Collector

    got = Collector()
    client.add_callback(got)
    client.subscribe(DATASET, "trades", "ES.FUT", stype_in="parent")
    before = time.time_ns()
    client.start()
    try:
        got.wait_until(lambda rs: any(isinstance(r, dbn.TradeMsg) and r.ts_recv >= hi for r in rs[-5:]))
    finally:
        client.terminate()
    after = time.time_ns()
    assert all(before <= r.ts_out <= after for r in got.records)  # mappings too: every record carries it
    stripped = []
    for record in got.data():
        if record.ts_recv < hi:
            raw = bytearray(bytes(record)[:-8])  # the record without its ts_out, length back to the plain size
            raw[0] -= 2
            stripped.append(bytes(raw))
    expected = [bytes(r) for r in _historical_span(synthetic_client, "trades", "ES.FUT", "parent", lo, hi)]
    assert stripped == expected and expected


def test_parent_subscription_takes_in_a_contract_listed_mid_session(gateway_at, synthetic_market,
                                                                   synthetic_client) -> None:
    listed = [i for i in synthetic_market.instruments(DATASET, ns_of("2024-03-15T12:00"), ns_of("2024-03-16"))
              if i.parent == "ES.FUT" and i.activation_ns > ns_of("2024-03-15T12:00")]
    assert len(listed) == 1  # ESH5, listed as ESH4 expires
    new = listed[0]
    gateway = gateway_at("2024-03-15T12:00")
    lo, hi = ns_of("2024-03-15T12:00"), ns_of("2024-03-18T00:00")
    client, got = stream(gateway.port, "statistics", "ES.FUT", stype_in="parent", heartbeat_interval_s=1)
    try:
        got.wait_until(lambda rs: any(send_ns(r) >= hi for r in rs[-5:] if isinstance(r, dbn.StatMsg)))
    finally:
        client.terminate()
    announced = [k for k, r in enumerate(got.records) if isinstance(r, dbn.SymbolMappingMsg)
                 and r.instrument_id == new.instrument_id]
    assert len(announced) == 1
    mapping = got.records[announced[0]]
    assert (mapping.stype_in_symbol, mapping.stype_out_symbol, mapping.ts_event) == (
        "ES.FUT", new.raw_symbol, new.activation_ns)
    first_record = next(k for k, r in enumerate(got.records)
                        if isinstance(r, dbn.StatMsg) and r.instrument_id == new.instrument_id)
    assert announced[0] < first_record  # announced before its first record
    expected = [bytes(r) for r in _historical_span(synthetic_client, "statistics", "ES.FUT", "parent", lo, hi)]
    assert [bytes(r) for r in got.data() if send_ns(r) < hi] == expected


def test_subscription_after_the_start_joins_live(gateway_at) -> None:
    gateway = gateway_at(BUSY_AT, speed=600.0)
    client, got = stream(gateway.port, "trades", "ESH4", heartbeat_interval_s=1)
    try:
        got.wait_until(lambda rs: len(got.data()) >= 3, timeout=30)
        before = got.data()[-1].ts_recv  # the stream has passed this when the subscription is sent
        client.subscribe(DATASET, "trades", "NQH4")
        got.wait_until(lambda rs: any(m.stype_in_symbol == "NQH4" for m in got.of(dbn.SymbolMappingMsg)))
        mapped_by = gateway.state.clock.now()
        got.wait_until(lambda rs: any(r.ts_recv >= mapped_by + 20 * 60 * NS for r in got.data()[-3:]))
    finally:
        client.terminate()
    (mapping,) = [m for m in got.of(dbn.SymbolMappingMsg) if m.stype_in_symbol == "NQH4"]
    assert before <= mapping.ts_event <= mapped_by  # it joins where the stream is when the line arrives
    joined = [r for r in got.data() if r.instrument_id == mapping.instrument_id]
    assert joined and min(r.ts_recv for r in joined) >= mapping.ts_event  # live from the join, no replay
    times = [r.ts_recv for r in got.data()]
    assert times == sorted(times)


def test_start_zero_replays_the_last_24_hours(gateway_at, synthetic_client) -> None:
    at = ns_of(BUSY_AT)
    gateway = gateway_at(BUSY_AT)
    lo, hi = at - 24 * 3600 * NS, at + 3600 * NS
    client, got = stream(gateway.port, "statistics", "ES.FUT", stype_in="parent", start=0)
    try:
        got.wait_until(lambda rs: any(isinstance(r, dbn.StatMsg) and r.ts_recv >= hi for r in rs[-5:]))
    finally:
        client.terminate()
    expected = [bytes(r) for r in _historical_span(synthetic_client, "statistics", "ES.FUT", "parent", lo, hi)]
    assert [bytes(r) for r in got.data() if r.ts_recv < hi] == expected and expected


def test_warm_up_produces_the_data_before_the_clock_starts() -> None:
    """`hdi replay live --warm-up`: the sessions of the span are generated (and cached) up front, for the named
    products only, so the paced stream never waits for a generation."""
    from hdi_gateway.live import warm_up
    from hdi_gateway.synthetic import TEST_TICKS_PER_SESSION, SyntheticMarket

    market = SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)
    at = ns_of("2024-03-05T15:00")
    assert warm_up(market, DATASET, ["trades", "mbo"], at, at + 2 * 3600 * NS, ["ES"]) == 4
    books = [key for key in market._caches["book"]]
    assert books and {key[1] for key in books} == {"ES"}  # one ES session book, no other product's
    assert len(market.records(DATASET, "mbo", np.array([10291], np.uint32), at + 3600 * NS, at + 3601 * NS))
    assert list(market._caches["book"]) == books  # served from what the warm-up made: nothing generated again
