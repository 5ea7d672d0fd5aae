"""The on-disk chunk cache: one zstd DBN file per chunk request, entered atomically, dropped when unreadable."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import zstandard

from hdi_core import dbn
from hdi_resources.databento.chunks import ChunkRequest
from hdi_resources.lake.leftovers import sweep_partials
from hdi_resources.retry import one_line
from hdi_resources.settings import hdi_home

log = logging.getLogger("hdi.databento")

PARTIAL_STALE_SECONDS = 3600.0  # a .partial-* untouched this long was left by a killed download (hdi doctor too)
CACHE_ZSTD_LEVEL = 3  # a plain body is stored compressed, like Databento's own downloads


def decode_chunk(data: bytes | memoryview, name: str) -> dbn.DecodedDbn:
    """A complete chunk body (plain or zstd) in the file's own DBN layout; refuses cut or mixed streams."""
    decoded = dbn.decode_dbn(dbn.decompress(data, name), name, as_v3=False)
    decoded.records_of()  # one schema per chunk: a mixed (live) stream is not a historical answer
    return decoded


class ChunkCache:
    """Chunk bodies under `root/<dataset>/<schema>/<key>.dbn.zst`, keyed by request and by who served it."""

    def __init__(self, root: Path | None, source: str) -> None:
        self.root = root if root is not None else hdi_home() / "cache" / "databento"
        self.source = source

    def path(self, chunk: ChunkRequest) -> Path:
        """Where the chunk's DBN bytes (zstd) live on disk."""
        return self.root / chunk.dataset / chunk.schema / f"{chunk.cache_key(self.source)}.dbn.zst"

    def has(self, chunk: ChunkRequest) -> bool:
        return self.path(chunk).is_file()

    def read(self, chunk: ChunkRequest) -> dbn.DecodedDbn | None:
        """The cached chunk, or None; a damaged cache file is dropped (and fetched again) rather than trusted."""
        path = self.path(chunk)
        if not path.is_file():
            return None
        try:
            return decode_chunk(path.read_bytes(), str(path))
        except (dbn.DbnError, ValueError, OSError) as exc:
            log.warning("dropping unreadable cache file %s (%s)", path, one_line(str(exc), 160))
            path.unlink(missing_ok=True)
            return None

    def partial_path(self, chunk: ChunkRequest) -> Path:
        """A fresh `.partial-*` file beside the chunk's entry, for a download to stream into."""
        path = self.path(chunk)
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_partials(path.parent, PARTIAL_STALE_SECONDS)  # bodies of killed downloads; live ones stay fresh
        return path.parent / f".partial-{uuid.uuid4().hex}.dbn.zst"

    def commit(self, chunk: ChunkRequest, partial: Path, raw: bytes, plain: bytes | memoryview) -> None:
        """Rename a verified download into place (compressing it first when it came plain); never half-written."""
        try:
            if bytes(raw[:4]) != dbn.ZSTD_MAGIC:
                body = zstandard.ZstdCompressor(level=CACHE_ZSTD_LEVEL, write_checksum=True).compress(plain)
                with open(partial, "wb") as fh:
                    fh.write(body)
            os.replace(partial, self.path(chunk))
        finally:
            partial.unlink(missing_ok=True)
