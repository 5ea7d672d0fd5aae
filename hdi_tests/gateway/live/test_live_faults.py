"""Faults on demand with the unmodified databento.Live client: a dropped connection recovered by intraday
replay with zero lost and zero duplicated records, a stalled stream, a slow reader; and the fault spec and
control file themselves."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import databento as db
import databento_dbn as dbn
import numpy as np
import pytest
from live_client import DATASET, KEY, WAIT_S, Collector, connect, stream

from hdi_core.errors import ConfigError
from hdi_gateway.live import FaultSource, LiveFaults, LiveGateway, make_state, start_live_thread

NS = 1_000_000_000
BUSY_AT = "2024-03-05T19:00"


def ns_of(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def record_key(record) -> tuple[int, int, int, int]:
    """Identity of a trade across sessions: (rtype, instrument_id, ts_recv, sequence). Exact for trades (the
    synthetic market numbers each product's messages of a session with a strictly increasing sequence); not
    for mbo, where the events of one packet share ts_recv and sequence: `join` below is exact for both."""
    return int(record.rtype), int(record.instrument_id), int(record.ts_recv), int(record.sequence)


def join(held: list, replayed: list) -> list:
    """Records held before a drop + the replay from start=<last ts_recv held>: the replay begins with every
    record at that ts_recv, in the gateway's send order, so exactly the first k of them are already held
    (k = how many records with that ts_recv the client holds)."""
    last = held[-1].ts_recv
    k = sum(r.ts_recv == last for r in held)
    assert [bytes(r) for r in replayed[:k]] == [bytes(r) for r in held[-k:]]
    return held + replayed[k:]


@pytest.fixture
def gateway_at(synthetic_market) -> Iterator:
    started: list[LiveGateway] = []

    def start(at: str, speed: float | None = None, faults: str | None = None,
              control: Path | None = None) -> LiveGateway:
        gateway = start_live_thread(make_state(synthetic_market, ns_of(at), speed, [KEY], faults, control))
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def _wait_disconnected(client: db.Live, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while client.is_connected():
        if time.monotonic() > deadline:
            raise TimeoutError("the gateway did not drop the connection")
        time.sleep(0.05)


@pytest.mark.parametrize("schema", ["trades", "mbo"])
def test_dropped_connection_then_replay_from_last_ts_recv_loses_and_duplicates_nothing(
        gateway_at, synthetic_client, schema: str) -> None:
    gateway = gateway_at(BUSY_AT, faults="drop_after=150")
    lo, hi = ns_of(BUSY_AT), ns_of(BUSY_AT) + 3 * 3600 * NS
    first, got_first = stream(gateway.port, schema, "ES.FUT", stype_in="parent")
    try:
        _wait_disconnected(first)
    finally:
        first.terminate()
    held = got_first.data()
    assert 0 < len(held) <= 150
    last_ts_recv = held[-1].ts_recv
    second, got_second = stream(gateway.port, schema, "ES.FUT", stype_in="parent", start=last_ts_recv)
    try:
        got_second.wait_until(lambda rs: any(getattr(r, "ts_recv", 0) >= hi for r in rs[-5:]))
    finally:
        second.terminate()
    replayed = [r for r in got_second.data() if r.ts_recv < hi]
    assert replayed[0].ts_recv == last_ts_recv  # start= is inclusive: the records at last_ts_recv come again
    joined = [bytes(r) for r in join(held, replayed)]
    historical = synthetic_client.timeseries.get_range(DATASET, start=lo, end=hi, symbols="ES.FUT",
                                                       stype_in="parent", schema=schema)
    assert joined == [bytes(r) for r in historical]  # zero lost, zero duplicated, every byte equal
    if schema == "trades":
        by_key = {record_key(r): bytes(r) for r in held + replayed}
        assert len(by_key) == len(joined) and sorted(by_key.values()) == sorted(joined)


def test_stalled_stream_sends_nothing_not_even_heartbeats(gateway_at) -> None:
    stall_at = ns_of(BUSY_AT) + 5 * 60 * NS
    gateway = gateway_at(BUSY_AT, speed=600.0, faults=f"stall_at={stall_at},stall_s=3")
    client, got = stream(gateway.port, "trades", "ES.FUT", stype_in="parent", heartbeat_interval_s=1)
    try:
        got.wait_until(lambda rs: any(isinstance(r, dbn.TradeMsg) and r.ts_recv >= stall_at + 60 * NS
                                      for r in rs[-5:]), timeout=30)
    finally:
        client.terminate()
    gaps = np.diff(got.arrived)
    widest = int(np.argmax(gaps))
    assert gaps[widest] >= 2.5  # silence: no record and no heartbeat for the stall
    assert np.delete(gaps, widest).max() < 2.0  # elsewhere heartbeats (1 s) or data keep arriving
    before, after = got.records[widest], got.records[widest + 1]
    assert before.ts_event < stall_at <= after.ts_event


def test_slow_reader_is_disconnected_with_an_error_record() -> None:
    from hdi_gateway.synthetic import SyntheticMarket

    dense = SyntheticMarket(seed=7, ticks_per_session=100_000)  # megabytes a second at this speed
    state = make_state(dense, ns_of(BUSY_AT), 1e5, [KEY], "send_buffer_kb=64,slow_reader_s=1")
    with start_live_thread(state) as gateway:
        _slow_reader(gateway)


def _slow_reader(gateway: LiveGateway) -> None:
    client = connect(gateway.port)
    got = Collector()
    stuck = {"done": False}

    def slow(record) -> None:
        if not stuck["done"]:  # the reader stops reading for 4 s (blocking the client's event loop)
            stuck["done"] = True
            time.sleep(4)
        got(record)

    client.add_callback(slow)
    client.subscribe(DATASET, "tbbo", "ES.FUT", stype_in="parent", start=0)
    client.start()
    try:
        got.wait_until(lambda rs: any(isinstance(r, dbn.ErrorMsg) for r in rs[-3:]))
    except BaseException:
        client.terminate()
        raise
    with pytest.raises(db.BentoError, match="Slow reader"):
        client.block_for_close(timeout=WAIT_S)
    error = got.of(dbn.ErrorMsg)[-1]
    assert error.code == dbn.ErrorCode.SKIPPED_RECORDS_AFTER_SLOW_READING


def test_fault_spec_parses_times_and_refuses_unknown_names() -> None:
    faults = LiveFaults.parse("drop_after=10, stall_at=2024-03-05T19:05, stall_s=2.5, send_buffer_kb=64")
    assert faults.drop_after == 10 and faults.stall_s == 2.5 and faults.send_buffer_bytes == 64 * 1024
    assert faults.stall_at_ns == 1_709_665_500 * NS  # 2024-03-05T19:05:00Z, by hand
    assert faults.claim("drop:0") and not faults.claim("drop:0")  # once per gateway unless repeat=1
    assert LiveFaults.parse("repeat=1").claim("x") and LiveFaults.parse("repeat=1").claim("x")
    with pytest.raises(ConfigError, match="drop_soon"):
        LiveFaults.parse("drop_soon=1")
    with pytest.raises(ConfigError, match="not a number"):
        LiveFaults.parse("drop_after=many")


def test_control_file_replaces_the_faults_when_it_changes(tmp_path: Path) -> None:
    control = tmp_path / "faults"
    source = FaultSource("drop_after=5", control)
    assert source.current().drop_after == 5  # no file yet: the --faults spec
    control.write_text("stall_s=1\n")
    assert source.current().drop_after is None and source.current().stall_s == 1.0
    generation = source.current().generation
    control.write_text("drop_after=0\n")
    os.utime(control, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert source.current().drop_after == 0 and source.current().generation == generation + 1


def test_control_file_drops_a_running_session(gateway_at, tmp_path: Path) -> None:
    control = tmp_path / "faults"
    gateway = gateway_at(BUSY_AT, speed=600.0, control=control)
    client, got = stream(gateway.port, "trades", "ES.FUT", stype_in="parent", heartbeat_interval_s=1)
    try:
        got.wait_until(lambda rs: len(got.data()) >= 3, timeout=30)
        control.write_text("drop_after=0\n")
        _wait_disconnected(client, timeout=10)
    finally:
        client.terminate()
