"""The live gateway against the unmodified databento.Live client over loopback: authentication, every schema
equal to the historical gateway's get_range for the same span, symbology and errors."""

from __future__ import annotations

from collections.abc import Iterator

import databento as db
import databento_dbn as dbn
import numpy as np
import pytest
from live_client import DATASET, KEY, connect, send_ns, stream

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
