"""The read-only market-data HTTP API (`hdi api serve`)."""

from .server import ApiServer, MarketDataApi, make_server, start_api_thread

__all__ = ["ApiServer", "MarketDataApi", "make_server", "start_api_thread"]
