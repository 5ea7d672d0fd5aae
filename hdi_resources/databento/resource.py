"""`DatabentoResource`: the one door to Databento (or the local gateway) for every HDI fetch.

Every `get_range` is priced before anything is fetched, split into date chunks, served from the on-disk
cache when it can be, retried on transient failures, and returned as one Arrow table (int64 fixed-point
prices, int64 ns timestamps) plus the symbol mappings from the DBN metadata. The pieces live beside this
module: chunks (requests), client (server, key, errors), cache, budget, tls.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, TypeVar

import databento as db
import numpy as np
import pyarrow as pa
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from hdi_core import dbn
from hdi_core.config_files import config_dir
from hdi_core.errors import HdiError
from hdi_core.units import DAY_NS
from hdi_core.vendor_schemas.config import CONFIG_FILE, DatabentoConfig, load_config
from hdi_resources.databento import budget, client, tls
from hdi_resources.databento.cache import ChunkCache, decode_chunk
from hdi_resources.databento.chunks import (
    ChunkRequest,
    FetchResult,
    SymbolsLike,
    TimeLike,
    iso,
    normalise_symbols,
    ns_date,
    split_chunks,
    to_ns,
)
from hdi_resources.retry import RetryPolicy
from hdi_resources.settings import ENV_CA, ENV_GATEWAY, redact

log = logging.getLogger("hdi.databento")

T = TypeVar("T")

_DEFAULTS = DatabentoConfig()  # every default below comes from the config model: defined once
_RETRY = _DEFAULTS.retry_policy
OPEN_WINDOW_NS = 7 * DAY_NS  # a range ending this close to now may reach past the dataset's available end


class DatabentoResource(ConfigurableResource):
    """Databento Historical access with cost guard, date chunking, disk cache and retries.

    Empty `api_key` / None `gateway` / None `ca_path` are read from DATABENTO_API_KEY /
    HDI_DATABENTO_GATEWAY / HDI_DATABENTO_CA when used, so the key never has to sit in run config.
    """

    api_key: str = Field(default="", repr=False, description="Databento key; empty = read DATABENTO_API_KEY")
    gateway: str | None = Field(default=None, description="Local gateway URL; None = HDI_DATABENTO_GATEWAY")
    ca_path: str | None = Field(default=None, description="Local gateway's PEM CA; None = HDI_DATABENTO_CA")
    key_env_var: str = _DEFAULTS.api.key_env_var
    budget_usd: float = _DEFAULTS.api.budget_usd
    max_attempts: int = _RETRY.max_attempts
    base_delay_s: float = _RETRY.base_delay_s
    max_delay_s: float = _RETRY.max_delay_s
    jitter_s: float = _RETRY.jitter_s
    max_retry_after_s: float = _RETRY.max_retry_after_s
    retry_on_status: list[int] = Field(default=list(_RETRY.retry_on_status))
    date_chunk_interval_days: int = _DEFAULTS.date_chunk_interval_days
    # Chunks of one request downloaded at once: a 6-month window is 6 chunks; Databento allows 100 connections.
    parallel_fetches: int = _DEFAULTS.parallel_fetches
    cache_dir: str | None = Field(default=None, description="None = HDI_HOME/cache/databento")

    _clients: client.ClientPool = PrivateAttr(default_factory=client.ClientPool)

    # -- construction -----------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config_name: str = CONFIG_FILE, **overrides: Any) -> DatabentoResource:
        """Settings from the Databento config file in the config folder (HDI_CONFIG_DIR or configs/), validated
        by its Pydantic model (unknown keys refused, naming file and field); keyword arguments win."""
        config = load_config(config_dir() / config_name, check_references=False)
        retry = config.retry_policy
        fields: dict[str, Any] = {
            "key_env_var": config.api.key_env_var, "budget_usd": config.api.budget_usd,
            "max_attempts": retry.max_attempts, "base_delay_s": retry.base_delay_s,
            "max_delay_s": retry.max_delay_s, "jitter_s": retry.jitter_s,
            "max_retry_after_s": retry.max_retry_after_s, "retry_on_status": list(retry.retry_on_status),
            "date_chunk_interval_days": config.date_chunk_interval_days,
            "parallel_fetches": config.parallel_fetches,
        }
        return cls(**{**fields, **overrides})

    @classmethod
    def from_env(cls, **overrides: Any) -> DatabentoResource:
        """For the CLI: file settings plus the key, gateway and CA from the environment right now."""
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
        return client.gateway_url(self.gateway)

    def _resolved_key(self) -> str:
        return client.resolve_key(self.api_key, self.key_env_var, self._gateway_url())

    def _client(self) -> db.Historical:
        return self._clients.get(self._resolved_key(), self._gateway_url())

    def _ca_bundle(self) -> Path | None:
        ca = client.gateway_ca_path(self.ca_path)
        return tls.combined_ca_bundle(ca) if ca is not None else None

    def _cache(self) -> ChunkCache:
        root = Path(self.cache_dir).expanduser() if self.cache_dir else None
        return ChunkCache(root, client.source_label(self._gateway_url()))

    def cache_path(self, chunk: ChunkRequest) -> Path:
        """Where the chunk's DBN bytes (zstd) live on disk."""
        return self._cache().path(chunk)

    def _call(self, fn: Callable[[], T], what: str, context: Any | None) -> T:
        """Run one API call with retries (trusting the gateway's CA during each try); one-line HdiErrors."""
        bundle = self._ca_bundle()

        def attempt() -> T:
            with tls.trusting(bundle):
                return fn()

        where = redact(self._gateway_url() or "Databento")
        return client.call_api(attempt, what, self.retry_policy, key_env_var=self.key_env_var, where=where,
                               context=context)

    # -- public API -------------------------------------------------------------------------------------

    def plan(self, dataset: str, schema: str, symbols: SymbolsLike, start: TimeLike, end: TimeLike,
             stype_in: str = "raw_symbol", stype_out: str = "instrument_id",
             limit: int | None = None) -> list[ChunkRequest]:
        """The chunk requests a `get_range` makes (one when `limit` is set: a limit spans the whole range)."""
        start_ns, end_ns = to_ns(start), to_ns(end)
        stype_in, stype_out = str(stype_in), str(stype_out)
        syms = normalise_symbols(symbols, stype_in)
        spans = split_chunks(start_ns, end_ns, self.date_chunk_interval_days)
        if limit is not None:
            spans = [(start_ns, end_ns)]
        return [ChunkRequest(dataset, str(schema), syms, stype_in, stype_out, s, e, limit) for s, e in spans]

    def get_cost(self, dataset: str, schema: str, symbols: SymbolsLike, start: TimeLike, end: TimeLike,
                 stype_in: str = "raw_symbol", stype_out: str = "instrument_id", limit: int | None = None,
                 context: Any | None = None) -> float:
        """USD a `get_range` with these arguments would cost now: cached chunks are free."""
        chunks = self.plan(dataset, schema, symbols, start, end, stype_in, stype_out, limit)
        self._resolved_key()
        cache = self._cache()
        return self._price([c for c in chunks if not cache.has(c)], context)

    def _price(self, uncached: list[ChunkRequest], context: Any | None) -> float:
        if not uncached:
            return 0.0
        return budget.price(self._client(), uncached, lambda fn, what: self._call(fn, what, context))

    def get_range(self, dataset: str, schema: str, symbols: SymbolsLike, start: TimeLike, end: TimeLike,
                  stype_in: str = "raw_symbol", stype_out: str = "instrument_id", limit: int | None = None,
                  context: Any | None = None) -> FetchResult:
        """Rows of `schema` for `symbols` in [start, end): priced first, cache-first, chunked, retried."""
        chunks = self.plan(dataset, schema, symbols, start, end, stype_in, stype_out, limit)
        self._resolved_key()  # no credentials, no data: not even cached data from an unknown source
        whole = chunks[0].spanning(chunks[-1])
        cache = self._cache()

        cached: dict[int, dbn.DecodedDbn] = {}
        for i, chunk in enumerate(chunks):
            hit = cache.read(chunk)
            if hit is not None:
                cached[i] = hit
        uncached = {i: c for i, c in enumerate(chunks) if i not in cached}

        cost = self._price(list(uncached.values()), context)
        budget.check_budget(cost, self.budget_usd, whole)

        fetched = self._fetch_chunks(uncached, cache, context)
        fetched_bytes = sum(nbytes for _, nbytes in fetched.values())
        parts = [cached[i] if i in cached else fetched[i][0] for i in range(len(chunks))]
        arrays = [part.records_of() for part in parts]

        self._log(f"{whole.label()}: {sum(len(a) for a in arrays)} rows from {len(chunks)} chunks "
                  f"({len(cached)} cached), {fetched_bytes} bytes fetched, {budget.usd(cost)}", context)
        return FetchResult(
            table=_concat_tables(arrays),
            mappings=dbn.merge_mappings([part.mappings for part in parts]),
            cost_usd=cost,
            bytes=fetched_bytes,
            from_cache=len(cached),
            chunks=len(chunks),
            cache_files=[str(cache.path(chunk)) for chunk in chunks],
        )

    @staticmethod
    def _log(message: str, context: Any | None) -> None:
        log.info(message)
        if context is not None and getattr(context, "log", None) is not None:
            context.log.info(message)

    def _fetch_chunks(self, todo: dict[int, ChunkRequest], cache: ChunkCache,
                      context: Any | None) -> dict[int, tuple[dbn.DecodedDbn, int]]:
        """Download the uncached chunks, `parallel_fetches` at a time (each retried and cached on its own, so a
        failure keeps the chunks already done), logging progress as each one lands."""
        done: dict[int, tuple[dbn.DecodedDbn, int]] = {}
        if not todo:
            return done
        with ThreadPoolExecutor(max_workers=max(1, min(self.parallel_fetches, len(todo)))) as pool:
            futures = {pool.submit(self._fetch_chunk, chunk, cache, context): i for i, chunk in todo.items()}
            for future in as_completed(futures):
                i = futures[future]
                done[i] = future.result()
                rows = len(done[i][0].records_of())
                self._log(f"fetched chunk {len(done)}/{len(todo)}: {todo[i].label()} ({rows:,} rows)", context)
        return done

    def _fetch_chunk(self, chunk: ChunkRequest, cache: ChunkCache,
                     context: Any | None) -> tuple[dbn.DecodedDbn, int]:
        """Download one chunk (retried whole), check it decodes, then atomically enter it in the cache.

        The client streams the body straight into a `.partial-*` file beside the cache entry (no in-memory
        body and no second write); only a body that decodes completely is renamed into place.
        """
        api = self._client()

        def download() -> tuple[Path, bytes, bytes | memoryview, dbn.DecodedDbn]:
            partial = cache.partial_path(chunk)
            try:
                api.timeseries.get_range(
                    dataset=chunk.dataset, start=iso(chunk.start_ns), end=iso(chunk.end_ns),
                    symbols=list(chunk.symbols), schema=chunk.schema, stype_in=chunk.stype_in,
                    stype_out=chunk.stype_out, limit=chunk.limit, path=partial,
                )
                raw = partial.read_bytes()
                plain = dbn.decompress(raw, chunk.label())
                decoded = decode_chunk(plain, chunk.label())
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            return partial, raw, plain, decoded

        partial, raw, plain, decoded = self._call(download, f"get_range {chunk.label()}", context)
        cache.commit(chunk, partial, raw, plain)
        return decoded, len(raw)

    def resolve(self, dataset: str, symbols: SymbolsLike, stype_in: str, stype_out: str,
                start_date: dt.date | str, end_date: dt.date | str | None = None,
                context: Any | None = None) -> dict[str, Any]:
        """symbology.resolve (retried): the JSON answer, `result` = {symbol: [{d0, d1, s}]}."""
        api = self._client()
        syms = list(normalise_symbols(symbols, str(stype_in)))
        what = f"symbology.resolve {dataset} {','.join(syms)} {start_date}..{end_date or ''}"
        return self._call(
            lambda: api.symbology.resolve(
                dataset=dataset, symbols=syms, stype_in=stype_in, stype_out=stype_out,
                start_date=start_date, end_date=end_date,
            ),
            what,
            context,
        )

    def definitions(self, dataset: str, symbols: SymbolsLike, start: TimeLike, end: TimeLike,
                    stype_in: str = "raw_symbol", context: Any | None = None) -> FetchResult:
        """Instrument definition records (schema `definition`) through the same guard, cache and retries."""
        return self.get_range(dataset, "definition", symbols, start, end, stype_in=stype_in, context=context)

    def statistics(self, dataset: str, symbols: SymbolsLike, start: TimeLike, end: TimeLike,
                   stype_in: str = "raw_symbol", context: Any | None = None) -> FetchResult:
        """Statistics records (settlement = stat_type 3, open interest = 9) through the same machinery."""
        return self.get_range(dataset, "statistics", symbols, start, end, stype_in=stype_in, context=context)

    def clamp_end(self, dataset: str, schema: str, end_ns: int, context: Any | None = None) -> int:
        """`end_ns`, or the dataset's available end when the range reaches past it (the still-open window).

        Only a range ending within the last week asks the API, so closed windows stay fully offline-cacheable.
        """
        now_ns = time.time_ns()
        if end_ns < now_ns - OPEN_WINDOW_NS:
            return end_ns
        api = self._client()
        answer = self._call(lambda: api.metadata.get_dataset_range(dataset=dataset),
                            f"metadata.get_dataset_range {dataset}", context)
        available = answer.get("schema", {}).get(schema, answer)["end"]
        return min(end_ns, now_ns, to_ns(available))

    def raw_symbols(self, dataset: str, instrument_ids: Iterable[int], start_ns: int,
                    end_ns: int, context: Any | None = None) -> dict[int, str]:
        """Raw symbol (e.g. ESM4) of each instrument id over the range, via symbology.resolve."""
        ids = sorted({int(i) for i in instrument_ids})
        if not ids:
            return {}
        answer = self.resolve(dataset, ids, "instrument_id", "raw_symbol", ns_date(start_ns),
                              ns_date(end_ns + DAY_NS), context)
        found = {int(symbol): intervals[-1]["s"] for symbol, intervals in answer["result"].items() if intervals}
        missing = [i for i in ids if i not in found]
        if missing:
            raise HdiError(f"{dataset}: no raw symbol for instrument ids {missing[:10]} between "
                           f"{ns_date(start_ns)} and {ns_date(end_ns)}")
        return found

    def mapping_intervals(self, dataset: str, symbol: str, start_date: dt.date, end_date: dt.date,
                          context: Any | None = None) -> list[tuple[str, str, int]]:
        """A continuous symbol's (start_date, end_date exclusive, instrument_id) intervals, like DBN mappings."""
        answer = self.resolve(dataset, [symbol], "continuous", "instrument_id", start_date, end_date, context)
        return [(i["d0"], i["d1"], int(i["s"])) for i in answer["result"].get(symbol, [])]


def _concat_tables(arrays: list[np.ndarray]) -> pa.Table:
    """One table from the chunks' arrays, in chunk order (same layout: gathered straight into one table)."""
    if all(a.dtype == arrays[0].dtype for a in arrays):
        return dbn.records_to_table(arrays)
    # Chunks in different DBN versions (a folder of old files): align columns by name.
    return pa.concat_tables([dbn.records_to_table(a) for a in arrays], promote_options="permissive")

