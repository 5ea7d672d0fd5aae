"""The test tree mirrors the code tree: every module of the five packages is imported, itself or through its
package, by a test in the folder that mirrors its own (hdi_core/continuous/rolls.py -> hdi_tests/core/continuous/).
A module tested only end to end is listed below with where."""

from __future__ import annotations

import re

import pytest
from repo_paths import REPO_ROOT

MIRROR = {"hdi_core": "core", "hdi_resources": "resources", "hdi_assets": "assets", "hdi_app": "app",
          "hdi_gateway": "gateway"}
# Modules exercised through others' tests, and where.
ELSEWHERE = {
    "hdi_core.environment": "names only; hdi_resources.settings re-exports them (deploy-file test reads them)",
    "hdi_resources.logging": "JSON run logs: checked by the UI end-to-end test (hdi_tests/test_ui_e2e.py)",
    "hdi_resources.instance": "the Dagster instance config: hdi_tests/test_deploy_files.py",
    "hdi_assets.continuous.definitions": "merged into hdi_assets.definitions: hdi_tests/assets/test_definitions.py",
    "hdi_assets.dbn_files.definitions": "merged into hdi_assets.definitions: hdi_tests/assets/test_definitions.py",
    "hdi_assets.storage.definitions": "merged into hdi_assets.definitions: hdi_tests/assets/test_definitions.py",
    "hdi_assets.vendor_schema_jobs.definitions": "merged into hdi_assets.definitions: test_definitions.py",
    "hdi_assets.storage.assets": "materialized with the chain: hdi_tests/assets/continuous/test_continuous_assets.py",
    "hdi_app.cli.demo": "run as a user runs it: hdi_tests/app/cli/test_cli_demo.py (a subprocess)",
    "hdi_app.cli.replay": "`hdi replay serve` is the gateway process: hdi_tests/gateway/test_replay_server.py",
    "hdi_app.cli.api": "`hdi api serve`: hdi_tests/app/api/test_api.py starts the same server",
    "hdi_assets.continuous.checks": "the chain's checks: assets/continuous/test_defect_catalogue.py runs each one",
    "hdi_assets.continuous.second_bars": "ohlcv_1s's bars: materialized by assets/continuous/test_continuous_assets.py",
    "hdi_assets.continuous.charts": "the charts on the materializations: assets/continuous/test_chart_assets.py",
    "hdi_gateway.tls": "every gateway test's TLS: hdi_tests/conftest.py makes the certificate with it",
    "hdi_gateway.source": "the protocol both sources implement: tested through them (gateway/, gateway/synthetic/)",
}


def _modules() -> list[str]:
    out = []
    for package in MIRROR:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if path.name != "__init__.py":
                out.append(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts))
    return out


def _mirror_tests(module: str) -> str:
    parts = module.split(".")
    folder = REPO_ROOT / "hdi_tests" / MIRROR[parts[0]] / "/".join(parts[1:-1])
    return "\n".join(p.read_text() for p in sorted(folder.rglob("test_*.py"))) if folder.is_dir() else ""


@pytest.mark.parametrize("module", _modules())
def test_every_module_is_tested_in_the_mirrored_folder(module: str) -> None:
    if module in ELSEWHERE:
        return
    tests = _mirror_tests(module)
    package, name = module.rsplit(".", 1)
    # The module itself, or its package's API (a facade such as hdi_core.calendar re-exports its modules).
    parent, _, package_name = package.rpartition(".")
    alternatives = [rf"\b{re.escape(module)}\b", rf"\bfrom {re.escape(package)} import [^\n]*\b{name}\b"]
    if parent:  # a top-level module (hdi_core.units) has no package API of its own to go through
        alternatives += [rf"\bfrom {re.escape(package)} import\b", rf"\bimport {re.escape(package)}\b",
                         rf"\bfrom {re.escape(parent)} import [^\n]*\b{package_name}\b"]
    pattern = "|".join(alternatives)
    where = f"hdi_tests/{MIRROR[module.split('.')[0]]}/"
    assert re.search(pattern, tests), f"{module}: no test under {where} imports it or its package"
