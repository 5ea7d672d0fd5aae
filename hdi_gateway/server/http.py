"""The HTTP plumbing: request parsing, dispatch to the app, streamed DBN bodies and injected faults."""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hdi_core.dbn import metadata_bytes
from hdi_core.errors import HdiError
from hdi_gateway import symbology
from hdi_gateway.server.app import GatewayApp
from hdi_gateway.server.protocol import FAULTABLE_CALLS, ApiError, log


class _DropConnection(Exception):
    """Injected `reset` fault: the connection is cut after part of the body."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hdi-replay-gateway/1.0"
    sys_version = ""
    server: GatewayHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    # -------------------------------------------------------------------- plumbing

    def _params(self, method: str) -> dict[str, str]:
        query = urlsplit(self.path).query
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            params.update({k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()})
        return params

    def _headers_common(self, request_id: str) -> dict[str, str]:
        return {"Databento-Request-Id": request_id, "Databento-Api-Version": "0", "Connection": "close"}

    def _send_head(self, status: int, length: int, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self._send_head(status, len(body), content_type, headers)
        self.wfile.write(body)

    def _send_error(self, err: ApiError, request_id: str) -> None:
        self._send(
            err.status, err.body(), "application/json", {**self._headers_common(request_id), **err.headers}
        )

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        request_id = uuid.uuid4().hex
        self.close_connection = True
        try:
            route = self.ROUTE_TABLE.get(urlsplit(self.path).path)
            if route is None:
                raise ApiError(404, "not_found", f"No such endpoint: {urlsplit(self.path).path}")
            expected, name = route
            params = self._params(method)
            app.check_auth(self.headers.get("Authorization"))
            if method != expected:
                raise ApiError(405, "method_not_allowed", f"{name} takes {expected}, not {method}")
            fault = app.faults.draw() if app.faults is not None and name in FAULTABLE_CALLS else None
            if fault == "slow":
                time.sleep(app.faults.slow_s if app.faults else 0)
            elif fault == "429":
                raise ApiError(
                    429,
                    "rate_limit_exceeded",
                    "Too many requests; retry after the delay given.",
                    {"Retry-After": str(app.faults.retry_after if app.faults else 1)},
                )
            elif fault in ("500", "502", "503", "504"):
                messages = {
                    "500": "Internal server error.",
                    "502": "Bad gateway.",
                    "503": "Service temporarily unavailable.",
                    "504": "The remote gateway timed out.",
                }
                raise ApiError(
                    int(fault), "internal_error" if fault == "500" else "service_unavailable", messages[fault]
                )
            if name == "timeseries.get_range":
                self._get_range(app, params, request_id, drop=fault == "reset")
            else:
                body = json.dumps(app.json_handler(name)(params)).encode()
                if fault == "reset":
                    self._send_partial(200, body, "application/json", self._headers_common(request_id))
                self._send(200, body, "application/json", self._headers_common(request_id))
        except ApiError as err:
            self._send_error(err, request_id)
        except _DropConnection:
            self._drop()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except HdiError as err:
            self._send_error(ApiError(500, "internal_error", str(err)), request_id)
        except Exception as err:  # a bug in the gateway: answer 500 and keep serving
            log.exception("gateway request failed")
            self._send_error(ApiError(500, "internal_error", f"{type(err).__name__}: {err}"), request_id)

    ROUTE_TABLE = GatewayApp.ROUTES

    def _get_range(self, app: GatewayApp, params: dict[str, str], request_id: str, drop: bool) -> None:
        compression = app._choice(params, "compression", "zstd", ("zstd", "none"))
        app._choice(params, "encoding", "dbn", ("dbn",))
        query = app.range_query(params)
        head = metadata_bytes(
            query.dataset,
            query.schema,
            query.start_ns,
            query.end_ns,
            query.symbols,
            query.stype_in,
            query.stype_out,
            symbology.to_dbn_mappings(query.mappings),
            query.limit,
            not_found=query.not_found,
        )
        headers = {
            **self._headers_common(request_id),
            "Databento-Schema": query.schema,
            "Databento-Dataset": query.dataset,
        }
        chunks = app.body_chunks(query, head, compress=compression == "zstd")
        content_type = "application/octet-stream"
        if drop:
            self._send_partial(200, b"".join(chunks), content_type, headers)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        write = self.wfile.write
        for chunk in chunks:
            if len(chunk):
                write(b"%x\r\n" % len(chunk))
                write(chunk)
                write(b"\r\n")
        write(b"0\r\n\r\n")

    def _send_partial(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        """Headers announcing the whole body, then half of it, then the connection drops."""
        self._send_head(status, len(body), content_type, headers)
        self.wfile.write(body[: max(1, len(body) // 2)])
        raise _DropConnection

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class GatewayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: GatewayApp, context: ssl.SSLContext | None) -> None:
        self.app = app
        self.context = context
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the worker thread, so one slow client cannot stall accept().
        if self.context is not None:
            request.settimeout(60)
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
        try:
            super().finish_request(request, client_address)
        finally:
            try:
                request.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)
