"""A real S3-compatible server on loopback (moto's standalone server, a subprocess) for the bucket-lake tests and
bench_lake: started on 127.0.0.1 with a free port, its pid recorded, stopped by that pid only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

ACCESS_KEY, SECRET_KEY, REGION = "hdi-test-key", "hdi-test-secret-do-not-log", "us-east-1"


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    endpoint: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def env(self, bucket: str, prefix: str = "lake") -> dict[str, str]:
        """The environment that points HDI's lake at `s3://bucket/prefix` on this server."""
        return {
            "HDI_LAKE_URL": f"s3://{bucket}/{prefix}", "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
        }

    def create_bucket(self) -> str:
        import pyarrow.fs as pafs

        bucket = f"hdi-{uuid.uuid4().hex[:12]}"
        fs = pafs.S3FileSystem(endpoint_override=self.endpoint.split("://", 1)[1], scheme="http",
                               access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION,
                               allow_bucket_creation=True)
        fs.create_dir(bucket)
        return bucket

    def stop(self) -> None:
        # Only the process this object started, by its pid, and only while it is still ours to wait for.
        if self.process.poll() is None and self.pid > 0:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(timeout_s: float = 30.0) -> MotoServer:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = MotoServer(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode} (is moto[server] installed?)")
        try:
            urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"moto server on {server.endpoint} did not answer within {timeout_s}s")


@pytest.fixture(scope="module")
def s3_server() -> Iterator[MotoServer]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["folder", "bucket"])
def lake_env(request, tmp_path, monkeypatch) -> Iterator[dict[str, str]]:
    """HDI_HOME in tmp_path and the lake either in HDI_HOME/lake or in a fresh bucket; yields the lake settings."""
    monkeypatch.setenv("HDI_HOME", str(tmp_path / "home"))
    for name in ("HDI_LAKE_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    env = {"HDI_HOME": str(tmp_path / "home")}
    if request.param == "bucket":
        server = request.getfixturevalue("s3_server")
        env.update(server.env(server.create_bucket()))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
