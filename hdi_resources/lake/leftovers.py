"""What killed processes leave behind, found and recovered or removed: by the next write of a partition, and by
`hdi doctor` for the whole lake and the Databento download cache. Nothing outside the lake root (a folder under
HDI_HOME or the bucket prefix) or the cache folder is touched.

- unpublished versions (`P/_versions/<v>` no pointer names, older than min_age) and retired versions past grace;
- `.tmp-*` names of an interrupted pointer or view replacement;
- the previous layout's `.staging-<partition>-*` and `.old-<partition>-*` folders: if the partition itself is
  missing (a replace died between its two renames) the complete new data (or else the old data) is put back;
- `.partial-*.dbn.zst` downloads in the Databento cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hdi_resources.lake import partition as parts
from hdi_resources.lake.store import LakeStore

_LEGACY = (".staging-", ".old-")


@dataclass(frozen=True)
class Finding:
    path: str
    action: str  # "removed", "recovered", "view refreshed" (prefixed "would " in a dry run)
    reason: str

    def line(self) -> str:
        return f"{self.action}: {self.path} ({self.reason})"


def _act(action: str, dry_run: bool) -> str:
    return f"would {action.replace('removed', 'remove').replace('recovered', 'recover')}" if dry_run else action


def collect_partition(store: LakeStore, part: str, min_age: float, dry_run: bool = False) -> list[Finding]:
    """One partition: orphan versions, temporary names, a stale view, and previous-layout leftovers beside it."""
    findings = recover_legacy(store, part, min_age, dry_run)
    manifest = parts.read_manifest(store, part)
    for path in parts.collect_orphans(store, part, manifest, min_age, dry_run):
        findings.append(Finding(store.url(path), _act("removed", dry_run), "no pointer names it"))
    if manifest is not None and not _view_is_current(store, part, manifest):
        # A writer died between publishing the pointer and refreshing the view.
        if not dry_run:
            store.copy_atomic(store.join(part, manifest.files[0]), store.join(part, parts.VIEW))
        findings.append(Finding(store.url(store.join(part, parts.VIEW)), _act("view refreshed", dry_run),
                                f"pointer names {manifest.version}"))
    return findings


def _view_is_current(store: LakeStore, part: str, manifest: parts.Manifest) -> bool:
    view, data = store.info(store.join(part, parts.VIEW)), store.info(store.join(part, manifest.files[0]))
    if view.type == pafs.FileType.NotFound or data.type == pafs.FileType.NotFound:
        return view.type == data.type
    if store.is_local and Path(view.path).samefile(data.path):  # the view is a hard link to the version
        return True
    if view.size != data.size:
        return False
    # Same size (a copy, or a bucket): the footers (row counts, sizes and statistics of every column chunk) decide.
    footer = [pq.read_metadata(path, filesystem=store.fs) for path in (view.path, data.path)]
    return footer[0].equals(footer[1])


def recover_legacy(store: LakeStore, part: str, min_age: float, dry_run: bool = False) -> list[Finding]:
    """The previous layout replaced P by renaming P to `.old-<name>-*` and `.staging-<name>-*` to P."""
    parent, name = part.rsplit("/", 1)
    now = time.time()
    leftovers = [
        i for i in store.listing(parent)
        if i.base_name.startswith(tuple(f"{p}{name}-" for p in _LEGACY)) and _age(i, now) >= min_age
    ]
    if not leftovers:
        return []
    findings = []
    olds = [i for i in leftovers if i.base_name.startswith(".old-")]
    if olds and store.is_local and not parts.has_version(store, part):
        # A replace died between its renames: a staging folder that reads whole is the newer data.
        whole = sorted((i for i in leftovers if i.base_name.startswith(".staging-") and _whole(store, i)),
                       key=lambda i: i.mtime, reverse=True)
        chosen = (whole or olds)[0]
        if not dry_run:
            _put_back(store, chosen.path, part)
        leftovers.remove(chosen)
        findings.append(Finding(store.url(part), _act("recovered", dry_run), f"from {chosen.base_name}"))
    for info in leftovers:
        if not dry_run:
            store.delete(info)
        findings.append(Finding(store.url(info.path), _act("removed", dry_run), "left by a killed write"))
    return findings


def _whole(store: LakeStore, info: pafs.FileInfo) -> bool:
    try:
        pq.read_metadata(store.join(info.path, parts.VIEW), filesystem=store.fs)  # a footer means a whole file
        return True
    except (OSError, ValueError):
        return False


def _put_back(store: LakeStore, folder: str, part: str) -> None:
    if not store.exists(part):
        store.fs.move(folder, part)  # completes the interrupted rename
        return
    for info in store.listing(folder):  # P exists (a sidecar was written since) but holds no data
        target = store.join(part, info.base_name)
        if not store.exists(target):
            store.fs.move(info.path, target)
    store.delete_dir(folder)


def collect_lake(store: LakeStore, min_age: float, dry_run: bool = False) -> list[Finding]:
    """Every partition of the lake (one recursive listing; a bucket lists only under its prefix)."""
    partitions: set[str] = set()
    for info in store.listing(store.root, recursive=True):
        head, _, base = info.path.rpartition("/")
        if base == parts.MANIFEST or base == parts.VIEW or base == parts.VERSIONS:
            partitions.add(head)
        elif base.startswith(_LEGACY) and info.type == pafs.FileType.Directory:
            partitions.add(f"{head}/{_legacy_partition_name(base)}")
    findings: list[Finding] = []
    for part in sorted(partitions):
        if part.startswith(store.root.rstrip("/") + "/"):
            findings += collect_partition(store, part, min_age, dry_run)
    return findings


def _legacy_partition_name(base: str) -> str:
    """`.staging-window=2024-01-01-<32 hex>` -> `window=2024-01-01`."""
    stem = base.split("-", 1)[1]
    return stem.rsplit("-", 1)[0]


def sweep_partials(folder: Path, min_age: float, dry_run: bool = False) -> list[Finding]:
    """`.partial-*.dbn.zst` files of killed downloads under `folder`; a live download keeps its mtime fresh."""
    if not folder.is_dir():
        return []
    now = time.time()
    findings = []
    for path in sorted(folder.rglob(".partial-*.dbn.zst")):
        try:
            if now - path.stat().st_mtime < min_age:
                continue
            if not dry_run:
                path.unlink()
        except FileNotFoundError:  # its own download finished or removed it meanwhile
            continue
        findings.append(Finding(str(path), _act("removed", dry_run), "download killed before it finished"))
    return findings


def _age(info: pafs.FileInfo, now: float) -> float:
    return now - info.mtime.timestamp() if info.mtime else now
