"""DatabentoResource against the real `databento` client and the real local gateway over loopback TLS.

Nothing is mocked: every call goes through `databento.Historical` to `hdi_gateway.server` serving the
synthetic market. Requests the gateway answered are counted from its own request log.
"""

import logging
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import certifi
import pyarrow as pa
import pytest
import zstandard
from dagster import AssetExecutionContext, DagsterInstance, asset, materialize
from repo_paths import REPO_ROOT

from hdi_core.errors import BudgetExceededError, ConfigError, GatewayNotConfiguredError, HdiError
from hdi_gateway.faults import parse_fault_spec
from hdi_gateway.server import Gateway, start_gateway_thread
from hdi_gateway.synthetic import SyntheticMarket
from hdi_resources.databento import DatabentoResource, merge_mappings, split_chunks
from hdi_resources.databento.cache import decode_chunk
from hdi_resources.databento.tls import combined_ca_bundle
from hdi_resources.retry import TruncatedBodyError

REPO = REPO_ROOT
SAMPLES = REPO.parent / "shared" / "fixtures" / "dbn_samples" / "databento-python" / "GLBX.MDP3"

KEY = "db-TestKeyDoNotLeak0123456789"
WRONG_KEY = "db-WrongKeyAlsoSecret987654321"
DATASET = "GLBX.MDP3"
SEED = 11
TICKS = 2_000
START, END = "2024-03-04", "2024-03-11"  # 7 days: 4 chunks of 2 days
# Every fault kind at a high combined rate (62% of requests fault); 429s ask for 1 s, capped below.
FAULT_SPEC = ("429=0.12,500=0.08,502=0.06,503=0.08,504=0.08,reset=0.14,slow=0.06,"
              "retry_after=1,slow_s=0.2,seed=213")
RETRY_REASONS = ("HTTP 429", "HTTP 500", "HTTP 502", "HTTP 503", "HTTP 504", "stream cut mid-body")
ENV_TOUCHED = ("HDI_HOME", "DATABENTO_API_KEY", "HDI_DATABENTO_GATEWAY", "HDI_DATABENTO_CA",
               "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
GATEWAY_LOGGER = "hdi.replay.gateway"


# ---------------------------------------------------------------------------------------------- fixtures


class RequestLog(logging.Handler):
    """The gateway's access log ('"POST /v0/timeseries.get_range HTTP/1.1" 200 -'): one line per answer."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "/v0/" in message:
            self.lines.append(message)

    def count(self, endpoint: str) -> int:
        return sum(1 for line in self.lines if f"/v0/{endpoint}" in line)


@pytest.fixture
def requests_seen() -> Iterator[RequestLog]:
    handler = RequestLog()
    logger = logging.getLogger(GATEWAY_LOGGER)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture(scope="module", autouse=True)
def restore_env() -> Iterator[None]:
    """Tests here remove REQUESTS_CA_BUNDLE / SSL_CERT_FILE: other test files get theirs back."""
    saved = {name: os.environ.get(name) for name in ENV_TOUCHED}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HDI_HOME; no key, gateway or CA bundle leaks in from the environment or out to other tests."""
    home = tmp_path / "home"
    monkeypatch.setenv("HDI_HOME", str(home))
    for name in ("DATABENTO_API_KEY", "HDI_DATABENTO_GATEWAY", "HDI_DATABENTO_CA", "REQUESTS_CA_BUNDLE",
                 "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    return home


def _start(tmp_path_factory: pytest.TempPathFactory, spec: str | None = None) -> Gateway:
    """A gateway thread over the seeded synthetic market, accepting only KEY; certificates in a temp dir."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HDI_HOME", str(tmp_path_factory.mktemp("gateway-home")))
        return start_gateway_thread(SyntheticMarket(seed=SEED, ticks_per_session=TICKS),
                                    faults=parse_fault_spec(spec), keys=[KEY])


@pytest.fixture(scope="module")
def clean_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = _start(tmp_path_factory)
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def faulty_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = _start(tmp_path_factory, FAULT_SPEC)
    try:
        yield gateway
    finally:
        gateway.stop()


def resource_for(gateway: Gateway, cache_dir: Path, **overrides: object) -> DatabentoResource:
    """Production settings from the YAML, pointed at the gateway, with short backoffs for tests."""
    fields: dict[str, object] = {
        "api_key": KEY, "gateway": gateway.url, "ca_path": str(gateway.ca_path), "cache_dir": str(cache_dir),
        "date_chunk_interval_days": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "jitter_s": 0.01,
        "max_attempts": 15, "max_retry_after_s": 0.2,
    }
    fields.update(overrides)
    return DatabentoResource.from_config(**fields)


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*") if p.is_file() and p.suffix in (".zst", ".dbn"))


def leftovers(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob(".partial-*"))


def retry_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "retrying in" in line]


@pytest.fixture(scope="module")
def reference(clean_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """ES.v.0 trades over START..END from the fault-free gateway: the rows every other run must reproduce."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HDI_HOME", str(tmp_path_factory.mktemp("reference-home")))
        result = resource_for(clean_gateway, tmp_path_factory.mktemp("reference-cache")).get_range(
            DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    assert result.table.num_rows > 1000
    return result.table


# ---------------------------------------------------------------------------------------------- fetching


def test_fetch_is_columnar_chunked_cached_and_mapped(clean_gateway: Gateway, reference: pa.Table,
                                                     tmp_path: Path, requests_seen: RequestLog) -> None:
    cache = tmp_path / "cache"
    result = resource_for(clean_gateway, cache).get_range(DATASET, "trades", "ES.v.0", START, END,
                                                          stype_in="continuous")
    table = result.table
    assert table.equals(reference)
    assert table.schema.field("price").type == pa.int64()  # fixed point 1e-9, never float
    assert table.schema.field("ts_event").type == pa.int64()
    assert table.schema.field("ts_recv").type == pa.int64()
    assert table.schema.field("instrument_id").type == pa.uint32()
    assert "length" not in table.column_names and not any(n.startswith("_") for n in table.column_names)
    ts_recv = table.column("ts_recv").to_numpy()
    assert (ts_recv[1:] >= ts_recv[:-1]).all(), "chunks concatenated out of order"
    assert ts_recv.min() >= 1_709_510_400_000_000_000 and ts_recv.max() < 1_710_115_200_000_000_000

    assert (result.chunks, result.from_cache, result.fetched) == (4, 0, 4)
    assert result.cost_usd > 0 and result.bytes > 0
    assert requests_seen.count("timeseries.get_range") == 4
    assert requests_seen.count("metadata.get_cost") == 1  # the four uncached chunks priced as one span
    files = cache_files(cache)
    assert len(files) == 4 and all(p.name.endswith(".dbn.zst") for p in files)
    assert all(p.read_bytes()[:4] == b"\x28\xb5\x2f\xfd" for p in files)  # zstd, as the server sent it
    assert not leftovers(cache)

    # Mappings come from the DBN metadata of every chunk, merged into intervals that cover the range.
    intervals = result.mappings["ES.v.0"]
    assert intervals[0].start_date.isoformat() == START and intervals[-1].end_date.isoformat() == END
    ids = set(table.column("instrument_id").to_numpy().tolist())
    assert {int(iv.symbol) for iv in intervals} == ids
    for before, after in zip(intervals, intervals[1:], strict=False):
        assert before.end_date <= after.start_date and before.symbol != after.symbol


def test_definitions_statistics_and_empty_ranges(clean_gateway: Gateway, tmp_path: Path) -> None:
    resource = resource_for(clean_gateway, tmp_path / "cache")
    definitions = resource.definitions(DATASET, "ES.FUT", START, END, stype_in="parent").table
    assert definitions.num_rows > 0 and definitions.schema.field("raw_symbol").type == pa.string()
    assert set(definitions.column("raw_symbol").to_pylist()) >= {"ESH4", "ESM4"}
    assert definitions.schema.field("expiration").type == pa.int64()
    statistics = resource.statistics(DATASET, "ES.v.0", START, END, stype_in="continuous").table
    assert set(statistics.column("stat_type").to_pylist()) >= {3, 9}  # settlement, open interest
    # Saturday to Sunday morning: no session, a metadata-only stream, an empty table with the right columns.
    weekend = resource.get_range(DATASET, "trades", "ES.v.0", "2024-03-09", "2024-03-10T12:00",
                                 stype_in="continuous")
    assert weekend.table.num_rows == 0 and "price" in weekend.table.column_names
    assert len(cache_files(tmp_path / "cache")) == 4 + 4 + 1


def test_date_chunking_splits_and_concatenates_exactly(clean_gateway: Gateway, reference: pa.Table,
                                                       tmp_path: Path, requests_seen: RequestLog) -> None:
    whole = resource_for(clean_gateway, tmp_path / "c1", date_chunk_interval_days=365).get_range(
        DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    assert whole.chunks == 1 and requests_seen.count("timeseries.get_range") == 1
    daily = resource_for(clean_gateway, tmp_path / "c2", date_chunk_interval_days=1).get_range(
        DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    assert daily.chunks == 7 and requests_seen.count("timeseries.get_range") == 8
    assert whole.table.equals(reference) and daily.table.equals(reference)
    assert whole.mappings == daily.mappings
    assert len(cache_files(tmp_path / "c2")) == 7
    # Chunks download concurrently and land in any order; the result is still in time order.
    wide = resource_for(clean_gateway, tmp_path / "c3", date_chunk_interval_days=1, parallel_fetches=4).get_range(
        DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    assert wide.table.equals(reference) and wide.mappings == whole.mappings

    day = 86_400 * 10**9
    assert split_chunks(0, 7 * day, 2) == [(0, 2 * day), (2 * day, 4 * day), (4 * day, 6 * day),
                                           (6 * day, 7 * day)]
    assert split_chunks(5, 6, 31) == [(5, 6)]
    with pytest.raises(HdiError, match="empty date range"):
        split_chunks(6, 6, 31)


def test_every_retry_reason_survives_and_returns_the_same_rows(
    faulty_gateway: Gateway, clean_gateway: Gateway, reference: pa.Table, tmp_path: Path,
    requests_seen: RequestLog, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hdi.databento")
    faulty = resource_for(faulty_gateway, tmp_path / "faulty")
    clean = resource_for(clean_gateway, tmp_path / "clean")
    result = faulty.get_range(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    assert result.table.equals(reference)
    # More requests, each compared with the fault-free run, until every fault kind has been survived.
    requests_to_try = [
        ("ohlcv-1m", None, "raw_symbol", START, END),
        ("trades", "NQ.v.0", "continuous", START, END),
        ("tbbo", "ES.v.0", "continuous", START, END),
        ("statistics", "ES.FUT", "parent", START, END),
        ("trades", "GC.v.0", "continuous", START, END),
        ("ohlcv-1s", "ES.v.1", "continuous", START, END),
        ("trades", "ES.v.0", "continuous", "2024-03-11", "2024-03-15"),
    ]
    for schema, symbols, stype_in, start, end in requests_to_try:
        if all(reason in caplog.text for reason in RETRY_REASONS):
            break
        got = faulty.get_range(DATASET, schema, symbols, start, end, stype_in=stype_in)
        want = clean.get_range(DATASET, schema, symbols, start, end, stype_in=stype_in)
        assert got.table.num_rows > 0 and got.table.equals(want.table), (schema, symbols)
        assert got.mappings == want.mappings
    resolved = faulty.resolve(DATASET, ["ES.v.0"], "continuous", "instrument_id", START, END)
    assert resolved["result"]["ES.v.0"]

    lines = retry_lines(caplog.text)
    for reason in RETRY_REASONS:
        assert any(reason in line for line in lines), f"no retry for {reason}; saw {lines}"
    for line in lines:  # attempt, reason and wait in every line
        assert re.search(r"attempt \d+/15 failed \(.+\); retrying in \d+\.\d\ds", line), line
    # 429 asked for 1 s; the cap (max_retry_after_s=0.2) wins.
    assert all("retrying in 0.20s" in line for line in lines if "HTTP 429" in line)
    assert not leftovers(tmp_path / "faulty")


def test_non_retryable_4xx_is_not_retried(clean_gateway: Gateway, tmp_path: Path, requests_seen: RequestLog,
                                          caplog: pytest.LogCaptureFixture) -> None:
    resource = resource_for(clean_gateway, tmp_path / "cache")
    # imbalance is a valid Databento schema the synthetic dataset does not serve: the gateway answers 422.
    with pytest.raises(HdiError) as info:
        resource.get_range(DATASET, "imbalance", "ES.v.0", START, END, stype_in="continuous")
    message = str(info.value)
    assert "HTTP 422" in message and "\n" not in message and "after" not in message
    assert requests_seen.count("metadata.get_cost") == 1 and requests_seen.count("timeseries.get_range") == 0
    assert not retry_lines(caplog.text)
    assert not cache_files(tmp_path / "cache")

    # A schema the client itself rejects never reaches the wire.
    with pytest.raises(HdiError, match="schema"):
        resource.get_range(DATASET, "no-such-schema", "ES.v.0", START, END, stype_in="continuous")
    assert len(requests_seen.lines) == 1


def test_retry_after_is_honoured_and_capped(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                            requests_seen: RequestLog,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hdi.databento")
    gateway = _start(tmp_path_factory, "429=1.0,retry_after=1")
    try:
        honoured = resource_for(gateway, tmp_path / "a", max_attempts=2, max_retry_after_s=60.0)
        started = time.monotonic()
        with pytest.raises(HdiError, match=r"after 2 attempts \(HTTP 429"):
            honoured.get_cost(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
        assert time.monotonic() - started >= 0.95  # it really waited the second the server asked for
        assert [line for line in retry_lines(caplog.text) if "retrying in 1.00s" in line]

        caplog.clear()
        capped = resource_for(gateway, tmp_path / "b", max_attempts=3, max_retry_after_s=0.1)
        with pytest.raises(HdiError, match=r"after 3 attempts \(HTTP 429"):
            capped.get_range(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
        lines = retry_lines(caplog.text)
        assert len(lines) == 2 and all("(HTTP 429); retrying in 0.10s" in line for line in lines)
        assert requests_seen.count("metadata.get_cost") == 2 + 3
        assert requests_seen.count("timeseries.get_range") == 0
        assert not cache_files(tmp_path / "b")
    finally:
        gateway.stop()


# ------------------------------------------------------------------------------------------ cost and cache


def test_budget_below_cost_fetches_nothing(clean_gateway: Gateway, tmp_path: Path,
                                           requests_seen: RequestLog) -> None:
    cache = tmp_path / "cache"
    resource = resource_for(clean_gateway, cache, budget_usd=0.00001)
    cost = resource.get_cost(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    assert cost > resource.budget_usd
    with pytest.raises(BudgetExceededError) as info:
        resource.get_range(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    message = str(info.value)
    assert f"request {DATASET} trades ES.v.0 {START}..{END} would cost $" in message
    assert "over the budget of $0.000010; nothing was fetched" in message
    assert requests_seen.count("timeseries.get_range") == 0
    assert requests_seen.count("metadata.get_cost") == 2
    assert not cache_files(cache)


def test_cache_hit_makes_no_http_calls_and_costs_nothing(tmp_path_factory: pytest.TempPathFactory,
                                                         tmp_path: Path, reference: pa.Table,
                                                         requests_seen: RequestLog) -> None:
    cache = tmp_path / "cache"
    gateway = _start(tmp_path_factory)
    try:
        resource = resource_for(gateway, cache, max_attempts=1)
        # First half of the range, then the whole: only the missing chunks are priced and fetched.
        first = resource.get_range(DATASET, "trades", "ES.v.0", START, "2024-03-08", stype_in="continuous")
        assert (first.chunks, first.from_cache) == (2, 0)
        whole = resource.get_range(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
        assert (whole.chunks, whole.from_cache, whole.fetched) == (4, 2, 2)
        assert 0 < whole.cost_usd < resource.get_cost(DATASET, "trades", "ES.v.0", "2024-03-08", "2024-03-20",
                                                      stype_in="continuous")
        assert requests_seen.count("timeseries.get_range") == 4
        assert whole.table.equals(reference)
    finally:
        gateway.stop()

    seen = len(requests_seen.lines)
    again = resource.get_range(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    assert again.table.equals(reference)
    assert (again.cost_usd, again.bytes, again.from_cache, again.chunks) == (0.0, 0, 4, 4)
    assert again.mappings == whole.mappings
    assert resource.get_cost(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous") == 0.0
    assert len(requests_seen.lines) == seen


def _seed_where(pattern: list[bool], probability: float) -> int:
    """A fault seed whose first draws fault (True) or not (False) in this order, per faults.py's generator."""
    for seed in range(1000):
        rng = random.Random(seed)
        if all((rng.random() < probability) == want for want in pattern):
            return seed
    raise AssertionError("no seed found")


def test_partial_download_leaves_no_cache_file(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                               requests_seen: RequestLog) -> None:
    seed = _seed_where([False, True], 0.5)  # get_cost answers, then get_range is cut mid-body
    gateway = _start(tmp_path_factory, f"reset=0.5,seed={seed}")
    cache = tmp_path / "cache"
    try:
        resource = resource_for(gateway, cache, max_attempts=1, date_chunk_interval_days=31)
        with pytest.raises(HdiError) as info:
            resource.get_range(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    finally:
        gateway.stop()
    assert "Error streaming response" in str(info.value) and "\n" not in str(info.value)
    assert requests_seen.count("timeseries.get_range") == 1
    assert not cache_files(cache) and not leftovers(cache)


def test_truncated_bodies_are_refused_before_caching() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"DBN sample files not found under {SAMPLES}")
    raw = (SAMPLES / "test_data.trades.dbn.zst").read_bytes()
    decoded = decode_chunk(raw, "sample")
    assert len(decoded.records_of()) == 4 and "ESH1" in decoded.mappings
    with pytest.raises(TruncatedBodyError):
        decode_chunk(raw[:-7], "sample")  # zstd frame cut
    plain = zstandard.ZstdDecompressor().stream_reader(raw).read()
    with pytest.raises(TruncatedBodyError):
        decode_chunk(plain[:-5], "sample")  # last record cut
    merged = merge_mappings([decoded.mappings, decoded.mappings])
    assert len(merged["ESH1"]) == 1


# ------------------------------------------------------------------------------------------ config and errors


def test_missing_configuration_gives_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  clean_gateway: Gateway) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(GatewayNotConfiguredError) as info:
        DatabentoResource.from_env(cache_dir=str(cache)).get_range(DATASET, "trades", "ES.v.0", START, END,
                                                                  stype_in="continuous")
    message = str(info.value)
    assert "hdi replay serve" in message and "export" in message and "DATABENTO_API_KEY" in message
    assert "\n" not in message

    monkeypatch.setenv("HDI_DATABENTO_GATEWAY", clean_gateway.url)
    monkeypatch.setenv("HDI_DATABENTO_CA", str(clean_gateway.ca_path))
    with pytest.raises(ConfigError, match="DATABENTO_API_KEY is empty"):
        DatabentoResource.from_env(cache_dir=str(cache)).get_range(DATASET, "trades", "ES.v.0", START, END,
                                                                  stype_in="continuous")
    assert not cache.exists()

    # With the export lines in place, from_env() (the CLI path) works end to end.
    monkeypatch.setenv("DATABENTO_API_KEY", KEY)
    resource = DatabentoResource.from_env(cache_dir=str(cache))
    assert (resource.gateway, resource.budget_usd, resource.max_attempts) == (clean_gateway.url, 50.0, 6)
    assert resource.date_chunk_interval_days == 31
    assert resource.get_range(DATASET, "ohlcv-1d", "ES.v.0", START, END, stype_in="continuous").table.num_rows


def test_wrong_key_is_one_clear_line_and_caches_nothing(clean_gateway: Gateway, tmp_path: Path,
                                                        requests_seen: RequestLog,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    resource = resource_for(clean_gateway, tmp_path / "cache", api_key=WRONG_KEY)
    with pytest.raises(HdiError) as info:
        resource.get_range(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous")
    message = str(info.value)
    assert "refused the API key (HTTP 401" in message and "DATABENTO_API_KEY" in message
    assert "\n" not in message and WRONG_KEY not in message
    assert len(requests_seen.lines) == 1  # a 401 is never retried
    assert not cache_files(tmp_path / "cache")
    assert WRONG_KEY not in caplog.text


def test_secrets_never_in_logs_messages_or_repr(faulty_gateway: Gateway, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DATABENTO_API_KEY", KEY)  # so redact() knows the secret too
    resource = resource_for(faulty_gateway, tmp_path / "cache", max_attempts=2)
    messages: list[str] = []
    for _ in range(4):  # with two attempts against a faulty gateway, some calls fail: those messages too
        try:
            resource.get_range(DATASET, "ohlcv-1h", None, START, END)
        except HdiError as exc:
            messages.append(str(exc))
    with pytest.raises(HdiError) as info:
        resource.get_range(DATASET, "imbalance", None, START, END)
    messages.append(str(info.value))
    assert retry_lines(caplog.text), "expected retries to be logged"
    assert KEY not in caplog.text
    assert not any(KEY in m for m in messages)
    assert KEY not in repr(resource) and KEY not in str(resource)


def test_combined_ca_bundle_keeps_public_roots(clean_gateway: Gateway, faulty_gateway: Gateway,
                                               tmp_path: Path, isolated_env: Path) -> None:
    resource = resource_for(clean_gateway, tmp_path / "cache")
    resource.get_range(DATASET, "ohlcv-1d", "ES.v.0", START, END, stype_in="continuous")
    # The CA is trusted only during the calls: the process environment is left as it was.
    assert "REQUESTS_CA_BUNDLE" not in os.environ and "SSL_CERT_FILE" not in os.environ
    bundle = combined_ca_bundle(str(clean_gateway.ca_path))
    assert bundle.is_relative_to(isolated_env)
    text = bundle.read_text()
    assert Path(certifi.where()).read_text().strip().splitlines()[-1] in text  # public roots still trusted
    assert clean_gateway.ca_path.read_text().strip().splitlines()[-2] in text  # and the gateway's CA
    # A CA file holding an older gateway certificate first (same subject) still trusts the current one.
    stacked = tmp_path / "stacked.pem"
    stacked.write_bytes(faulty_gateway.ca_path.read_bytes() + clean_gateway.ca_path.read_bytes())
    again = resource_for(clean_gateway, tmp_path / "c3", ca_path=str(stacked)).get_range(
        DATASET, "ohlcv-1d", "ES.v.0", START, END, stype_in="continuous")
    assert again.table.num_rows > 0
    with pytest.raises(ConfigError, match="not a readable file"):
        resource_for(clean_gateway, tmp_path / "c2", ca_path=str(tmp_path / "missing.pem")).get_range(
            DATASET, "ohlcv-1d", "ES.v.0", START, END, stype_in="continuous")
    # Without the gateway's CA, verification fails (it is never switched off).
    with pytest.raises(HdiError, match="TLS verification"):
        resource_for(clean_gateway, tmp_path / "c4", ca_path="").get_range(
            DATASET, "ohlcv-1d", "ES.v.0", START, END, stype_in="continuous")


# ---------------------------------------------------------------------------------------------- dagster


def test_in_a_dagster_asset_retries_reach_the_run_log(faulty_gateway: Gateway, tmp_path: Path) -> None:
    @asset
    def es_trades(context: AssetExecutionContext, databento: DatabentoResource) -> int:
        result = databento.get_range(DATASET, "trades", "ES.v.0", START, END, stype_in="continuous",
                                     context=context)
        return result.table.num_rows

    instance = DagsterInstance.ephemeral()
    resource = resource_for(faulty_gateway, tmp_path / "cache")
    result = materialize([es_trades], resources={"databento": resource}, instance=instance)
    assert result.success and result.output_for_node("es_trades") > 0
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("retrying in" in m for m in messages), "retries did not reach the Dagster run log"
    assert any("rows from 4 chunks" in m for m in messages)
    assert not any(KEY in m for m in messages)
