"""Shared pytest fixtures.

The local gateway's CA bundle is put into REQUESTS_CA_BUNDLE / SSL_CERT_FILE here, at import, because aiohttp
(the Databento client's async path) reads SSL_CERT_FILE once, when it is first imported.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hdi_gateway.tls import ensure_certificate

if TYPE_CHECKING:
    from hdi_resources.db import Database

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


# ------------------------------------------------------------------------------------------ tmp dirs reachable as root

RUNNING_AS_ROOT = os.geteuid() == 0


def pytest_configure(config: pytest.Config) -> None:
    """As root, the embedded server runs as an unprivileged OS user that must search its way down to HDI_HOME,
    and HDI changes no folder above HDI_HOME (db/server.py). pytest's tmp dirs (0700, under /tmp/pytest-of-root,
    which pytest re-locks) would be unreachable: as root they go under hdi_home()/pytest-tmp instead, and the
    fixtures below make them searchable (o+x only: nobody can list them)."""
    if RUNNING_AS_ROOT and not config.option.basetemp:
        from hdi_resources.settings import hdi_home

        runs = hdi_home() / "pytest-tmp"
        runs.mkdir(parents=True, exist_ok=True)
        runs.chmod(0o711)
        basetemp = tempfile.mkdtemp(prefix="run-", dir=runs)
        config.option.basetemp = basetemp
        config.add_cleanup(lambda: shutil.rmtree(basetemp, ignore_errors=True))


@pytest.fixture(scope="session", autouse=True)
def searchable_basetemp(tmp_path_factory: pytest.TempPathFactory) -> None:
    if RUNNING_AS_ROOT:
        tmp_path_factory.getbasetemp().chmod(0o711)  # pytest (re)creates it 0700


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             searchable_basetemp: None) -> Path:
    """pytest's tmp_path (same naming, under the same basetemp), searchable by the embedded server's user."""
    path = tmp_path_factory.mktemp(re.sub(r"\W", "_", request.node.name)[:30], numbered=True)
    if RUNNING_AS_ROOT:
        path.chmod(0o711)
    return path


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


# ------------------------------------------------------------------------------------------ databases (both backends)

ENV_TIMESCALE_URL = "HDI_TEST_TIMESCALE_URL"  # a TimescaleDB server's URL (superuser); .ci/run sets it
BACKENDS = ("native", "timescaledb")


def private_home(prefix: str) -> Path:
    """A private HDI home under hdi_home() (pytest's tmp dirs are pruned and chmod-ed by concurrent runs)."""
    from hdi_resources.settings import hdi_home

    return Path(tempfile.mkdtemp(prefix=prefix, dir=hdi_home()))


def timescale_url_or_skip() -> str:
    url = os.environ.get(ENV_TIMESCALE_URL, "").strip()
    if not url:
        pytest.skip(f"TimescaleDB half skipped: {ENV_TIMESCALE_URL} is unset (`.ci/run` starts a TimescaleDB "
                    "server and sets it; locally: `bash ../shared/timescaledb/start.sh`)")
    return url


def kill_own_process(pid: int, sig: int, must_mention: str) -> None:
    """Signal a process this test started, and only that: never pid <= 0 (0 and negatives mean process groups
    or every process), never a pid whose command line no longer mentions `must_mention` (gone, or reused)."""
    import psutil

    assert isinstance(pid, int) and pid > 0, f"refusing to signal pid {pid!r}"
    cmdline = " ".join(psutil.Process(pid).cmdline())
    assert must_mention in cmdline, f"pid {pid} is not the process the test started: {cmdline!r}"
    os.kill(pid, sig)


@contextmanager
def scratch_timescale_database(label: str) -> Iterator[tuple[str, str]]:
    """A fresh database on the HDI_TEST_TIMESCALE_URL server with the extension, owned by a fresh owner role,
    plus a fresh app role, as in production (all dropped afterwards); yields (owner URL, app URL)."""
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    from hdi_resources.db.core import url_string

    server = make_url(timescale_url_or_skip()).set(drivername="postgresql+psycopg2")
    name = f"hdi_test_{re.sub(r'[^a-z0-9]+', '_', label.lower())[-30:]}_{secrets.token_hex(4)}"
    owner, app, password = f"{name}_owner", f"{name}_app", secrets.token_urlsafe(16)

    def admin(database: str | None, *statements: sql.Composable) -> None:
        target = server.set(drivername="postgresql", database=database or server.database)
        conn = psycopg2.connect(url_string(target), connect_timeout=15)
        conn.autocommit = True  # CREATE / DROP DATABASE cannot run in a transaction
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    ident = sql.Identifier
    admin(None, *(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident(role), sql.Literal(password))
                  for role in (owner, app)),
          sql.SQL("CREATE DATABASE {} OWNER {}").format(ident(name), ident(owner)))
    try:
        # The extension needs a superuser; an owner role creates it in production the same way (docker image).
        admin(name, sql.SQL("CREATE EXTENSION IF NOT EXISTS timescaledb"))
        yield (url_string(server.set(database=name, username=owner, password=password)),
               url_string(server.set(database=name, username=app, password=password)))
    finally:
        admin(None, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident(name)),
              *(sql.SQL("DROP ROLE IF EXISTS {}").format(ident(role)) for role in (app, owner)))


@contextmanager
def backend_database(backend: str, label: str) -> Iterator[Database]:
    """A migrated, empty HDI database: the embedded PostgreSQL (native partitioning) in a private home, or a
    fresh database on the TimescaleDB test server. `database_env(db)` is what a CLI/subprocess needs to reach it."""
    from hdi_resources.db import Database
    from hdi_resources.db.server import stop_embedded_server

    if backend == "native":
        home = private_home(f"test-{label}-")
        database = None
        try:
            database = Database(url="", home=home)
            database.migrate()
            yield database
        finally:
            if database is not None:
                database.close()
            stop_embedded_server(home)
            shutil.rmtree(home, ignore_errors=True)
        return
    with scratch_timescale_database(label) as (owner_url, app_url):
        database = Database(url=owner_url, app_url=app_url)
        try:
            database.migrate()
            assert database.storage_mode == "timescaledb", "the TimescaleDB test server lacks the extension"
            yield database
        finally:
            database.close()


def skip_unless_native(database: Database, what: str) -> None:
    """For a test of the native layout itself (month partitions, stage tables): skipped on TimescaleDB."""
    if database.storage_mode != "native":
        pytest.skip(f"native partitioning only ({what}); TimescaleDB stores chunks instead")


def database_env(database: Database) -> dict[str, str | None]:
    """Environment that points HDI (CLI, API, subprocesses) at `database`; None means unset the variable."""
    from hdi_resources.db.core import url_string

    if database.mode == "embedded":
        return {"HDI_HOME": str(database.home), "HDI_DATABASE_URL": None, "HDI_DATABASE_APP_URL": None}
    return {"HDI_DATABASE_URL": url_string(database.owner_url), "HDI_DATABASE_APP_URL": url_string(database.app_url)}


def reopen(database: Database) -> Database:
    """Another Database object (its own connection pool, as each Dagster step process has) on the same data."""
    from hdi_resources.db import Database
    from hdi_resources.db.core import url_string

    if database.mode == "embedded":
        return Database(url="", home=database.home)
    return Database(url=url_string(database.owner_url), app_url=url_string(database.app_url))


@pytest.fixture(scope="module", params=BACKENDS)
def storage_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """One migrated HDI database per test module and backend: native (embedded PostgreSQL) and TimescaleDB
    (HDI_TEST_TIMESCALE_URL; skipped with the reason when unset). The environment points at it meanwhile."""
    with backend_database(request.param, request.module.__name__.rsplit(".", 1)[-1]) as database:
        with pytest.MonkeyPatch.context() as env:
            for name, value in database_env(database).items():
                if value is None:
                    env.delenv(name, raising=False)
                else:
                    env.setenv(name, value)
            yield database


# ------------------------------------------------------------------------------------------ headless chromium


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's headless chromium over the DevTools protocol (cdp.py), one per test module; closed after it."""
    from cdp import Browser, find_chromium

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (CI installs it: apt-get install -y chromium)")
    instance = Browser(chromium)
    try:
        yield instance
    finally:
        instance.close()


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
