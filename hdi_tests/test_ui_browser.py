"""The Dagster UI as a user sees it: headless Debian chromium (driven over the DevTools protocol) opens the
asset graph and ohlcv_1s's checks page of a running `dagster dev`; screenshots go to test-artifacts/."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from cdp import Browser, find_chromium
from repo_paths import REPO_ROOT
from ui_fixtures import LOCATION_QUERY

from hdi_assets.continuous.assets import CHECKPOINTS
from hdi_assets.definitions import PIPELINE_ASSETS

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (CI installs it: apt-get install -y chromium)"
)
DISMISS_COMMUNITY_DIALOG = """(() => {
  const skip = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Skip');
  if (skip) { skip.click(); return true; }
  return false;
})()"""


def shown(name: str, text: str) -> bool:
    """The name is on the page, whole or middle-truncated the way the graph's nodes shorten long names."""
    if name in text.split():
        return True
    for token in text.split():
        if "…" in token:
            head, tail = token.split("…", 1)
            if len(head) >= 5 and name.startswith(head) and name.endswith(tail) and len(head) + len(tail) < len(name):
                return True
    return False


def wait_until_shown(browser: Browser, names: list[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        browser.evaluate(DISMISS_COMMUNITY_DIALOG)  # the first visit's newsletter dialog covers the page
        text = browser.text()
        if all(shown(n, text) for n in names):
            return text
        time.sleep(1)
    missing = [n for n in names if not shown(n, text)]
    raise AssertionError(f"not shown after {timeout}s: {missing}\npage text:\n{text[:3000]}")


def clear_dialogs(browser: Browser, timeout: float = 20) -> None:
    """Dismiss the newsletter dialog (it can pop up a moment after the page renders) before a screenshot."""
    deadline = time.monotonic() + timeout
    absent_since = None
    while time.monotonic() < deadline:
        browser.evaluate(DISMISS_COMMUNITY_DIALOG)
        if "Join the Dagster community" in browser.text():
            absent_since = None
        elif absent_since is None:
            absent_since = time.monotonic()
        elif time.monotonic() - absent_since > 2:
            return
        time.sleep(0.5)


def test_asset_graph_shows_every_pipeline_asset(dagster_ui, browser):
    # Each pipeline group's own lineage page: with every domain expanded the global graph outgrows the window.
    location = dagster_ui.graphql(LOCATION_QUERY, timeout=10)["workspaceOrError"]["locationEntries"][0]["name"]
    groups: dict[str, list[str]] = {}
    for asset in PIPELINE_ASSETS:
        groups.setdefault(asset.group_names_by_key[asset.key], []).append(asset.key.to_user_string())
    assert sorted(groups) == ["continuous", "storage"]
    for group, names in groups.items():
        browser.navigate(f"{dagster_ui.url}/locations/__repository__@{quote(location)}/asset-groups/{group}/lineage")
        wait_until_shown(browser, names)
        clear_dialogs(browser)  # also lets the layout animation settle before the picture
        assert browser.screenshot(ARTIFACTS / f"ui_asset_graph_{group}.png").stat().st_size > 10_000


def test_checks_page_shows_the_five_checkpoints(dagster_ui, browser):
    browser.navigate(f"{dagster_ui.url}/assets/ohlcv_1s?view=checks")
    text = wait_until_shown(browser, ["ohlcv_1s", *CHECKPOINTS])
    assert f"Checks ({len(CHECKPOINTS)})" in text
    clear_dialogs(browser)
    assert browser.screenshot(ARTIFACTS / "ui_ohlcv_1s_checks.png").stat().st_size > 10_000
