"""Starting and stopping the gateway: in a thread of this process, as a child process, or serving forever."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hdi_core.environment import ENV_CA, ENV_GATEWAY
from hdi_core.errors import HdiError
from hdi_gateway.faults import FaultPlan
from hdi_gateway.server.app import GatewayApp
from hdi_gateway.server.http import GatewayHTTPServer
from hdi_gateway.server.protocol import ENV_GATEWAY_KEYS
from hdi_gateway.source import DataSource
from hdi_gateway.tls import GatewayCertificate, ensure_certificate


def accepted_keys_from_env(keys: Iterable[str] | None = None) -> list[str] | None:
    """Keys from --key options, else HDI_GATEWAY_KEYS (comma-separated), else None (any 'db-' key)."""
    listed = [k.strip() for k in (keys or []) if k and k.strip()]
    if not listed:
        listed = [k.strip() for k in os.environ.get(ENV_GATEWAY_KEYS, "").split(",") if k.strip()]
    return listed or None


@dataclass
class Gateway:
    """A running gateway: its URL, the CA bundle clients must trust, and how to stop it."""

    url: str
    ca_path: Path
    port: int
    _stop: Callable[[], None]
    pid: int | None = None

    def stop(self) -> None:
        self._stop()

    def client_env(self) -> dict[str, str]:
        """Environment for clients: HDI's own settings plus the CA bundle for requests and aiohttp."""
        ca = str(self.ca_path)
        return {ENV_GATEWAY: self.url, ENV_CA: ca, "REQUESTS_CA_BUNDLE": ca, "SSL_CERT_FILE": ca}

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_server(
    source: DataSource,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultPlan | None = None,
    keys: Iterable[str] | None = None,
    cert_dir: Path | None = None,
) -> tuple[GatewayHTTPServer, GatewayCertificate]:
    """Bind the HTTPS server (not yet serving) with this HDI_HOME's gateway certificate."""
    cert = ensure_certificate(cert_dir)
    app = GatewayApp(source, keys=keys, faults=faults)
    server = GatewayHTTPServer((host, port), app, context=cert.server_context())
    return server, cert


def start_gateway_thread(
    source: DataSource,
    faults: FaultPlan | None = None,
    keys: Iterable[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    cert_dir: Path | None = None,
) -> Gateway:
    """Serve `source` from a background thread of this process; `stop()` shuts it down."""
    server, cert = make_server(source, host, port, faults, keys, cert_dir)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"hdi-gateway-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return Gateway(
        url=f"https://{host}:{server.server_address[1]}",
        ca_path=cert.bundle_path,
        port=server.server_address[1],
        _stop=stop,
    )


def start_gateway_process(
    args: Iterable[str] = (), env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Gateway:
    """Run `hdi replay serve ARGS` as a child process; returns once it printed its export lines."""
    command = [sys.executable, "-c", "from hdi_app.cli import main; main()", "replay", "serve", *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    exports: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s

    def kill() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    assert proc.stdout is not None
    while len(exports) < 2:
        if time.monotonic() > deadline:
            kill()
            raise HdiError(f"gateway process did not start within {timeout_s:.0f} s")
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            kill()
            raise HdiError(
                f"gateway process exited: {err.strip().splitlines()[-1] if err.strip() else 'no output'}"
            )
        match = re.match(r"export (\w+)=(\S+)", line.strip())
        if match:
            exports[match[1]] = match[2]
    url = exports[ENV_GATEWAY]
    return Gateway(
        url=url, ca_path=Path(exports[ENV_CA]), port=int(url.rsplit(":", 1)[1]), _stop=kill, pid=proc.pid
    )


def serve_forever(
    source: DataSource,
    host: str,
    port: int,
    faults: FaultPlan | None,
    keys: Iterable[str] | None,
    announce: Callable[[str], None],
) -> None:
    """Bind, announce the export lines, serve until killed (SIGTERM/SIGINT stop it cleanly)."""
    server, cert = make_server(source, host, port, faults, keys)
    url = f"https://{host}:{server.server_address[1]}"
    announce(f"export {ENV_GATEWAY}={url}")
    announce(f"export {ENV_CA}={cert.bundle_path}")

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
