"""The offline live gateway: Databento's live protocol (LSG) on 127.0.0.1 for the unmodified `databento.Live`.

One job per module: protocol.py (control lines, CRAM), messages.py (SymbolMappingMsg, SystemMsg, ErrorMsg),
clock.py (the replay clock), faults.py (faults on demand), subscriptions.py (symbols to instruments),
stream.py (columnar record batches), session.py (one connection), server.py (the TCP server), process.py
(a child process with a pid file).
"""

from hdi_gateway.live.clock import ReplayClock, parse_speed
from hdi_gateway.live.faults import FaultSource, LiveFaults
from hdi_gateway.live.process import default_at_ns, start_live_process
from hdi_gateway.live.protocol import DEFAULT_LIVE_KEY, ENV_LIVE_GATEWAY, accepted_keys
from hdi_gateway.live.server import LiveGateway, make_state, serve_forever, start_live_thread, warm_up
from hdi_gateway.live.stream import send_times

__all__ = [
    "DEFAULT_LIVE_KEY", "ENV_LIVE_GATEWAY", "FaultSource", "LiveFaults", "LiveGateway", "ReplayClock",
    "accepted_keys", "default_at_ns", "make_state", "parse_speed", "send_times", "serve_forever",
    "start_live_process", "start_live_thread", "warm_up",
]
