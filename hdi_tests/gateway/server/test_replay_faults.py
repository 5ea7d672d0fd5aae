"""Injected gateway faults, seen through the plain databento client (retrying is the resource's job)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import databento as db
import pytest
import requests
from repo_paths import DBN_SAMPLES

from hdi_core.errors import ConfigError
from hdi_gateway.faults import parse_fault_spec
from hdi_gateway.files import FileSource
from hdi_gateway.server import Gateway, start_gateway_thread

DBN_SAMPLES = DBN_SAMPLES
KEY = "db-fault-test"
RANGE = {"dataset": "GLBX.MDP3", "start": "2020-12-28", "end": "2020-12-29", "symbols": ["ESH1"]}


@pytest.fixture(scope="module")
def small_source() -> FileSource:
    return FileSource(DBN_SAMPLES / "databento-python" / "GLBX.MDP3")


@pytest.fixture
def faulty(small_source: FileSource) -> Iterator:
    """Start a gateway with a fault SPEC; stopped after the test."""
    started: list[Gateway] = []

    def start(spec: str) -> db.Historical:
        gateway = start_gateway_thread(small_source, faults=parse_fault_spec(spec))
        started.append(gateway)
        return db.Historical(KEY, gateway=gateway.url)

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("429", "name=value"),
        ("429=x", "number"),
        ("429=1.5", "0..1"),
        ("teapot=0.1", "unknown item"),
        ("429=0.6,500=0.6", "more than 1"),
        ("retry_after=-1", "negative"),
    ],
)
def test_bad_spec_is_one_clear_line(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_fault_spec(spec)
    assert "\n" not in str(err.value)


def test_spec_draws_are_seeded() -> None:
    spec = "429=0.2,500=0.05,503=0.05,504=0.05,reset=0.1,slow=0.05,retry_after=1,seed=3"
    first, second = parse_fault_spec(spec), parse_fault_spec(spec)
    assert first is not None and second is not None
    draws = [first.draw() for _ in range(200)]
    assert draws == [second.draw() for _ in range(200)]
    assert {"429", "500", "reset", None} <= set(draws)
    assert parse_fault_spec("") is None


def test_429_has_retry_after(faulty) -> None:
    client = faulty("429=1,retry_after=7")
    with pytest.raises(db.BentoClientError) as err:
        client.timeseries.get_range(**RANGE)
    assert err.value.http_status == 429 and err.value.headers["Retry-After"] == "7"
    with pytest.raises(db.BentoClientError):
        client.metadata.get_record_count(schema="trades", **RANGE)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_raise_server_error(faulty, status: int) -> None:
    client = faulty(f"{status}=1")
    with pytest.raises(db.BentoServerError) as err:
        client.timeseries.get_range(**RANGE)
    assert err.value.http_status == status
    assert "case" in err.value.json_body["detail"]
    with pytest.raises(db.BentoServerError):
        client.metadata.get_cost(schema="trades", **RANGE)


def test_reset_drops_the_stream(faulty) -> None:
    client = faulty("reset=1")
    with pytest.raises(db.BentoError, match="Error streaming response"):
        client.timeseries.get_range(**RANGE)
    with pytest.raises(requests.exceptions.RequestException):
        client.metadata.list_datasets()


def test_slow_still_answers(faulty) -> None:
    client = faulty("slow=1,slow_s=0.3")
    began = time.monotonic()
    assert len(client.timeseries.get_range(**RANGE).to_ndarray()) == 4
    assert time.monotonic() - began >= 0.3  # the delay happened (a lower bound, not a speed check)


def test_mixed_faults_repeat_with_the_seed(faulty) -> None:
    spec = "429=0.3,503=0.2,reset=0.2,seed=11"

    def outcomes(client: db.Historical) -> list[str]:
        seen = []
        for _ in range(20):
            try:
                client.timeseries.get_range(**RANGE)
                seen.append("ok")
            except db.BentoHttpError as exc:
                seen.append(str(exc.http_status))
            except db.BentoError:
                seen.append("reset")
        return seen

    first, second = outcomes(faulty(spec)), outcomes(faulty(spec))
    assert first == second
    assert {"ok", "429", "503", "reset"} <= set(first)
