"""The chart page on the demo's own data: `hdi demo` (ES, two windows, its own gateway and database) runs as a user
runs it, then headless chromium opens /chart of the API over that database and must draw the candles, one marker
per stored roll and the raw contracts (toggled off and on). Screenshot: test-artifacts/chart_page_demo.png."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cdp import find_chromium
from repo_paths import REPO_ROOT
from test_chart_page import _click_raw_toggle, _inked, _wait

from hdi_app.api import start_api_thread
from hdi_resources.db import Database, read
from hdi_resources.db.server import stop_embedded_server

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (CI installs it: apt-get install -y chromium)"
)
DEMO = ["demo", "--ticks-per-session", "500", "--symbol", "ES", "--window", "2024-01-01", "--window", "2024-07-01"]


@pytest.fixture(scope="module")
def demo_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Database]]:
    home = tmp_path_factory.mktemp("demo_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HDI_", "DATABENTO_", "DAGSTER_"))}
    env["HDI_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-c", "from hdi_app.cli import main; main()", *DEMO], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HDI_HOME", str(home))  # the API reads the demo's lake (the windows' check status) too
        mp.delenv("HDI_DATABASE_URL", raising=False)
        mp.delenv("HDI_LAKE_URL", raising=False)
        database = Database(url="", home=Path(home))
        server = start_api_thread(database)
        try:
            yield server.url, database
        finally:
            server.stop()
            database.close()
            stop_embedded_server(Path(home))


def test_the_chart_page_draws_the_demos_series_rolls_and_contracts(demo_api, browser) -> None:
    url, database = demo_api
    rolls = read.rolls(database, "ES")
    browser.navigate(f"{url}/chart?symbol=ES&start=2024-01-01&end=2024-12-31&bars=1h")
    state = _wait(browser, timeout=120)
    assert state["candles"] > 1_000  # a year of hourly bars of the demo's ES
    assert state["markers"] == rolls.num_rows >= 3 and all("→" in text for text in state["markerTexts"])
    assert len(state["contracts"]) == state["markers"] + 1 and all(c["points"] > 0 for c in state["contracts"])
    assert sorted(state["checks"]) == ["2024-01-01 ✓ passed", "2024-07-01 ✓ passed"]
    with_raw = _inked(browser, at_least=20_000)
    assert with_raw >= 20_000
    browser.screenshot(REPO_ROOT / "test-artifacts" / "chart_page_demo.png")
    _click_raw_toggle(browser)
    assert not any(c["visible"] for c in _wait(browser)["contracts"])
    assert _inked(browser, at_most=with_raw - 500) < with_raw - 500
