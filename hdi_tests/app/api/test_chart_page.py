"""The chart page as a user sees it: headless Debian chromium (cdp.py) opens /chart of the API over a database
holding demo-like data (both backends) and draws the continuous candles, the roll markers and the raw contracts,
toggled off and on; also the standalone HTML of `hdi plot`. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from cdp import Browser, find_chromium
from chart_fixtures import load_demo_like
from repo_paths import REPO_ROOT

from hdi_app.api import start_api_thread
from hdi_resources import lake
from hdi_resources.db import Database

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (CI installs it: apt-get install -y chromium)"
)
QUERY = "symbol=ES&start=2024-03-01&end=2024-06-30"
# Pixels of the chart's canvases that are drawn (neither transparent nor the white background).
INKED = """(() => {
  let inked = 0;
  for (const canvas of document.querySelectorAll('#chart canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < pixels.length; i += 4) {
      if (pixels[i + 3] > 0 && (pixels[i] < 235 || pixels[i + 1] < 235 || pixels[i + 2] < 235)) inked++;
    }
  }
  return inked;
})()"""
STATE = """(() => {
  const s = window.hdiChart;
  if (!s || !s.ready) return { ready: false, error: s ? s.error : null };
  return { ready: true, error: s.error, candles: s.candles.data().length, markers: s.markers.markers().length,
           markerTexts: s.markers.markers().map(m => m.text),
           contracts: s.contracts.map(c => ({ symbol: c.symbol, visible: c.series.options().visible,
                                              points: c.series.data().length })),
           checks: [...document.querySelectorAll('#checks [data-window]')].map(e => e.textContent) };
})()"""


@pytest.fixture(scope="module")
def stored(storage_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    """The API over the demo-like data, with a lake holding the window's validation report."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(lake.ENV_LAKE_URL, (tmp_path_factory.mktemp("lake")).as_uri())
        info = load_demo_like(storage_db)
        report = {"passed": True, "checkpoints": [{"checkpoint": "session_alignment", "passed": True}]}
        lake.write_json(json.dumps(report), "ohlcv_1s", "validation_report.json", symbol="ES", window="2024-01-01")
        server = start_api_thread(storage_db)
        try:
            yield server.url, info
        finally:
            server.stop()


def _wait(browser: Browser, ready: bool = True, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = browser.evaluate(STATE) or {}
        if state.get("error"):
            raise AssertionError(f"the page failed: {state['error']}")
        if state.get("ready") == ready:
            return state
        time.sleep(0.3)
    raise AssertionError(f"chart not ready after {timeout}s: {state}; page text: {browser.text()[:1000]}")


def _inked(browser: Browser, at_least: int = 0, at_most: int | None = None, timeout: float = 20) -> int:
    """Drawn pixels once they are within the bounds (drawing happens on the next animation frames)."""
    deadline = time.monotonic() + timeout
    inked = 0
    while time.monotonic() < deadline:
        inked = browser.evaluate(INKED) or 0
        if inked >= at_least and (at_most is None or inked <= at_most):
            return inked
        time.sleep(0.3)
    return inked


def _click_raw_toggle(browser: Browser) -> None:
    browser.evaluate("document.getElementById('raw').click()")


def test_chart_page_draws_candles_rolls_and_toggles_raw_contracts(stored, browser) -> None:
    url, info = stored
    with urllib.request.urlopen(f"{url}/chart", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/html")
    with urllib.request.urlopen(f"{url}/static/lightweight-charts.standalone.production.js", timeout=30) as response:
        assert b"Lightweight Charts" in response.read(400)
    browser.navigate(f"{url}/chart?{QUERY}")
    state = _wait(browser)
    assert state["candles"] == info["bars"]
    assert state["markers"] == 2 and state["markerTexts"] == ["ESH4→ESM4 +38.5", "ESM4→ESU4 +31"]
    assert [c["symbol"] for c in state["contracts"]] == ["ESH4", "ESM4", "ESU4"]
    assert all(c["visible"] and c["points"] > 0 for c in state["contracts"])
    assert state["checks"] == ["2024-01-01 ✓ passed"]
    text = browser.text()
    assert "ESM4 +31 (vendor)" in text and "ESH4 +69.5 (provenance)" in text
    with_raw = _inked(browser, at_least=20_000)
    assert with_raw >= 20_000, f"the candles canvas is nearly blank ({with_raw} inked pixels)"
    browser.screenshot(ARTIFACTS / "chart_page.png")

    _click_raw_toggle(browser)
    assert not any(c["visible"] for c in _wait(browser)["contracts"])
    without_raw = _inked(browser, at_most=with_raw - 500)
    assert without_raw < with_raw - 500, (with_raw, without_raw)  # the dashed overlays are gone
    browser.screenshot(ARTIFACTS / "chart_page_raw_off.png")

    _click_raw_toggle(browser)
    assert all(c["visible"] for c in _wait(browser)["contracts"])
    assert _inked(browser, at_least=with_raw - 500) >= with_raw - 500


def test_api_chart_data_is_json_and_bad_requests_stay_json(stored, monkeypatch) -> None:
    url, info = stored
    with urllib.request.urlopen(f"{url}/api/market-data/ES/chart?start=2024-03-01&end=2024-06-30", timeout=30) as r:
        assert r.headers["Content-Type"] == "application/json"
        body = json.loads(r.read())
    assert len(body["candles"]["time"]) == info["bars"] and body["candles"]["close"][-1] == info["close"][-1]
    sources = {c["symbol"]: c["source"] for c in body["contracts"]}
    assert sources == {"ESH4": "provenance", "ESM4": "vendor", "ESU4": "provenance"}
    monkeypatch.setattr("hdi_app.api.chart.MAX_CANDLES", 100)  # too many candles: 413 saying what to do
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}/api/market-data/ES/chart?start=2024-03-01&end=2024-06-30", timeout=30)
    assert refused.value.code == 413 and "larger bar size" in json.loads(refused.value.read())["error"]
    for path in ("/api/market-data/ES/chart?bars=7m", "/api/market-data/NOPE/chart", "/", "/static/../x"):
        try:
            urllib.request.urlopen(f"{url}{path}", timeout=30)
            raise AssertionError(f"{path} answered 200")
        except urllib.error.HTTPError as exc:
            assert exc.headers["Content-Type"] == "application/json" and exc.code in (400, 404), path


def test_plot_writes_a_png_and_a_standalone_html_that_draws(stored, browser, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from hdi_app.cli import app

    runner = CliRunner()
    png, html = tmp_path / "es.png", tmp_path / "es.html"
    for target in (png, html):
        result = runner.invoke(app, ["plot", "--symbol", "ES", "--start", "2024-03-01", "--end", "2024-06-30",
                                     "--output", str(target)])
        assert result.exit_code == 0, result.output
        assert "2 roll(s)" in result.output and "ESM4 (vendor)" in result.output
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size < 150_000
    page = html.read_text()
    assert "/static/" not in page.split("<style>")[0] and "Lightweight Charts" in page  # library inlined
    browser.navigate(html.as_uri())
    state = _wait(browser)
    assert state["candles"] == stored[1]["bars"] and state["markers"] == 2 and len(state["contracts"]) == 3
    assert _inked(browser, at_least=20_000) >= 20_000
    browser.screenshot(ARTIFACTS / "chart_standalone.png")
