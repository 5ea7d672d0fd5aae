"""Where the repository and the shared fixtures are, for test modules at any depth of hdi_tests/."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS = REPO_ROOT / "hdi_tests"
SHARED = REPO_ROOT.parent / "shared"
DBN_SAMPLES = SHARED / "fixtures" / "dbn_samples"
