"""`DatabentoResource`: the one door to Databento (or the local gateway) for every HDI fetch.

Every `get_range` is priced before anything is fetched, split into date chunks, served from the on-disk
cache when it can be, retried on transient failures, and returned as one Arrow table (int64 fixed-point
prices, int64 ns timestamps) plus the symbol mappings from the DBN metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import databento as db
import databento_dbn
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import requests
import zstandard
from dagster import ConfigurableResource
from databento.common.constants import SCHEMA_STRUCT_MAP, SCHEMA_STRUCT_MAP_V1, SCHEMA_STRUCT_MAP_V2
from databento.common.error import BentoClientError, BentoError, BentoHttpError, BentoWarning
from pydantic import Field, PrivateAttr

from hdi_core.errors import BudgetExceededError, ConfigError, GatewayNotConfiguredError, HdiError
from hdi_resources.lake.leftovers import sweep_partials
from hdi_resources.retry import (
    DEFAULT_RETRY_ON_STATUS,
    RetryPolicy,
    TruncatedBodyError,
    call_with_retries,
    one_line,
    retry_reason,
)
from hdi_resources.settings import ENV_API_KEY, ENV_CA, ENV_GATEWAY, hdi_home, load_yaml, redact

log = logging.getLogger("hdi.databento")

T = TypeVar("T")

CONFIG_FILE = "api_specific/databento_config.yaml"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
NS = 1_000_000_000
NS_PER_DAY = 86_400 * NS
# DBN u64 time fields that become int64 ns columns (UNDEF_TIMESTAMP, 2**64-1, reads as -1).
TIME_FIELDS = frozenset(
    {"ts_event", "ts_recv", "ts_ref", "ts_out", "expiration", "activation", "auction_time"}
)
# Record layouts by DBN version, as `DBNStore.to_ndarray` picks them (no upgrade).
_STRUCT_MAPS: dict[int, dict[Any, Any]] = {1: SCHEMA_STRUCT_MAP_V1, 2: SCHEMA_STRUCT_MAP_V2, 3: SCHEMA_STRUCT_MAP}
PARTIAL_STALE_SECONDS = 3600.0  # a .partial-* untouched this long was left by a killed download (hdi doctor too)
_GATHER_BLOCK_BYTES = 1 << 20  # records per column-gather step: stays in cache while every column takes its part
HOW_TO_START_GATEWAY = (
    f"set {ENV_API_KEY} to your Databento key, or start the offline gateway with `hdi replay serve` "
    f"and run the export lines it prints ({ENV_GATEWAY}, {ENV_CA}, {ENV_API_KEY})"
)

_bundle_lock = threading.Lock()


# ----------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MappingInterval:
    """One input symbol resolved to one instrument over [start_date, end_date) (UTC dates)."""

    start_date: dt.date
    end_date: dt.date
    symbol: str  # instrument_id (as text) or raw symbol, per stype_out


@dataclass
class FetchResult:
    """What `get_range` returns: the rows as one Arrow table plus where they came from and what they cost."""

    table: pa.Table
    mappings: dict[str, list[MappingInterval]]
    cost_usd: float
    bytes: int  # compressed bytes received over the network (cache hits count 0)
    from_cache: int  # chunks served from the disk cache
    chunks: int  # chunks the request was split into
    cache_files: list[str] = field(default_factory=list)

    @property
    def fetched(self) -> int:
        """Chunks that went over the network."""
        return self.chunks - self.from_cache


@dataclass(frozen=True)
class ChunkRequest:
    """One `timeseries.get_range` call: the unit that is priced, fetched and cached."""

    dataset: str
    schema: str
    symbols: tuple[str, ...]
    stype_in: str
    stype_out: str
    start_ns: int
    end_ns: int
    limit: int | None

    def cache_key(self, source: str) -> str:
        """Hash of everything that decides the bytes the server sends (and which server sends them)."""
        payload = json.dumps(
            {
                "source": source,
                "dataset": self.dataset,
                "schema": self.schema,
                "symbols": sorted(self.symbols),
                "stype_in": self.stype_in,
                "stype_out": self.stype_out,
                "start": self.start_ns,
                "end": self.end_ns,
                "limit": self.limit,
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def label(self) -> str:
        """`GLBX.MDP3 trades ES.v.0 2024-01-01..2024-02-01`: names a request in logs and errors."""
        return (
            f"{self.dataset} {self.schema} {','.join(self.symbols)} "
            f"{_format_ts(self.start_ns)}..{_format_ts(self.end_ns)}"
        )


# ----------------------------------------------------------------------------------------------- helpers


def _to_ns(value: pd.Timestamp | dt.datetime | dt.date | str | int) -> int:
    """Any start/end form the Databento client takes, as int ns since the epoch (naive means UTC)."""
    if isinstance(value, int):
        return value
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


def _format_ts(ns: int) -> str:
    """A date when the instant is midnight UTC, else full ISO-8601."""
    ts = pd.Timestamp(ns, unit="ns", tz="UTC")
    return ts.date().isoformat() if ns % NS_PER_DAY == 0 else ts.isoformat()


def _iso(ns: int) -> str:
    """The wire form of a start/end: ISO-8601 with an explicit UTC offset."""
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def _normalise_symbols(symbols: Iterable[str | int] | str | int | None, stype_in: str) -> tuple[str, ...]:
    """Symbols as the client sends them: comma lists split, raw symbols upper-cased, None = ALL_SYMBOLS."""
    if symbols is None:
        return ("ALL_SYMBOLS",)
    if isinstance(symbols, str):
        items = symbols.split(",")
    elif isinstance(symbols, int):
        items = [str(symbols)]
    else:
        items = [str(s) for s in symbols]
    cleaned = [s.strip() for s in items if str(s).strip()]
    if not cleaned:
        raise HdiError("no symbols given; pass at least one symbol (or None for ALL_SYMBOLS)")
    if stype_in == "raw_symbol":
        cleaned = [s.upper() for s in cleaned]
    return tuple(cleaned)


def split_chunks(start_ns: int, end_ns: int, interval_days: int) -> list[tuple[int, int]]:
    """[start, end) cut into consecutive spans of `interval_days` (the last one shorter)."""
    if end_ns <= start_ns:
        raise HdiError(
            f"empty date range: start {_format_ts(start_ns)} is not before end {_format_ts(end_ns)}"
        )
    step = max(1, interval_days) * NS_PER_DAY
    bounds = list(range(start_ns, end_ns, step)) + [end_ns]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _decompress_complete(raw: bytes) -> bytes | memoryview:
    """The plain DBN bytes of a body, refusing a zstd stream whose last frame was cut off.

    One frame that states its size and ends exactly at the end of the body (what the gateway sends) is
    decompressed straight into one NumPy buffer (huge pages: far fewer page faults than a bytes object);
    anything else goes frame by frame.
    """
    if raw[:4] != ZSTD_MAGIC:
        return raw
    try:
        size = zstandard.frame_content_size(raw)
    except zstandard.ZstdError:  # a header cut short: the frame-by-frame path names the problem
        size = -1
    if size >= 0 and _zstd_frame_end(raw) == len(raw):
        plain = np.empty(size + 1, dtype=np.uint8)  # one spare byte: output past the stated size is corrupt
        view = memoryview(plain)
        filled = 0
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=1 << 20)
            while filled <= size and (got := reader.readinto(view[filled:])):
                filled += got
        except zstandard.ZstdError as exc:
            raise TruncatedBodyError(f"corrupt zstd body: {exc}") from None
        if filled != size:
            raise TruncatedBodyError(f"zstd body holds {filled} bytes, its frame header states {size}")
        return view[:size]
    parts: list[bytes] = []
    rest = raw
    while rest:
        decomp = zstandard.ZstdDecompressor().decompressobj()
        try:
            parts.append(decomp.decompress(rest))
        except zstandard.ZstdError as exc:
            raise TruncatedBodyError(f"corrupt zstd body: {exc}") from None
        if not decomp.eof:
            raise TruncatedBodyError(f"zstd body ends mid-frame after {len(raw)} bytes")
        rest = decomp.unused_data
    return b"".join(parts)


def _zstd_frame_end(raw: bytes) -> int | None:
    """Offset just past the zstd frame that starts `raw`, found by walking its block headers; None if unreadable."""
    try:
        pos = zstandard.frame_header_size(raw[:18])
        has_checksum = zstandard.get_frame_parameters(raw[:18]).has_checksum
    except zstandard.ZstdError:
        return None
    view = memoryview(raw)
    while pos + 3 <= len(view):
        header = int.from_bytes(view[pos : pos + 3], "little")
        block_type = (header >> 1) & 3
        if block_type == 3:  # reserved: corrupt
            return None
        pos += 3 + (1 if block_type == 1 else header >> 3)  # an RLE block stores one byte
        if header & 1:  # last block
            return pos + (4 if has_checksum else 0)
    return None


def _decode_dbn(plain: bytes | memoryview) -> tuple[np.ndarray, dict[str, list[dict[str, Any]]]]:
    """Records (one structured array, DBN layout) and symbol mappings of a complete, plain DBN body.

    A one-schema stream is viewed zero-copy with the dtype `DBNStore.to_ndarray` uses for its version;
    mixed (live-format) streams go through `DBNStore`.
    """
    if len(plain) < 8 or plain[:3] != b"DBN":
        raise BentoError("the response body is not DBN data")
    meta_len = int.from_bytes(plain[4:8], "little") + 8
    if len(plain) < meta_len:
        raise TruncatedBodyError(f"DBN metadata cut off at {len(plain)} of {meta_len} bytes")
    try:
        metadata = databento_dbn.Metadata.decode(
            bytes(plain[:meta_len]), upgrade_policy=databento_dbn.VersionUpgradePolicy.AS_IS
        )
    except databento_dbn.DBNError as exc:
        raise BentoError(f"unreadable DBN metadata ({one_line(str(exc))})") from None
    if metadata.schema is None:
        records = _decode_mixed(plain)
    else:
        dtype = np.dtype(_STRUCT_MAPS.get(metadata.version, SCHEMA_STRUCT_MAP)[metadata.schema]._dtypes)
        loose = (len(plain) - meta_len) % dtype.itemsize
        if loose:
            raise TruncatedBodyError(f"DBN body is truncated: {loose} bytes of an incomplete last record")
        records = np.frombuffer(plain, dtype=dtype, offset=meta_len)
    if len(records) and "length" in (records.dtype.names or ()):
        if records.dtype.itemsize % 4 or not np.all(records["length"] == records.dtype.itemsize // 4):
            raise TruncatedBodyError("record lengths disagree with the schema (mixed or corrupt stream)")
    return records, dict(metadata.mappings)


def _decode_mixed(plain: bytes | memoryview) -> np.ndarray:
    """A stream without one schema, as `DBNStore.to_ndarray` reads it (per-record: small live files only)."""
    store = db.DBNStore.from_bytes(bytes(plain))
    with warnings.catch_warnings():
        # The client only warns about a trailing partial record; for a download that means a cut body.
        warnings.simplefilter("error", BentoWarning)
        try:
            return np.asarray(store.to_ndarray()).reshape(-1)
        except BentoWarning as exc:
            raise TruncatedBodyError(str(exc)) from None


def records_to_table(records: np.ndarray | list[np.ndarray]) -> pa.Table:
    """A DBN structured array (or same-dtype arrays, concatenated) as an Arrow table, column by column.

    Prices stay int64 fixed point (1e-9); time fields become int64 ns; fixed-width text becomes strings;
    reserved padding and the record `length` byte are dropped. Columns are gathered block by block (a
    cache-sized slice of records feeds every column) so the records are read from memory once.
    """
    arrays = [records] if isinstance(records, np.ndarray) else list(records)
    dtype = arrays[0].dtype
    names = [n for n in (dtype.names or ()) if not n.startswith("_") and n != "length"]
    total = sum(len(a) for a in arrays)
    gathered = {
        name: np.empty(total, dtype=np.uint8 if dtype[name].kind == "S" else dtype[name])
        for name in names
        if dtype[name].kind in "iu" or (dtype[name].kind == "S" and dtype[name].itemsize == 1)
    }
    block = max(1024, _GATHER_BLOCK_BYTES // max(1, dtype.itemsize))
    at = 0
    for array in arrays:
        for lo in range(0, len(array), block):
            part = array[lo : lo + block]
            hi = at + len(part)
            for name, out in gathered.items():
                column = part[name]
                out[at:hi] = column.view(np.uint8) if column.dtype.kind == "S" else column
            at = hi
    offsets: pa.Buffer | None = None  # shared by every one-byte text column without NULs
    columns: list[pa.Array] = []
    for name in names:
        out = gathered.get(name)
        if out is None:  # wider text: few rows (definitions), the general path
            column = np.concatenate([a[name] for a in arrays]) if len(arrays) > 1 else arrays[0][name]
            binary = pa.array(column)
            try:
                columns.append(pc.cast(binary, pa.string()))
            except pa.ArrowInvalid:
                columns.append(binary)
        elif dtype[name].kind == "S":
            if out.all():  # no NUL: the gathered bytes are the string data as they are
                if offsets is None:
                    offsets = pa.py_buffer(np.arange(total + 1, dtype=np.int32))
                column_offsets, data = offsets, pa.py_buffer(out)
            else:
                column_offsets, data = _one_byte_text(out)
            # a byte >= 0x80 alone is not UTF-8: such a column stays binary, as a failed cast would leave it
            kind = pa.binary() if total and out.max() >= 0x80 else pa.string()
            columns.append(pa.Array.from_buffers(kind, total, [None, column_offsets, data]))
        elif name in TIME_FIELDS and out.dtype.kind == "u":
            columns.append(pa.array(out.view(np.int64)))
        else:
            columns.append(pa.array(out))
    return pa.Table.from_arrays(columns, names=names)


def _one_byte_text(codes: np.ndarray) -> tuple[pa.Buffer, pa.Buffer]:
    """Arrow offsets and data of one-byte strings; a NUL byte is the empty string, as NumPy reads `S1`."""
    present = codes != 0
    offsets = np.zeros(len(codes) + 1, dtype=np.int32)
    np.cumsum(present, out=offsets[1:])
    return pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(codes[present]))


def merge_mappings(parts: list[dict[str, list[dict[str, Any]]]]) -> dict[str, list[MappingInterval]]:
    """Per input symbol, the chunks' intervals in date order, touching/overlapping same-symbol ones merged."""
    collected: dict[str, list[MappingInterval]] = {}
    for part in parts:
        for input_symbol, intervals in part.items():
            for iv in intervals:
                collected.setdefault(input_symbol, []).append(
                    MappingInterval(_as_date(iv["start_date"]), _as_date(iv["end_date"]), str(iv["symbol"]))
                )
    merged: dict[str, list[MappingInterval]] = {}
    for input_symbol, intervals in collected.items():
        out: list[MappingInterval] = []
        for iv in sorted(intervals, key=lambda i: (i.start_date, i.end_date)):
            if out and out[-1].symbol == iv.symbol and iv.start_date <= out[-1].end_date:
                last = out[-1]
                out[-1] = MappingInterval(last.start_date, max(last.end_date, iv.end_date), last.symbol)
            else:
                out.append(iv)
        merged[input_symbol] = out
    return merged


def _as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.S)


def _gateway_certs(ca_bytes: bytes, base_bytes: bytes) -> list[bytes]:
    """The CA file's certificates not already in the base store, the LAST one kept per subject.

    Every gateway certificate is named alike; OpenSSL trusts the first of a subject it meets, so a stale
    one earlier in the file (a bundle built on an older bundle) would hide the gateway's current one.
    """
    from cryptography import x509

    known = set(_PEM_CERT.findall(base_bytes))
    latest: dict[bytes, bytes] = {}
    for block in _PEM_CERT.findall(ca_bytes):
        if block in known:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old public roots with odd serial numbers warn on load
            try:
                subject = x509.load_pem_x509_certificate(block).subject.public_bytes()
            except ValueError:
                subject = block
        latest.pop(subject, None)
        latest[subject] = block
    return list(latest.values())


def combined_ca_bundle(ca_path: str) -> Path:
    """A CA bundle = certifi's roots + the gateway's CA, written once under HDI_HOME.

    Pointing REQUESTS_CA_BUNDLE / SSL_CERT_FILE at it lets the client trust the local gateway while every
    other TLS peer is still verified against the usual roots.
    """
    import certifi

    gateway_ca = Path(ca_path).expanduser()
    if not gateway_ca.is_file():
        raise ConfigError(f"{ENV_CA} / ca_path points to {gateway_ca}, which is not a readable file")
    ca_bytes = gateway_ca.read_bytes()
    # certifi only, never an inherited bundle: it may hold another gateway's CA under the same subject.
    base_bytes = Path(certifi.where()).read_bytes()
    extra = _gateway_certs(ca_bytes, base_bytes)
    if not extra:
        raise ConfigError(f"{ENV_CA} / ca_path file {gateway_ca} holds no PEM certificate beyond certifi's")
    tls_dir = hdi_home() / "tls"
    content = base_bytes.rstrip(b"\n") + b"\n" + b"\n".join(extra) + b"\n"
    bundle = tls_dir / f"hdi-ca-{hashlib.sha256(content).hexdigest()[:16]}.pem"
    with _bundle_lock:
        if not bundle.is_file():
            tls_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=tls_dir, prefix=".bundle-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            os.replace(tmp, bundle)
        os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
        os.environ["SSL_CERT_FILE"] = str(bundle)
    return bundle


# ----------------------------------------------------------------------------------------------- resource


class DatabentoResource(ConfigurableResource):
    """Databento Historical access with cost guard, date chunking, disk cache and retries.

    Empty `api_key` / None `gateway` / None `ca_path` are read from DATABENTO_API_KEY /
    HDI_DATABENTO_GATEWAY / HDI_DATABENTO_CA when used, so the key never has to sit in run config.
    """

    api_key: str = Field(default="", repr=False, description="Databento key; empty = read DATABENTO_API_KEY")
    gateway: str | None = Field(default=None, description="Local gateway URL; None = HDI_DATABENTO_GATEWAY")
    ca_path: str | None = Field(default=None, description="Local gateway's PEM CA; None = HDI_DATABENTO_CA")
    key_env_var: str = ENV_API_KEY
    budget_usd: float = 50.0
    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    jitter_s: float = 0.25
    max_retry_after_s: float = 60.0
    retry_on_status: list[int] = Field(default=list(DEFAULT_RETRY_ON_STATUS))
    date_chunk_interval_days: int = 31
    # Chunks of one request downloaded at once: a 6-month window is 6 chunks; Databento allows 100 connections.
    parallel_fetches: int = 2
    cache_dir: str | None = Field(default=None, description="None = HDI_HOME/cache/databento")

    _clients: dict[tuple[str, str | None], db.Historical] = PrivateAttr(default_factory=dict)

    # -- construction -----------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config_name: str = CONFIG_FILE, **overrides: Any) -> DatabentoResource:
        """Settings from configs/api_specific/databento_config.yaml; keyword arguments win."""
        try:
            raw = load_yaml(config_name)
        except FileNotFoundError as exc:
            raise ConfigError(f"Databento config {config_name} not found under configs/") from exc
        api = raw.get("api") or {}
        policy = raw.get("retry_policy") or {}
        fields: dict[str, Any] = {}
        try:
            if "key_env_var" in api:
                fields["key_env_var"] = str(api["key_env_var"])
            if "budget_usd" in api:
                fields["budget_usd"] = float(api["budget_usd"])
            for name in ("max_attempts",):
                if name in policy:
                    fields[name] = int(policy[name])
            for name in ("base_delay_s", "max_delay_s", "jitter_s", "max_retry_after_s"):
                if name in policy:
                    fields[name] = float(policy[name])
            if "retry_on_status" in policy:
                fields["retry_on_status"] = [int(s) for s in policy["retry_on_status"]]
            if "date_chunk_interval_days" in raw:
                fields["date_chunk_interval_days"] = int(raw["date_chunk_interval_days"])
            if "parallel_fetches" in raw:
                fields["parallel_fetches"] = max(1, int(raw["parallel_fetches"]))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{config_name}: invalid value ({exc})") from None
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def from_env(cls, **overrides: Any) -> DatabentoResource:
        """For the CLI: YAML settings plus the key, gateway and CA from the environment right now."""
        resource = cls.from_config(**overrides)
        env_fields: dict[str, Any] = {}
        if "api_key" not in overrides:
            env_fields["api_key"] = os.environ.get(resource.key_env_var, "")
        if "gateway" not in overrides:
            env_fields["gateway"] = os.environ.get(ENV_GATEWAY) or None
        if "ca_path" not in overrides:
            env_fields["ca_path"] = os.environ.get(ENV_CA) or None
        return cls.from_config(**{**overrides, **env_fields})

    # -- settings resolved at use time ------------------------------------------------------------------

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay_s=self.base_delay_s,
            max_delay_s=self.max_delay_s,
            jitter_s=self.jitter_s,
            max_retry_after_s=self.max_retry_after_s,
            retry_on_status=tuple(self.retry_on_status),
        )

    def _gateway_url(self) -> str | None:
        return (self.gateway or os.environ.get(ENV_GATEWAY) or "").strip() or None

    def _source_label(self) -> str:
        """Who serves the data: the cache is namespaced by it so gateway data never passes for real data."""
        gateway = self._gateway_url()
        if gateway is None:
            return "databento"
        from urllib.parse import urlsplit

        parts = urlsplit(gateway if "://" in gateway else f"https://{gateway}")
        return f"gateway:{parts.netloc or parts.path}"

    def _resolved_key(self) -> str:
        key = (self.api_key or os.environ.get(self.key_env_var) or "").strip()
        gateway = self._gateway_url()
        if not key and gateway is None:
            raise GatewayNotConfiguredError(
                f"no Databento API key and no local gateway configured: {HOW_TO_START_GATEWAY}"
            )
        if not key:
            raise ConfigError(
                f"{ENV_GATEWAY} is set ({redact(gateway or '')}) but {self.key_env_var} is empty; "
                f"the gateway needs a key too: use the export lines printed by `hdi replay serve`"
            )
        if key == "YOUR_API_KEY":
            raise ConfigError(f"{self.key_env_var} is still the placeholder YOUR_API_KEY; set your real key")
        return key

    def _client(self) -> db.Historical:
        key = self._resolved_key()
        gateway = self._gateway_url()
        ca = (self.ca_path or os.environ.get(ENV_CA) or "").strip() or None
        if ca is not None:
            combined_ca_bundle(ca)
        cache_key = (hashlib.sha256(key.encode()).hexdigest(), gateway)
        client = self._clients.get(cache_key)
        if client is None:
            try:
                client = db.Historical(key=key, gateway=gateway) if gateway else db.Historical(key=key)
            except ValueError as exc:
                raise ConfigError(
                    f"invalid Databento gateway {redact(gateway or '')}: {one_line(str(exc))}"
                ) from None
            self._clients[cache_key] = client
        return client

    def _cache_root(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else hdi_home() / "cache" / "databento"

    def cache_path(self, chunk: ChunkRequest) -> Path:
        """Where the chunk's DBN bytes (zstd) live on disk."""
        key = chunk.cache_key(self._source_label())
        return self._cache_root() / chunk.dataset / chunk.schema / f"{key}.dbn.zst"

    # -- calls with retries and user-facing errors ------------------------------------------------------

    def _call(self, fn: Callable[[], T], what: str, context: Any | None) -> T:
        """Run one API call with retries; any failure leaves as a one-line HdiError without the key."""
        policy = self.retry_policy
        try:
            return call_with_retries(fn, policy, what, context=context)
        except HdiError:
            raise
        except BentoClientError as exc:
            detail = one_line(exc.message or "")
            if exc.http_status in (401, 403):
                raise HdiError(
                    f"{what}: Databento refused the API key (HTTP {exc.http_status}: {detail}); check "
                    f"{self.key_env_var} (for the local gateway, the key printed by `hdi replay serve`)"
                ) from None
            attempts = f" after {policy.max_attempts} attempts" if retry_reason(exc, policy) else ""
            raise HdiError(f"{what}: request rejected{attempts} (HTTP {exc.http_status}: {detail})") from None
        except BentoHttpError as exc:
            attempts = f" after {policy.max_attempts} attempts" if retry_reason(exc, policy) else ""
            raise HdiError(
                f"{what}: server error{attempts} (HTTP {exc.http_status}: {one_line(exc.message or '')})"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise HdiError(
                f"{what}: TLS verification of {redact(self._gateway_url() or 'Databento')} failed; for the "
                f"local gateway set {ENV_CA} to its CA file ({one_line(str(exc), 200)})"
            ) from None
        except ValueError as exc:
            if retry_reason(exc, policy) is None:  # the client's own argument checks (schema, stype, ...)
                raise HdiError(f"{what}: invalid request ({one_line(str(exc))})") from None
            raise HdiError(
                f"{what}: failed after {policy.max_attempts} attempts ({type(exc).__name__}: "
                f"{one_line(str(exc))})"
            ) from None
        except (BentoError, TruncatedBodyError, OSError, requests.RequestException) as exc:
            reason = retry_reason(exc, policy)
            attempts = f" after {policy.max_attempts} attempts" if reason else ""
            where = redact(self._gateway_url() or "Databento")
            raise HdiError(
                f"{what}: failed{attempts} talking to {where} ({type(exc).__name__}: {one_line(str(exc))})"
            ) from None

    # -- public API -------------------------------------------------------------------------------------

    def plan(
        self,
        dataset: str,
        schema: str,
        symbols: Iterable[str | int] | str | int | None,
        start: pd.Timestamp | dt.datetime | dt.date | str | int,
        end: pd.Timestamp | dt.datetime | dt.date | str | int,
        stype_in: str = "raw_symbol",
        stype_out: str = "instrument_id",
        limit: int | None = None,
    ) -> list[ChunkRequest]:
        """The chunk requests a `get_range` makes (one when `limit` is set: a limit spans the whole range)."""
        start_ns, end_ns = _to_ns(start), _to_ns(end)
        stype_in, stype_out = str(stype_in), str(stype_out)
        syms = _normalise_symbols(symbols, stype_in)
        spans = split_chunks(start_ns, end_ns, self.date_chunk_interval_days)
        if limit is not None:
            spans = [(start_ns, end_ns)]
        return [ChunkRequest(dataset, str(schema), syms, stype_in, stype_out, s, e, limit) for s, e in spans]

    def get_cost(
        self,
        dataset: str,
        schema: str,
        symbols: Iterable[str | int] | str | int | None,
        start: pd.Timestamp | dt.datetime | dt.date | str | int,
        end: pd.Timestamp | dt.datetime | dt.date | str | int,
        stype_in: str = "raw_symbol",
        stype_out: str = "instrument_id",
        limit: int | None = None,
        context: Any | None = None,
    ) -> float:
        """USD a `get_range` with these arguments would cost now: cached chunks are free."""
        chunks = self.plan(dataset, schema, symbols, start, end, stype_in, stype_out, limit)
        self._resolved_key()
        return self._price([c for c in chunks if not self.cache_path(c).is_file()], context)

    def _price(self, uncached: list[ChunkRequest], context: Any | None) -> float:
        """metadata.get_cost over each run of consecutive uncached chunks (one call per run)."""
        if not uncached:
            return 0.0
        client = self._client()
        runs: list[list[ChunkRequest]] = []
        for chunk in uncached:
            if runs and runs[-1][-1].end_ns == chunk.start_ns:
                runs[-1].append(chunk)
            else:
                runs.append([chunk])
        total = 0.0
        for run in runs:
            first, last = run[0], run[-1]
            span = ChunkRequest(first.dataset, first.schema, first.symbols, first.stype_in, first.stype_out,
                                first.start_ns, last.end_ns, first.limit)

            def ask(span: ChunkRequest = span) -> float:
                return float(client.metadata.get_cost(
                    dataset=span.dataset, start=_iso(span.start_ns), end=_iso(span.end_ns),
                    symbols=list(span.symbols), schema=span.schema, stype_in=span.stype_in, limit=span.limit,
                ))

            total += self._call(ask, f"get_cost {span.label()}", context)
        return total

    def get_range(
        self,
        dataset: str,
        schema: str,
        symbols: Iterable[str | int] | str | int | None,
        start: pd.Timestamp | dt.datetime | dt.date | str | int,
        end: pd.Timestamp | dt.datetime | dt.date | str | int,
        stype_in: str = "raw_symbol",
        stype_out: str = "instrument_id",
        limit: int | None = None,
        context: Any | None = None,
    ) -> FetchResult:
        """Rows of `schema` for `symbols` in [start, end): priced first, cache-first, chunked, retried."""
        chunks = self.plan(dataset, schema, symbols, start, end, stype_in, stype_out, limit)
        self._resolved_key()  # no credentials, no data: not even cached data from an unknown source
        whole = ChunkRequest(dataset, chunks[0].schema, chunks[0].symbols, chunks[0].stype_in,
                             chunks[0].stype_out, chunks[0].start_ns, chunks[-1].end_ns, limit)

        cached: dict[int, tuple[np.ndarray, dict[str, list[dict[str, Any]]]]] = {}
        for i, chunk in enumerate(chunks):
            hit = self._read_cache(chunk)
            if hit is not None:
                cached[i] = hit
        uncached = [c for i, c in enumerate(chunks) if i not in cached]

        cost = self._price(uncached, context)
        if cost > self.budget_usd:
            raise BudgetExceededError(
                f"request {whole.label()} would cost {_usd(cost)}, over the budget of "
                f"{_usd(self.budget_usd)}; nothing was fetched"
            )

        fetched = self._fetch_chunks({i: c for i, c in enumerate(chunks) if i not in cached}, context)
        fetched_bytes = sum(nbytes for _, _, nbytes in fetched.values())
        parts = [cached[i] if i in cached else fetched[i][:2] for i in range(len(chunks))]
        arrays = [records for records, _ in parts]
        mapping_parts = [mappings for _, mappings in parts]
        files = [str(self.cache_path(chunk)) for chunk in chunks]

        message = (
            f"{whole.label()}: {sum(len(a) for a in arrays)} rows from {len(chunks)} chunks "
            f"({len(cached)} cached), {fetched_bytes} bytes fetched, {_usd(cost)}"
        )
        log.info(message)
        if context is not None and getattr(context, "log", None) is not None:
            context.log.info(message)
        return FetchResult(
            table=_concat_tables(arrays),
            mappings=merge_mappings(mapping_parts),
            cost_usd=cost,
            bytes=fetched_bytes,
            from_cache=len(cached),
            chunks=len(chunks),
            cache_files=files,
        )

    def _fetch_chunks(
        self, todo: dict[int, ChunkRequest], context: Any | None
    ) -> dict[int, tuple[np.ndarray, dict[str, list[dict[str, Any]]], int]]:
        """Download the uncached chunks, `parallel_fetches` at a time (each retried and cached on its own, so a
        failure keeps the chunks already done), logging progress as each one lands."""
        done: dict[int, tuple[np.ndarray, dict[str, list[dict[str, Any]]], int]] = {}
        if not todo:
            return done
        with ThreadPoolExecutor(max_workers=max(1, min(self.parallel_fetches, len(todo)))) as pool:
            futures = {pool.submit(self._fetch_chunk, chunk, context): i for i, chunk in todo.items()}
            for future in as_completed(futures):
                i = futures[future]
                done[i] = future.result()
                message = f"fetched chunk {len(done)}/{len(todo)}: {todo[i].label()} ({len(done[i][0]):,} rows)"
                log.info(message)
                if context is not None and getattr(context, "log", None) is not None:
                    context.log.info(message)
        return done

    def _read_cache(self, chunk: ChunkRequest) -> tuple[np.ndarray, dict[str, list[dict[str, Any]]]] | None:
        path = self.cache_path(chunk)
        if not path.is_file():
            return None
        try:
            return _decode_dbn(_decompress_complete(path.read_bytes()))
        except (BentoError, TruncatedBodyError, ValueError, OSError) as exc:
            # A damaged cache file is dropped and fetched again rather than trusted.
            log.warning("dropping unreadable cache file %s (%s)", path, one_line(str(exc), 160))
            path.unlink(missing_ok=True)
            return None

    def _fetch_chunk(
        self, chunk: ChunkRequest, context: Any | None
    ) -> tuple[np.ndarray, dict[str, list[dict[str, Any]]], int]:
        """Download one chunk (retried whole), check it decodes, then atomically enter it in the cache.

        The client streams the body straight into a `.partial-*` file beside the cache entry (no in-memory
        body and no second write); only a body that decodes completely is renamed into place.
        """
        client = self._client()
        path = self.cache_path(chunk)
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_partials(path.parent, PARTIAL_STALE_SECONDS)  # bodies of killed downloads; live ones stay fresh

        def download() -> tuple[Path, bytes, bytes | memoryview, np.ndarray, dict[str, list[dict[str, Any]]]]:
            partial = path.parent / f".partial-{uuid.uuid4().hex}.dbn.zst"
            try:
                client.timeseries.get_range(
                    dataset=chunk.dataset, start=_iso(chunk.start_ns), end=_iso(chunk.end_ns),
                    symbols=list(chunk.symbols), schema=chunk.schema, stype_in=chunk.stype_in,
                    stype_out=chunk.stype_out, limit=chunk.limit, path=partial,
                )
                raw = partial.read_bytes()
                plain = _decompress_complete(raw)
                records, mappings = _decode_dbn(plain)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            return partial, raw, plain, records, mappings

        partial, raw, plain, records, mappings = self._call(download, f"get_range {chunk.label()}", context)
        try:
            if raw[:4] != ZSTD_MAGIC:  # a plain body is stored compressed, like Databento's own downloads
                body = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(plain)
                with open(partial, "wb") as fh:
                    fh.write(body)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return records, mappings, len(raw)

    def resolve(
        self,
        dataset: str,
        symbols: Iterable[str | int] | str | int,
        stype_in: str,
        stype_out: str,
        start_date: dt.date | str,
        end_date: dt.date | str | None = None,
        context: Any | None = None,
    ) -> dict[str, Any]:
        """symbology.resolve (retried): the JSON answer, `result` = {symbol: [{d0, d1, s}]}."""
        client = self._client()
        syms = list(_normalise_symbols(symbols, str(stype_in)))
        what = f"symbology.resolve {dataset} {','.join(syms)} {start_date}..{end_date or ''}"
        return self._call(
            lambda: client.symbology.resolve(
                dataset=dataset, symbols=syms, stype_in=stype_in, stype_out=stype_out,
                start_date=start_date, end_date=end_date,
            ),
            what,
            context,
        )

    def definitions(
        self,
        dataset: str,
        symbols: Iterable[str | int] | str | int | None,
        start: pd.Timestamp | dt.datetime | dt.date | str | int,
        end: pd.Timestamp | dt.datetime | dt.date | str | int,
        stype_in: str = "raw_symbol",
        context: Any | None = None,
    ) -> FetchResult:
        """Instrument definition records (schema `definition`) through the same guard, cache and retries."""
        return self.get_range(dataset, "definition", symbols, start, end, stype_in=stype_in, context=context)

    def statistics(
        self,
        dataset: str,
        symbols: Iterable[str | int] | str | int | None,
        start: pd.Timestamp | dt.datetime | dt.date | str | int,
        end: pd.Timestamp | dt.datetime | dt.date | str | int,
        stype_in: str = "raw_symbol",
        context: Any | None = None,
    ) -> FetchResult:
        """Statistics records (settlement = stat_type 3, open interest = 9) through the same machinery."""
        return self.get_range(dataset, "statistics", symbols, start, end, stype_in=stype_in, context=context)


    def clamp_end(self, dataset: str, schema: str, end_ns: int, context: Any | None = None) -> int:
        """`end_ns`, or the dataset's available end when the range reaches past it (the still-open window).

        Only a range ending within the last week asks the API, so closed windows stay fully offline-cacheable.
        """
        now_ns = time.time_ns()
        if end_ns < now_ns - 7 * NS_PER_DAY:
            return end_ns
        client = self._client()
        answer = self._call(lambda: client.metadata.get_dataset_range(dataset=dataset),
                            f"metadata.get_dataset_range {dataset}", context)
        available = answer.get("schema", {}).get(schema, answer)["end"]
        return min(end_ns, now_ns, _to_ns(available))

    def raw_symbols(self, dataset: str, instrument_ids: Iterable[int], start_ns: int, end_ns: int,
                    context: Any | None = None) -> dict[int, str]:
        """Raw symbol (e.g. ESM4) of each instrument id over the range, via symbology.resolve."""
        ids = sorted({int(i) for i in instrument_ids})
        if not ids:
            return {}
        answer = self.resolve(dataset, ids, "instrument_id", "raw_symbol", _ns_date(start_ns),
                              _ns_date(end_ns + NS_PER_DAY), context)
        found = {int(symbol): intervals[-1]["s"] for symbol, intervals in answer["result"].items() if intervals}
        missing = [i for i in ids if i not in found]
        if missing:
            raise HdiError(f"{dataset}: no raw symbol for instrument ids {missing[:10]} between "
                           f"{_ns_date(start_ns)} and {_ns_date(end_ns)}")
        return found

    def mapping_intervals(self, dataset: str, symbol: str, start_date: dt.date, end_date: dt.date,
                          context: Any | None = None) -> list[tuple[str, str, int]]:
        """A continuous symbol's (start_date, end_date exclusive, instrument_id) intervals, like DBN mappings."""
        answer = self.resolve(dataset, [symbol], "continuous", "instrument_id", start_date, end_date, context)
        return [(i["d0"], i["d1"], int(i["s"])) for i in answer["result"].get(symbol, [])]


def _ns_date(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns / NS, dt.UTC).date()


def _usd(amount: float) -> str:
    """Dollars with cents, or with enough digits that a tiny nonzero amount does not read as $0.00."""
    return f"${amount:,.2f}" if amount == 0 or abs(amount) >= 0.01 else f"${amount:.6f}"


def _concat_tables(arrays: list[np.ndarray]) -> pa.Table:
    """One table from the chunks' arrays, in chunk order (same layout: gathered straight into one table)."""
    if all(a.dtype == arrays[0].dtype for a in arrays):
        return records_to_table(arrays)
    # Chunks in different DBN versions (a folder of old files): align columns by name.
    return pa.concat_tables([records_to_table(a) for a in arrays], promote_options="permissive")
