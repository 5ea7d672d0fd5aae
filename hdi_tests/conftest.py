"""Shared pytest fixtures.

The local gateway's CA bundle is put into REQUESTS_CA_BUNDLE / SSL_CERT_FILE here, at import, because aiohttp
(the Databento client's async path) reads SSL_CERT_FILE once, when it is first imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdi_gateway.tls import ensure_certificate

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
DBN_SAMPLES = SHARED / "fixtures" / "dbn_samples"
# Fixtures that serve the real sample files; a test using one needs ../shared.
SAMPLE_FIXTURES = frozenset({"sample_files_source", "files_gateway", "files_client"})
TEST_API_KEY = "db-hdi-test-key"

GATEWAY_CERT = ensure_certificate()
GATEWAY_CERT_DIR = GATEWAY_CERT.cert_path.parent
os.environ["REQUESTS_CA_BUNDLE"] = str(GATEWAY_CERT.bundle_path)
os.environ["SSL_CERT_FILE"] = str(GATEWAY_CERT.bundle_path)


# ------------------------------------------------------------------------------------------ replay gateway


@pytest.fixture(scope="session")
def synthetic_market():
    """The seeded synthetic GLBX.MDP3 market at test volume."""
    from hdi_gateway.synthetic import TEST_TICKS_PER_SESSION, SyntheticMarket

    return SyntheticMarket(seed=7, ticks_per_session=TEST_TICKS_PER_SESSION)


@pytest.fixture(scope="session")
def sample_files_source():
    """A FileSource over every real Databento sample file (both subfolders)."""
    from hdi_gateway.files import FileSource

    return FileSource(DBN_SAMPLES)


@pytest.fixture(scope="session")
def synthetic_gateway(synthetic_market) -> Iterator:
    """A running gateway (background thread) serving the synthetic market; `.url`, `.ca_path`."""
    from hdi_gateway.server import start_gateway_thread

    gateway = start_gateway_thread(synthetic_market, cert_dir=GATEWAY_CERT_DIR)
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="session")
def files_gateway(sample_files_source) -> Iterator:
    """A running gateway (background thread) serving the real DBN sample files."""
    from hdi_gateway.server import start_gateway_thread

    gateway = start_gateway_thread(sample_files_source, cert_dir=GATEWAY_CERT_DIR)
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="session")
def synthetic_client(synthetic_gateway):
    """The unmodified databento.Historical client pointed at the synthetic gateway."""
    import databento as db

    return db.Historical(TEST_API_KEY, gateway=synthetic_gateway.url)


@pytest.fixture(scope="session")
def files_client(files_gateway):
    """The unmodified databento.Historical client pointed at the sample-files gateway."""
    import databento as db

    return db.Historical(TEST_API_KEY, gateway=files_gateway.url)


@pytest.fixture(scope="session")
def synthetic_gateway_env(synthetic_gateway) -> dict[str, str]:
    """What a process needs to fetch from the synthetic gateway: a key, its URL and the CA bundle."""
    return {"DATABENTO_API_KEY": TEST_API_KEY, **synthetic_gateway.client_env()}


# ------------------------------------------------------------------------------------------ dagster dev (UI tests)

from ui_fixtures import dagster_ui  # noqa: E402, F401 - one `dagster dev` shared by test_ui_e2e and test_ui_browser

# ------------------------------------------------------------------------------------------ ../shared absent


def _needs_shared(item: pytest.Item) -> bool:
    """A test reads ../shared when it uses a sample-file fixture or its module names a path inside ../shared."""
    if SAMPLE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    return module is not None and any(
        isinstance(value, Path) and value.is_relative_to(SHARED) for value in vars(module).values()
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ../shared (the real Databento sample files), the tests that read it are skipped, saying why."""
    if DBN_SAMPLES.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{DBN_SAMPLES} is absent: this test reads Databento's real sample files")
    for item in items:
        if _needs_shared(item):
            item.add_marker(skip)
