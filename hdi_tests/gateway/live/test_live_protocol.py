"""The control protocol, live-only records, replay clock and batch merge, each checked against the databento
client's own code or a hand-computed answer."""

from __future__ import annotations

import time

import databento_dbn as dbn
import numpy as np
import pytest
from databento.common.cram import get_challenge_response
from databento.live.gateway import (
    AuthenticationRequest,
    AuthenticationResponse,
    ChallengeRequest,
    Greeting,
    SessionStart,
    SubscriptionRequest,
    parse_gateway_message,
)

from hdi_core.errors import HdiError
from hdi_gateway.live import ReplayClock, messages, parse_speed, protocol
from hdi_gateway.live.stream import merge


@pytest.mark.parametrize("key", ["db-local-key", "db-ABCDEFGHIJKLMNOPQRSTUVWXYZ012", "db-x-y-z-w"])
def test_cram_matches_the_client_and_refuses_other_keys(key: str) -> None:
    challenge = protocol.new_challenge()
    reply = get_challenge_response(challenge, key)
    assert protocol.challenge_response(challenge, key) == reply
    assert protocol.authenticate(challenge, reply, ["db-other-key", key])
    assert not protocol.authenticate(challenge, reply, ["db-other-key"])
    assert not protocol.authenticate(protocol.new_challenge(), reply, [key])  # a replayed reply fails


def test_gateway_lines_parse_in_the_client() -> None:
    assert isinstance(parse_gateway_message(protocol.greeting().decode()), Greeting)
    challenge = parse_gateway_message(protocol.format_line(cram="abc-_12").decode())
    assert isinstance(challenge, ChallengeRequest) and challenge.cram == "abc-_12"
    ok = parse_gateway_message(protocol.format_line(success=1, session_id=7).decode())
    assert isinstance(ok, AuthenticationResponse) and ok.success == "1" and ok.session_id == "7"
    refused = parse_gateway_message(protocol.format_line(success=0, error="Authentication failed.").decode())
    assert refused.success == "0" and refused.error == "Authentication failed."


def test_client_lines_parse_in_the_gateway() -> None:
    auth = AuthenticationRequest(auth="f" * 64 + "-l-key", dataset="GLBX.MDP3", heartbeat_interval_s=5)
    parsed = protocol.AuthRequest.parse(protocol.parse_line(bytes(auth)))
    assert (parsed.dataset, parsed.encoding, parsed.compression, parsed.ts_out, parsed.heartbeat_interval_s) == (
        "GLBX.MDP3", "dbn", "none", False, 5)
    sub = SubscriptionRequest(schema="trades", stype_in="continuous", symbols="ES.c.0,NQ.v.0",
                              start=1_700_000_000_000_000_000, id=3, is_last=0)
    request = protocol.SubscriptionRequest.parse(protocol.parse_line(bytes(sub)))
    assert request == protocol.SubscriptionRequest("trades", "continuous", ("ES.c.0", "NQ.v.0"),
                                                   1_700_000_000_000_000_000, False, 3, False)
    assert "start_session" in protocol.parse_line(bytes(SessionStart()))
    with pytest.raises(protocol.ControlError):
        protocol.AuthRequest.parse({"dataset": "GLBX.MDP3"})


def test_live_records_decode_as_databento_records() -> None:
    meta = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_out=dbn.SType.INSTRUMENT_ID, version=3, schema=None,
                        stype_in=None, symbols=[], partial=[], not_found=[], mappings=[], end=None, limit=None,
                        ts_out=False)
    body = (messages.symbol_mappings(5, "parent", ["ES.FUT", "ES.FUT"], [10291, 10294], ["ESH4", "ESM4"])
            + messages.heartbeat(6) + messages.error_message(7, "Failed to resolve symbol: X", 4))
    decoder = dbn.DBNDecoder()
    decoder.write(bytes(meta) + body)
    _, first, second, beat, error = decoder.decode()
    assert (first.instrument_id, first.stype_in_symbol, first.stype_out_symbol) == (10291, "ES.FUT", "ESH4")
    assert second.stype_out_symbol == "ESM4" and first.stype_in == dbn.SType.PARENT
    assert beat.is_heartbeat() and beat.ts_event == 6
    assert error.err == "Failed to resolve symbol: X" and error.code == dbn.ErrorCode.SYMBOL_RESOLUTION_FAILED


def test_merge_orders_two_schemas_by_send_time_stably() -> None:
    a = np.zeros(3, dtype=[("x", "u1"), ("pad", "S7")])
    a["x"] = [1, 2, 3]
    b = np.zeros(2, dtype=[("y", "u1"), ("pad", "S15")])
    b["y"] = [10, 20]
    batch = merge([(a, np.array([5, 7, 9])), (b, np.array([7, 8]))])
    # by hand: send times 5(a1) 7(a2) 7(b10) 8(b20) 9(a3); a tie keeps schema order
    expected = a[0:1].tobytes() + a[1:2].tobytes() + b[0:1].tobytes() + b[1:2].tobytes() + a[2:3].tobytes()
    assert batch.tobytes() == expected
    assert batch.ends.tolist() == [8, 16, 32, 48, 56] and batch.send_ns.tolist() == [5, 7, 7, 8, 9]
    assert batch.head(2).tobytes() == expected[:16] and batch.head(0).count == 0


def test_speed_and_clock() -> None:
    assert parse_speed("max") is None and parse_speed("60") == 60.0
    with pytest.raises(HdiError, match="--speed"):
        parse_speed("-1")
    clock = ReplayClock(1_000, speed=1000.0)
    time.sleep(0.05)
    assert 1_000 + 40_000_000_000 <= clock.now() <= 1_000 + 1000 * 1_000_000_000  # ~50 s of market
    fastest = ReplayClock(1_000, speed=None)
    fastest.advance(5_000)
    fastest.advance(4_000)
    assert fastest.now() == 5_000 and fastest.is_max
