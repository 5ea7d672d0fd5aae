"""Every migration applies from zero in both storage modes (native: embedded PostgreSQL; TimescaleDB: the
HDI_TEST_TIMESCALE_URL server), a migration with nothing for a mode is recorded and skipped, and migrate again
is a no-op."""

from __future__ import annotations

import logging

import pytest

from hdi_resources.db import Database
from hdi_resources.db.core import is_empty_sql, load_migrations, render_migration, url_string

MIGRATIONS = load_migrations()


def _rows(db: Database, sql: str, params: tuple = ()) -> list[tuple]:
    with db.raw() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_comment_only_sql_is_empty() -> None:
    assert is_empty_sql("-- nothing\n/* a\nblock */\n  ;\n")
    assert not is_empty_sql("-- a comment\nSELECT 1; -- trailing")


@pytest.mark.parametrize("mode", ["native", "timescaledb"])
def test_every_migration_renders_to_sql_or_to_nothing(mode: str) -> None:
    """No @if/@native marker survives rendering; a mode gets real SQL or nothing at all."""
    for migration in MIGRATIONS:
        rendered = render_migration(migration.sql, mode)
        assert "@if" not in rendered and "@endif" not in rendered and "@native" not in rendered


def test_fresh_database_migrates_from_zero_then_is_a_noop(storage_db: Database, request: pytest.FixtureRequest,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    mode = request.node.callspec.params["storage_db"]
    assert storage_db.storage_mode == mode
    recorded = _rows(storage_db, "SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    assert recorded == [(m.version, m.name, m.checksum) for m in MIGRATIONS]
    skipped = [m.version for m in MIGRATIONS if is_empty_sql(render_migration(m.sql, mode))]
    if mode == "timescaledb":
        assert {"0005", "0006"} <= set(skipped)  # native-only month staging: recorded, never executed
    with caplog.at_level(logging.WARNING):
        assert storage_db.migrate() == []
        assert storage_db.migrate() == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert _rows(storage_db, "SELECT count(*) FROM schema_migrations") == [(len(MIGRATIONS),)]


def test_a_second_runner_on_the_same_database_applies_nothing(storage_db: Database) -> None:
    """A new process (here: a new Database on the same server) finds every migration recorded, skipped ones too."""
    other = Database(url=url_string(storage_db.owner_url), app_url=url_string(storage_db.app_url))
    try:
        assert other.migrate() == []
        assert other.storage_mode == storage_db.storage_mode
    finally:
        other.close()


def test_the_app_role_may_run_hdi_functions_only(storage_db: Database) -> None:
    """HDI's functions live in schema hdi (migration 0012) and the app role may run those alone: no grant on
    any function elsewhere (TimescaleDB ships thousands in public), none of HDI's left in public."""
    app = storage_db.app_url.username
    if app == storage_db.owner_url.username:
        pytest.skip("this server's app role is the owner: no grants to check")
    granted = _rows(storage_db, """
        SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
             aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
        WHERE r.rolname = %s AND a.privilege_type = 'EXECUTE'""", (app,))
    assert granted and all(schema == "hdi" and name.startswith("hdi_") for schema, name in granted), granted
    left = _rows(storage_db, """SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                WHERE n.nspname = 'public' AND p.proname LIKE %s""", ("hdi\\_%",))
    assert left == []
    assert _rows(storage_db, "SELECT has_schema_privilege(%s, 'hdi', 'USAGE')", (app,)) == [(True,)]
    public_calls = _rows(storage_db, """
        SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'hdi' AND has_function_privilege('public', p.oid, 'EXECUTE')""")
    assert public_calls == [(0,)]


def test_loaded_bars_window_is_compressed_and_reloads(storage_db: Database) -> None:
    """TimescaleDB: a bars window is compressed once its load commits (not by age); a reload of it works on
    the compressed chunks and compresses them again; `db info` reports the sizes."""
    from test_database import PARTITION, make_bars

    if storage_db.storage_mode != "timescaledb":
        pytest.skip("columnstore compression is TimescaleDB's; native partitions are plain tables")
    part = {**PARTITION, "continuous_symbol": "CZ.v.0"}
    assert storage_db.replace_partition("continuous_bars", part, make_bars(20_000, seed=3)).inserted == 20_000
    chunks = "SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks " \
             "WHERE hypertable_name = 'continuous_bars'"
    n_chunks, n_compressed = _rows(storage_db, chunks)[0]
    assert n_chunks >= 1 and n_compressed == n_chunks
    again = storage_db.replace_partition("continuous_bars", part, make_bars(15_000, seed=4))
    assert (again.inserted, again.deleted) == (15_000, 20_000)
    assert _rows(storage_db, "SELECT count(*) FROM continuous_bars WHERE continuous_symbol = 'CZ.v.0'") == [(15_000,)]
    assert _rows(storage_db, chunks)[0][1] == _rows(storage_db, chunks)[0][0]  # recompressed, none partial
    sizes = storage_db.info()["compression"]["continuous_bars"]
    assert sizes["compressed_chunks"] == sizes["chunks"] >= 1
    assert 0 < sizes["after_compression_bytes"] < sizes["before_compression_bytes"]
