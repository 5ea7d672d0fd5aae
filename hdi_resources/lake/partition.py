"""One lake partition: immutable versions, published by replacing one small pointer object.

Layout of a partition folder P (e.g. lake/raw_ticks/symbol=ES/window=2024-01-01):

    P/_versions/<version>/part-0.pq   the data of each version, written once, never changed
    P/_manifest.json                  the pointer: the current version and its files (replaced in one step)
    P/part-0.parquet                  the plain Hive view: the current version's file under its usual name
    P/_<name>                         sidecars (validation report, mappings), each replaced in one step

Readers follow the pointer, so they see a whole version or the one before, never a mix. Data files end in `.pq`
inside a `_`-folder, so pyarrow.dataset (skips `_` names), Polars globs (`**/*.parquet`) and DuckDB see only the
view. A superseded version stays for GRACE_SECONDS (a reader that read the old pointer still finds its files) and
is removed by the first write after that, or by `hdi doctor`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hdi_resources.lake.store import LakeStore

MANIFEST = "_manifest.json"
VERSIONS = "_versions"
VIEW = "part-0.parquet"
GRACE_SECONDS = 300.0  # longest expected read of one partition; old versions outlive their pointer this long
STALE_SECONDS = 3600.0  # an unpublished version this old belongs to a killed writer, not a slow one
READ_ATTEMPTS = 20  # a reader retries only when the pointer moved under it, so this bounds writer starvation
_STAMP = "%Y%m%dT%H%M%S%fZ"

# Tests set this to fail a write after a named step ("data", "pointer", "view", "collect").
after_step: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if after_step is not None:
        after_step(name)


def new_version() -> str:
    """Sortable by write start, unique across pods: a UTC stamp and a random suffix."""
    return f"{datetime.now(UTC).strftime(_STAMP)}-{uuid.uuid4().hex[:8]}"


def version_time(version: str) -> float | None:
    try:
        return datetime.strptime(version.split("-", 1)[0], _STAMP).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


@dataclass
class Manifest:
    version: str
    files: list[str]
    rows: int
    written_at: str
    retired: list[tuple[str, float]] = field(default_factory=list)  # (version, when it stopped being current)

    def to_json(self) -> bytes:
        return json.dumps(
            {"format": 1, "version": self.version, "files": self.files, "rows": self.rows,
             "written_at": self.written_at, "retired": [list(r) for r in self.retired]},
            indent=1,
        ).encode()

    @classmethod
    def parse(cls, raw: bytes, where: str) -> Manifest:
        try:
            doc = json.loads(raw)
            return cls(doc["version"], list(doc["files"]), int(doc["rows"]), doc["written_at"],
                       [(str(v), float(t)) for v, t in doc.get("retired", [])])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}: unreadable lake manifest ({exc})") from exc


def read_manifest(store: LakeStore, part: str) -> Manifest | None:
    path = store.join(part, MANIFEST)
    try:
        raw = store.read_bytes(path)
    except FileNotFoundError:
        return None
    return Manifest.parse(raw, store.url(path))


def write_version(store: LakeStore, part: str, table: pa.Table) -> str:
    """Write a new version, publish it, refresh the view, then collect what is past its grace period."""
    store.make_dirs(part)
    old = read_manifest(store, part)
    version = new_version()
    folder = store.join(part, VERSIONS, version)
    store.make_dirs(folder)
    data = f"{VERSIONS}/{version}/part-0.pq"
    # zstd keeps tick partitions small; row groups of 1M rows keep reads streaming.
    pq.write_table(table, store.join(part, data), filesystem=store.fs, compression="zstd", row_group_size=1 << 20)
    _step("data")
    now = time.time()
    retired = [*(old.retired if old else []), *([(old.version, now)] if old else [])]
    expired = [v for v, since in retired if now - since >= GRACE_SECONDS]
    manifest = Manifest(version, [data], table.num_rows, datetime.now(UTC).isoformat(),
                        [(v, since) for v, since in retired if v not in expired])
    store.put_atomic(store.join(part, MANIFEST), manifest.to_json())
    _step("pointer")
    store.copy_atomic(store.join(part, data), store.join(part, VIEW))
    _step("view")
    for gone in expired:  # only after the new pointer is out: nobody is sent to these any more
        store.delete_dir(store.join(part, VERSIONS, gone))
    collect_orphans(store, part, manifest, STALE_SECONDS)
    _step("collect")
    return store.join(part, VIEW)


def read_version(store: LakeStore, part: str, columns: list[str] | None, what: str) -> pa.Table:
    """The current version, following the pointer; if its files vanish under us, the pointer moved: follow it."""
    manifest = read_manifest(store, part)
    for _ in range(READ_ATTEMPTS):
        if manifest is None:
            legacy = store.join(part, VIEW)  # the layout before manifests: the folder holds the file itself
            try:
                return pq.read_table(legacy, columns=columns, filesystem=store.fs)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"{what} has no data: {store.url(part)} has no {MANIFEST} (materialize it first)"
                ) from None
        try:
            tables = [pq.read_table(store.join(part, f), columns=columns, filesystem=store.fs) for f in manifest.files]
            return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        except (OSError, pa.ArrowInvalid):
            again = read_manifest(store, part)
            if again is not None and again.version == manifest.version:
                raise
            manifest = again
    raise OSError(f"{what}: {store.url(part)} was replaced {READ_ATTEMPTS} times while being read; try again")


def has_version(store: LakeStore, part: str) -> bool:
    return store.exists(store.join(part, MANIFEST)) or store.exists(store.join(part, VIEW))


def collect_orphans(
    store: LakeStore, part: str, manifest: Manifest | None, min_age: float, dry_run: bool = False
) -> list[str]:
    """Versions nobody points to: unpublished ones older than min_age (killed writers) and retired ones past
    their grace period (a crash after publishing, before removing them). Returns what was (or would be) removed."""
    keep = {manifest.version} if manifest else set()
    retired = dict(manifest.retired) if manifest else {}
    now = time.time()
    removed = []
    for info in store.listing(store.join(part, VERSIONS)):
        version = info.base_name
        if version in keep:
            continue
        if version in retired:
            if now - retired[version] < GRACE_SECONDS:
                continue
        else:
            born = version_time(version)
            born = born if born is not None else info.mtime.timestamp() if info.mtime else now
            if now - born < min_age:
                continue
        removed.append(info.path)
        if not dry_run:
            store.delete(info)
    for info in store.listing(part) if store.is_local else []:  # temporary names of a killed put/copy
        if info.base_name.startswith(".tmp-") and _age(info, now) >= min_age:
            removed.append(info.path)
            if not dry_run:
                store.delete(info)
    return removed


def _age(info: pafs.FileInfo, now: float) -> float:
    return now - info.mtime.timestamp() if info.mtime else now
