"""The live feed over the unmodified databento.Live client (in the relay child process, live_relay) against the
offline live gateway (in a thread): bytes with ts_out, a refused key not retried, an unreachable gateway given up
after the backoff's limit, the relay stopped with the feed."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from hdi_core.errors import ConfigError
from hdi_core.live.records import schema_of_rtype, split_records
from hdi_gateway.live import make_state, start_live_thread
from hdi_resources.databento import live_relay  # noqa: F401 - run as the relay child process of LiveFeed
from hdi_resources.databento.live import LiveAuthError, LiveConnectError, LiveFeed, LiveSubscription, parse_gateway

AT = int(np.datetime64("2024-03-05T15:00", "ns").astype(np.int64))
NS = 1_000_000_000


@pytest.fixture
def gateway(synthetic_market):
    running = start_live_thread(make_state(synthetic_market, AT, None, ["db-local-key"], None))
    try:
        yield running
    finally:
        running.stop()


def test_feed_hands_over_raw_records_with_ts_out(gateway, monkeypatch) -> None:
    monkeypatch.setenv("DATABENTO_API_KEY", "db-local-key")
    feed = LiveFeed("GLBX.MDP3", [LiveSubscription("trades", ("ES.v.0",))], f"127.0.0.1:{gateway.port}")
    before = time.time_ns()
    feed.open(AT - 3600 * NS)
    try:
        data = bytearray()
        deadline = time.monotonic() + 30
        while len(data) < 48 * 20 and time.monotonic() < deadline:
            data += feed.read(0.5)
        assert feed.is_connected() and feed.metadata is not None
        relay = feed._relay
        assert relay is not None and relay.alive()  # the client runs in the relay child process
        feed.close()
        assert not feed.is_connected() and relay.alive()  # the relay outlives a connection (reconnects)
    finally:
        feed.shutdown()
    assert relay.proc.returncode is not None  # stopped with the feed
    batch, used = split_records(data, schema_of_rtype(["trades"]))
    assert used == len(data) and len(batch.records["trades"]) >= 10
    assert batch.mappings["stype_in_symbol"].tolist() == [b"ES.v.0"]
    assert (batch.ts_out["trades"] >= before).all() and (batch.records["trades"]["ts_recv"] >= AT - 3600 * NS).all()


def test_a_refused_key_is_not_retried(gateway, monkeypatch) -> None:
    monkeypatch.setenv("DATABENTO_API_KEY", "db-wrong-key")
    feed = LiveFeed("GLBX.MDP3", [LiveSubscription("trades", ("ES.v.0",))], f"127.0.0.1:{gateway.port}")
    started = time.monotonic()
    with pytest.raises(LiveAuthError, match="refused the key") as refused:
        feed.open_with_backoff(lambda: None, give_up_s=60)
    assert time.monotonic() - started < 20
    feed.shutdown()
    assert "db-wrong-key" not in str(refused.value)  # the key is never in a message


def test_an_unreachable_gateway_is_retried_with_backoff_then_given_up(monkeypatch) -> None:
    monkeypatch.setenv("DATABENTO_API_KEY", "db-local-key")
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    feed = LiveFeed("GLBX.MDP3", [LiveSubscription("trades", ("ES.v.0",))], f"127.0.0.1:{port}")
    tries = []
    original = feed.open
    monkeypatch.setattr(feed, "open", lambda start: (tries.append(start), original(start)))
    with pytest.raises(LiveConnectError):
        feed.open_with_backoff(lambda: 7, give_up_s=1.5, initial_s=0.1)
    feed.shutdown()
    assert len(tries) >= 2 and set(tries) == {7}


def test_gateway_setting() -> None:
    assert parse_gateway("127.0.0.1:13000") == ("127.0.0.1", 13000)
    assert parse_gateway("") is None
    with pytest.raises(ConfigError, match="host:port"):
        parse_gateway("localhost")
