"""The HTTP API serves the order-flow schemas at the bars route (native PostgreSQL and TimescaleDB)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from orderflow_tapes import TICK, random_trades, week_sessions

from hdi_app.api import start_api_thread
from hdi_core.orderflow import aggressor_flow, footprint
from hdi_resources.db import Database
from hdi_resources.db.orderflow import delta_rows, footprint_rows, load_orderflow


@pytest.fixture(scope="module")
def api(storage_db: Database) -> Iterator[tuple[str, dict]]:
    sessions, trades = week_sessions(), random_trades(21, 2_000)
    flow = aggressor_flow(trades, sessions, "1m")
    foot = footprint(trades, sessions, "1m", TICK)
    load_orderflow(storage_db, "orderflow_delta", "ES.v.0", "2024-01-01", delta_rows({"1m": flow}), source="test")
    load_orderflow(storage_db, "orderflow_footprint", "ES.v.0", "2024-01-01", footprint_rows(foot, "1m", "panama"),
                   source="test")
    server = start_api_thread(storage_db)
    try:
        yield server.url, {"flow": flow, "footprint": foot}
    finally:
        server.stop()


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_delta_pages(api: tuple[str, dict]) -> None:
    url, computed = api
    status, body = _get(f"{url}/api/market-data/ES/delta-1m/bars?limit=5")
    assert status == 200 and body["count"] == 5 and body["truncated"] and body["next_offset"] == 5
    rows = body["rows"]
    assert [r["delta"] for r in rows] == computed["flow"]["delta"].to_pylist()[:5]
    assert [r["cum_delta"] for r in rows] == computed["flow"]["cum_delta"].to_pylist()[:5]
    status, rest = _get(f"{url}/api/market-data/ES.v.0/delta-1m/rows?offset=5&limit=100000")
    assert status == 200 and rest["count"] == computed["flow"].num_rows - 5


def test_footprint_fixed_prices_and_errors(api: tuple[str, dict]) -> None:
    url, computed = api
    status, body = _get(f"{url}/api/market-data/ES/footprint-1m/bars?prices=fixed&limit=100000")
    assert status == 200
    assert [r["price"] for r in body["rows"]] == computed["footprint"]["price"].to_pylist()
    assert [r["sell_imbalance"] for r in body["rows"]] == computed["footprint"]["sell_imbalance"].to_pylist()
    status, body = _get(f"{url}/api/market-data/NQ/delta-1m/bars")
    assert status == 404 and "no delta-1m rows stored for 'NQ'" in body["error"]
    status, body = _get(f"{url}/api/market-data/ES/icebergs/bars")
    assert status == 404
