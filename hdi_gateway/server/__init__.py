"""The local Databento-compatible Historical gateway, for the unmodified `databento.Historical` client.

Speaks HTTPS on 127.0.0.1 (the client forces https), HTTP Basic auth with the API key as user name, and the
/v0/ endpoints of Databento's Historical API (see /work/shared/notes/databento.md). Records come from a
DataSource (the synthetic market or a folder of DBN files) as DBN v3 structured arrays and leave as one
DBN stream, zstd-compressed while it is sent. Faults (429/5xx/dropped streams/slowness) can be injected.

One job per module: protocol.py (API conventions, cost model, parameter parsing), queries.py (range queries
and the body cache), app.py (auth and endpoints), http.py (HTTP plumbing), process.py (start and stop).
"""

from hdi_gateway.server.app import GatewayApp
from hdi_gateway.server.http import GatewayHTTPServer
from hdi_gateway.server.process import (
    Gateway,
    accepted_keys_from_env,
    make_server,
    serve_forever,
    start_gateway_process,
    start_gateway_thread,
)
from hdi_gateway.server.protocol import (
    COST_PER_GB,
    ENV_GATEWAY_KEYS,
    ApiError,
    date_ns,
    iso_ns,
    ns_date,
    parse_date,
    parse_time,
)
from hdi_gateway.server.queries import BodyCache, RangeQuery, resolve_symbols

__all__ = [
    "COST_PER_GB", "ENV_GATEWAY_KEYS", "ApiError", "BodyCache", "Gateway", "GatewayApp", "GatewayHTTPServer",
    "RangeQuery", "accepted_keys_from_env", "date_ns", "iso_ns", "make_server", "ns_date", "parse_date",
    "parse_time", "resolve_symbols", "serve_forever", "start_gateway_process", "start_gateway_thread",
]
