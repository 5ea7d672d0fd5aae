"""Where the lake lives: a folder (HDI_HOME/lake) or an S3-compatible bucket, behind one pyarrow.fs interface.

`HDI_LAKE_URL` unset = the folder; `s3://bucket/prefix` = the bucket, with the endpoint, region and credentials
taken from the standard AWS_* variables (or the SDK's own chain: instance/pod roles). Nothing here logs a secret.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from hdi_core.errors import HdiError
from hdi_resources.settings import hdi_home, redact

ENV_LAKE_URL = "HDI_LAKE_URL"
_AWS_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")


@dataclass(frozen=True)
class LakeStore:
    """A lake root inside a pyarrow file system; paths are '/'-joined strings relative to that file system."""

    fs: pafs.FileSystem
    root: str  # e.g. /home/me/.hdi/lake or bucket/prefix
    scheme: str  # "file" or "s3"

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def join(self, base: str, *parts: str) -> str:
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])

    def url(self, path: str) -> str:
        """How a user (or Polars/DuckDB) names a path: a plain path for a folder, s3://... for the bucket."""
        return path if self.is_local else f"s3://{path}"

    def info(self, path: str) -> pafs.FileInfo:
        return self.fs.get_file_info(path)

    def exists(self, path: str) -> bool:
        return self.info(path).type != pafs.FileType.NotFound

    def listing(self, path: str, recursive: bool = False) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=recursive))

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as stream:
            return stream.read()

    def make_dirs(self, path: str) -> None:
        if self.is_local:  # a bucket has no folders to create
            self.fs.create_dir(path, recursive=True)

    def put_atomic(self, path: str, data: bytes) -> None:
        """Replace one small object whole: os.replace on a folder, a single PUT on a bucket."""
        if self.is_local:
            tmp = _temporary_name(path)
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
            return
        with self.fs.open_output_stream(path) as stream:
            stream.write(data)

    def copy_atomic(self, source: str, target: str) -> None:
        """Give an existing file a second name in one step: a hard link + rename on a folder (no bytes copied),
        a server-side CopyObject on a bucket (no bytes through this process)."""
        if not self.is_local:
            self.fs.copy_file(source, target)
            return
        tmp = _temporary_name(target)
        try:
            os.link(source, tmp)
        except OSError:  # file systems without hard links get a real copy
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)

    def delete_dir(self, path: str) -> None:
        try:
            self.fs.delete_dir(path)
        except FileNotFoundError:
            pass

    def delete_file(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass

    def delete(self, info: pafs.FileInfo) -> None:
        if info.type == pafs.FileType.Directory:
            self.delete_dir(info.path)
        else:
            self.delete_file(info.path)


def _temporary_name(path: str) -> str:
    """A sibling no reader lists: hidden, and not ending in .parquet (Polars globs match hidden files)."""
    folder, name = path.rsplit("/", 1)
    return f"{folder}/.tmp-{name}-{uuid.uuid4().hex}"


def lake_url() -> str:
    return os.environ.get(ENV_LAKE_URL, "").strip()


def lake_store() -> LakeStore:
    """The lake for the current environment (re-read each call so tests and CLIs can switch HDI_HOME/URL)."""
    url = lake_url()
    if not url:
        root = hdi_home() / "lake"
        root.mkdir(parents=True, exist_ok=True)
        return _local_store(str(root))
    settings = tuple(os.environ.get(name, "") for name in _AWS_SETTINGS)
    return _s3_store(url, settings)


@lru_cache(maxsize=8)
def _local_store(root: str) -> LakeStore:
    return LakeStore(pafs.LocalFileSystem(), root, "file")


@lru_cache(maxsize=8)
def _s3_store(url: str, settings: tuple[str, ...]) -> LakeStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LakeStore(pafs.LocalFileSystem(), str(Path(parsed.path).resolve()), "file")
    if parsed.scheme != "s3" or not parsed.netloc or "@" in parsed.netloc:  # keys go in AWS_*, never the URL
        hint = "use s3://bucket/prefix with keys in AWS_* (unset = HDI_HOME/lake)"
        raise HdiError(redact(f"{ENV_LAKE_URL}={url!r} is not a lake URL: {hint}"))
    endpoint, key_id, secret, region, default_region = settings
    options: dict[str, object] = {"region": region or default_region or "us-east-1"}
    if endpoint:
        ep = urlparse(endpoint)
        options["endpoint_override"] = ep.netloc or ep.path
        options["scheme"] = ep.scheme or "https"
    if key_id and secret:  # otherwise the SDK chain (pod role, profile) supplies credentials
        options["access_key"], options["secret_key"] = key_id, secret
    fs = pafs.S3FileSystem(**options)
    return LakeStore(fs, f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/"), "s3")


def local_path(store: LakeStore, path: str) -> Path | str:
    """A Path for a folder lake (what existing callers expect), the s3:// URL for a bucket lake."""
    return Path(path) if store.is_local else store.url(path)
