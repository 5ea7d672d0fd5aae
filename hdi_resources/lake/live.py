"""Today's live records in the lake: small atomic Parquet files while the session runs, one file after it.

Layout (beside the historical assets, in the same lake):

    live/<schema>/symbol=<product>/trade_date=<YYYY-MM-DD>/chunk-<n>.parquet   appended every few seconds
    live/<schema>/symbol=<product>/trade_date=<YYYY-MM-DD>/_manifest.json     the files, in order, and rows

Each chunk is written under a hidden temporary name and renamed (put_atomic), so a reader never meets half a
file: DuckDB/Polars can read `.../trade_date=D/*.parquet` at any moment. The manifest is replaced in one step
after each chunk; `read_live` follows it, so its view is exact even while the compaction at the session close
swaps the chunks for one `part-0.parquet` (a glob read in the instant between that file's rename and the
chunks' removal could see both; the manifest never does). Columns are the historical schema's (the DBN
codec's records_to_table), so a live partition and the historical one compare column for column.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hdi_core.dbn import records_to_table
from hdi_resources.lake.store import LakeStore, lake_store, local_path

LIVE = "live"
MANIFEST = "_manifest.json"
COMPACTED = "part-0.parquet"


def live_partition(store: LakeStore, schema: str, symbol: str, trade_date: str) -> str:
    return store.join(store.root, LIVE, schema, f"symbol={symbol}", f"trade_date={trade_date}")


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


@dataclass
class _Manifest:
    files: list[str] = field(default_factory=list)
    rows: int = 0
    compacted: bool = False

    def to_json(self) -> bytes:
        return json.dumps({"format": 1, "files": self.files, "rows": self.rows, "compacted": self.compacted,
                           "written_at": datetime.now(UTC).isoformat()}).encode()


def _read_manifest(store: LakeStore, part: str) -> _Manifest:
    try:
        doc = json.loads(store.read_bytes(store.join(part, MANIFEST)))
    except FileNotFoundError:
        return _Manifest()
    return _Manifest(list(doc["files"]), int(doc["rows"]), bool(doc.get("compacted")))


class LiveLake:
    """Appends records to live partitions; one writer (the capture) per lake."""

    def __init__(self, store: LakeStore | None = None) -> None:
        self.store = store or lake_store()
        self._manifests: dict[str, _Manifest] = {}
        self.files_written = 0
        self.rows_written = 0

    def _manifest(self, part: str) -> _Manifest:
        if part not in self._manifests:
            self._manifests[part] = _read_manifest(self.store, part)
        return self._manifests[part]

    def append(self, schema: str, symbol: str, trade_date: str, records: np.ndarray | pa.Table) -> str | None:
        """One new chunk file with `records` (a DBN structured array, or a derived table such as order-flow
        bars), then the manifest; None if empty."""
        if not len(records):
            return None
        table = records if isinstance(records, pa.Table) else records_to_table(records)
        part = live_partition(self.store, schema, symbol, trade_date)
        manifest = self._manifest(part)
        self.store.make_dirs(part)
        name = f"chunk-{time.time_ns():020d}-{len(manifest.files):06d}.parquet"
        self.store.put_atomic(self.store.join(part, name), _table_bytes(table))
        manifest.files.append(name)
        manifest.rows += len(records)
        self.store.put_atomic(self.store.join(part, MANIFEST), manifest.to_json())
        self.files_written += 1
        self.rows_written += len(records)
        return name

    def compact(self, schema: str, symbol: str, trade_date: str) -> int:
        """The session's chunks as one file (at the close); returns its rows."""
        part = live_partition(self.store, schema, symbol, trade_date)
        manifest = self._manifest(part)
        if manifest.compacted and manifest.files == [COMPACTED]:
            return manifest.rows
        table = read_live(schema, symbol, trade_date, store=self.store)
        self.store.put_atomic(self.store.join(part, COMPACTED), _table_bytes(table))
        old = [f for f in manifest.files if f != COMPACTED]
        self._manifests[part] = _Manifest([COMPACTED], table.num_rows, True)
        self.store.put_atomic(self.store.join(part, MANIFEST), self._manifests[part].to_json())
        for name in old:
            self.store.delete_file(self.store.join(part, name))
        return table.num_rows

    def partitions(self) -> list[tuple[str, str, str]]:
        """(schema, symbol, trade_date) of every live partition this writer touched."""
        out = []
        for part in self._manifests:
            schema, symbol, day = part.rsplit("/", 3)[-3:]
            out.append((schema, symbol.split("=", 1)[1], day.split("=", 1)[1]))
        return out


def read_live(schema: str, symbol: str, trade_date: str, columns: list[str] | None = None,
              store: LakeStore | None = None) -> pa.Table:
    """The live partition as its manifest lists it (an empty table when nothing was captured)."""
    store = store or lake_store()
    part = live_partition(store, schema, symbol, trade_date)
    for _ in range(20):  # the manifest moved under us (a compaction): follow it
        manifest = _read_manifest(store, part)
        try:
            tables = [pq.read_table(store.join(part, f), columns=columns, filesystem=store.fs)
                      for f in manifest.files]
        except (FileNotFoundError, OSError):
            continue
        return pa.concat_tables(tables) if tables else pa.table({})
    raise OSError(f"live partition {store.url(part)} kept changing while read; try again")


def live_files(schema: str, symbol: str, trade_date: str) -> list[str]:
    """The files of a live partition as paths (for DuckDB's read_parquet([...]) or Polars)."""
    store = lake_store()
    part = live_partition(store, schema, symbol, trade_date)
    return [str(local_path(store, store.join(part, f))) for f in _read_manifest(store, part).files]


def replace_with_history(schema: str, symbol: str, trade_date: str, records: np.ndarray | pa.Table) -> int:
    """After the session: the live partition becomes the historical one (one file, manifest last)."""
    store = lake_store()
    part = live_partition(store, schema, symbol, trade_date)
    store.make_dirs(part)
    table = records if isinstance(records, pa.Table) else records_to_table(records)
    old = _read_manifest(store, part).files
    store.put_atomic(store.join(part, COMPACTED), _table_bytes(table))
    manifest = _Manifest([COMPACTED], table.num_rows, True)
    store.put_atomic(store.join(part, MANIFEST), manifest.to_json())
    store.put_atomic(store.join(part, "_source"), b"historical\n")
    for name in old:
        if name != COMPACTED:
            store.delete_file(store.join(part, name))
    return table.num_rows
