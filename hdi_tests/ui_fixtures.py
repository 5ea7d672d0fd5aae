"""A running `dagster dev` on loopback for the UI tests (shared by test_ui_e2e.py and test_ui_browser.py).

Registered in conftest.py so both files share one server: DAGSTER_HOME and HDI_HOME in a temp folder, the
synthetic gateway's environment, the instance dagster.yaml rendered by hdi_resources.instance. The finally
block stops the embedded PostgreSQL and kills the whole process group of `dagster dev` (SIGTERM may be ignored).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGSTER_BIN = Path(sys.executable).parent / "dagster"
STARTUP_TIMEOUT_S = 240


@dataclass
class DagsterUI:
    url: str
    hdi_home: Path
    dagster_home: Path
    log_path: Path

    def graphql(self, query: str, variables: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_loaded(ui: DagsterUI, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster dev exited with {process.returncode}:\n{ui.log_tail()}")
        try:
            entries = ui.graphql(LOCATION_QUERY, timeout=10)["workspaceOrError"]["locationEntries"]
            states = [(e["loadStatus"], (e["locationOrLoadError"] or {}).get("__typename")) for e in entries]
            if entries and all(s == ("LOADED", "RepositoryLocation") for s in states):
                return
            errors = [e["locationOrLoadError"] for e in entries if e["locationOrLoadError"]]
            if any(err.get("__typename") == "PythonError" for err in errors):
                raise AssertionError(f"the code location failed to load: {errors}")
            last = str(states)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = str(exc)
        time.sleep(2)
    raise AssertionError(f"dagster dev not ready after {STARTUP_TIMEOUT_S}s ({last}):\n{ui.log_tail()}")


def _kill_group(process: subprocess.Popen) -> None:
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
        process.wait(timeout=15)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)  # children (webserver, daemon, code server, run workers) too
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture(scope="session")
def dagster_ui(synthetic_gateway_env, tmp_path_factory) -> Iterator[DagsterUI]:
    from hdi_resources.db.server import stop_embedded_server
    from hdi_resources.instance import ENV_DAGSTER_PG_URL, write_dagster_yaml

    base = tmp_path_factory.mktemp("dagster_ui")
    if os.geteuid() == 0:
        base.chmod(0o711)  # the embedded server's OS user must search its way down to its data (conftest.py)
    hdi_home, dagster_home = base / "hdi", base / "dagster"
    hdi_home.mkdir()
    write_dagster_yaml(dagster_home, use_postgres=False)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HDI_DATABASE_URL", ENV_DAGSTER_PG_URL)}
    env.update(
        {
            **synthetic_gateway_env,
            "HDI_HOME": str(hdi_home),
            "DAGSTER_HOME": str(dagster_home),
            "HDI_LOG_FILE": str(hdi_home / "logs" / "hdi.jsonl"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    ui = DagsterUI(f"http://127.0.0.1:{port}", hdi_home, dagster_home, base / "dagster-dev.log")
    with open(ui.log_path, "wb") as log:
        process = subprocess.Popen(
            [str(DAGSTER_BIN), "dev", "-m", "hdi_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so every child can be killed with it
        )
    try:
        _wait_until_loaded(ui, process)
        yield ui
    finally:
        try:
            stop_embedded_server(hdi_home)
        finally:
            _kill_group(process)
            stop_embedded_server(hdi_home)  # a run killed mid-way may have started it again
