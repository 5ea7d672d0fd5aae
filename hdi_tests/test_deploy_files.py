"""Deployment files, tested statically (no Docker engine or cluster here) and against real Dagster/PostgreSQL:
docker-compose and the Dockerfile wire every setting the code reads; the instance files load in a real
DagsterInstance (SQLite and dagster-postgres on the embedded server); the k8s instance passes dagster-k8s's
own config schema; run logs come out as redacted JSON with run, asset and partition."""

from __future__ import annotations

import json
import os
import re
import shlex

import pytest
import yaml
from dagster import (
    DagsterInstance,
    StaticPartitionsDefinition,
    asset,
    materialize,
)
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from repo_paths import REPO_ROOT

from hdi_resources.db.core import _psycopg2_url
from hdi_resources.instance import ENV_DAGSTER_PG_URL, check_dagster_pg_url, instance_config, write_dagster_yaml

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
HDI_SERVICES = ("hdi_code", "dagster_webserver", "dagster_daemon", "capture")
# Read only by the replay gateway server (`hdi replay serve`), which is not part of a deployment.
NOT_DEPLOYED_PREFIXES = ("HDI_GATEWAY_KEYS", "HDI_REPLAY_")
_ENV_CONSTANT = re.compile(r'^\s*ENV_[A-Z_]+\s*=\s*"([A-Z][A-Z0-9_]+)"', re.MULTILINE)
_ENV_LITERAL = re.compile(r'environ(?:\.get)?[(\[]\s*"([A-Z][A-Z0-9_]+)"')


def env_vars_the_code_reads() -> set[str]:
    """Every environment variable named in HDI's code (ENV_* constants and literal os.environ reads)."""
    names: set[str] = set()
    for package in ("hdi_core", "hdi_resources", "hdi_assets", "hdi_app"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            text = path.read_text()
            names |= set(_ENV_CONSTANT.findall(text)) | set(_ENV_LITERAL.findall(text))
    # Variables of other tools (TLS bundles) are set by the code, not configured by the operator.
    return {n for n in names if n.startswith(("HDI_", "DATABENTO_", "DAGSTER_"))}


def interpolate(value: str, env: dict[str, str]) -> str:
    """docker compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose requires {name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, value)


def service_env(service: str, env: dict[str, str]) -> dict[str, str]:
    return {k: interpolate(str(v), env) for k, v in COMPOSE["services"][service]["environment"].items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


# ------------------------------------------------------------------------------------------ docker-compose


def test_compose_has_the_database_the_code_location_the_webserver_and_the_daemon():
    assert {"timescaledb", *HDI_SERVICES} <= set(COMPOSE["services"])
    assert COMPOSE["services"]["timescaledb"]["image"].startswith("timescale/timescaledb")
    for name in HDI_SERVICES:
        assert COMPOSE["services"][name]["build"] == "."
        assert "timescaledb" in COMPOSE["services"][name]["depends_on"]


def test_every_setting_the_code_reads_is_passed_to_every_hdi_service():
    wanted = {n for n in env_vars_the_code_reads() if not n.startswith(NOT_DEPLOYED_PREFIXES)}
    assert {"DATABENTO_API_KEY", "HDI_DATABASE_URL", "HDI_DAGSTER_PG_URL", "HDI_HOME"} <= wanted
    for name in HDI_SERVICES:
        passed = set(COMPOSE["services"][name]["environment"])
        assert wanted <= passed, (name, sorted(wanted - passed))


def test_compose_urls_point_at_the_timescaledb_service_and_its_databases():
    env = {"POSTGRES_PASSWORD": "pw-from-env", "DATABENTO_API_KEY": "db-key-from-env"}
    db_env = COMPOSE["services"]["timescaledb"]["environment"]
    init_sql = (REPO_ROOT / "deploy" / "init-dagster-db.sql").read_text()
    for name in HDI_SERVICES:
        values = service_env(name, env)
        check_dagster_pg_url(values[ENV_DAGSTER_PG_URL])
        dagster_url = _psycopg2_url(values[ENV_DAGSTER_PG_URL])
        data_url = _psycopg2_url(values["HDI_DATABASE_URL"])
        assert dagster_url.host == data_url.host == "timescaledb" and dagster_url.port == data_url.port == 5432
        assert data_url.database == interpolate(db_env["POSTGRES_DB"], env)
        assert f"CREATE DATABASE {dagster_url.database};" in init_sql
        assert data_url.username == interpolate(db_env["POSTGRES_USER"], env)
        # Secrets only ever come from the environment.
        assert data_url.password == "pw-from-env" and values["DATABENTO_API_KEY"] == "db-key-from-env"
        assert values["HDI_LOG_FILE"] == "-"
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        service_env("hdi_code", {})


def test_compose_workspace_reaches_the_code_server_by_grpc():
    workspace = yaml.safe_load((REPO_ROOT / "deploy" / "workspace.docker.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    code_command = COMPOSE["services"]["hdi_code"]["command"]
    assert grpc["host"] == "hdi_code"
    assert str(grpc["port"]) == code_command[code_command.index("-p") + 1]
    assert grpc["location_name"] == code_command[code_command.index("--location-name") + 1]
    assert code_command[code_command.index("-m") + 1] == "hdi_assets.definitions"
    for name in ("dagster_webserver", "dagster_daemon"):
        command = COMPOSE["services"][name]["command"]
        assert command[command.index("-w") + 1] == "/opt/dagster/home/workspace.yaml"
    # The lake is shared by the code server (which runs the runs) and the daemon.
    for name in ("hdi_code", "dagster_daemon"):
        home = COMPOSE["services"][name]["environment"]["HDI_HOME"]
        assert f"hdi-data:{home}" in COMPOSE["services"][name]["volumes"]


def test_compose_runs_the_live_capture_as_its_own_service():
    capture = COMPOSE["services"]["capture"]
    command = capture["command"]
    assert command[:3] == ["hdi", "live", "capture"]
    env = {"POSTGRES_PASSWORD": "pw", "DATABENTO_API_KEY": "db-live-key"}
    products = interpolate(command[command.index("--products") + 1], env)
    schemas = interpolate(command[command.index("--schemas") + 1], env)
    assert products == "ES,GC" and schemas == "trades,tbbo,mbp-10,mbo"
    assert interpolate(command[command.index("--products") + 1], {"HDI_LIVE_PRODUCTS": "NQ"}) == "NQ"
    values = service_env("capture", env)
    assert values["DATABENTO_API_KEY"] == "db-live-key" and values["HDI_DATABENTO_LIVE"] == ""  # Databento's own
    assert capture["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert capture["healthcheck"]["test"][1:] == ["hdi", "live", "status"]  # non-zero when stalled or down
    assert capture["stop_signal"] == "SIGTERM" and f"hdi-data:{values['HDI_HOME']}" in capture["volumes"]
    from hdi_app.cli import app

    names = {c.name for g in app.registered_groups if g.name == "live" for c in g.typer_instance.registered_commands}
    assert names == {"capture", "status"}


# ------------------------------------------------------------------------------------------ Dockerfile


def test_dockerfile_installs_the_project_and_the_postgres_instance():
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM" and re.match(r"python:3\.(1[1-9])", instructions[0][1])
    env = dict(
        pair.split("=", 1) for kind, args in instructions if kind == "ENV" for pair in shlex.split(args)
    )
    compose_env = COMPOSE["x-hdi-env"]
    assert env["DAGSTER_HOME"] == compose_env["DAGSTER_HOME"] and env["HDI_HOME"] == compose_env["HDI_HOME"]
    copies = [shlex.split(args) for kind, args in instructions if kind == "COPY"]
    for *sources, _target in copies:
        for source in sources:
            assert (REPO_ROOT / source).exists(), source
    assert ["deploy/dagster.postgres.yaml", "/opt/dagster/home/dagster.yaml"] in copies
    assert ["deploy/workspace.docker.yaml", "/opt/dagster/home/workspace.yaml"] in copies
    assert any(kind == "RUN" and "pip install" in args and "-e ." in args for kind, args in instructions)
    cmd = json.loads(next(args for kind, args in instructions if kind == "CMD"))
    assert cmd[:3] == ["dagster", "code-server", "start"] and "hdi_assets.definitions" in cmd


# ------------------------------------------------------------------------------------------ instance files


def test_postgres_instance_file_is_the_rendered_template():
    on_disk = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.postgres.yaml").read_text())
    assert on_disk == instance_config(use_postgres=True)
    assert on_disk["storage"] == {"postgres": {"postgres_url": {"env": ENV_DAGSTER_PG_URL}}}


def test_default_instance_is_sqlite_with_queued_runs_limits_and_retries(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_DAGSTER_PG_URL, raising=False)
    write_dagster_yaml(tmp_path)
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert "Sqlite" in type(instance.run_storage).__name__
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "hdi/databento", "limit": 2} in limits
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 2
    finally:
        instance.dispose()


def test_a_bad_dagster_pg_url_is_one_clear_error(monkeypatch):
    from hdi_core.errors import ConfigError

    monkeypatch.setenv(ENV_DAGSTER_PG_URL, "postgresql://hdi:s3cret@db:5432/dagster")
    with pytest.raises(ConfigError, match="postgresql\\+psycopg2") as excinfo:
        instance_config()
    assert "s3cret" not in str(excinfo.value)


def test_postgres_instance_loads_on_real_postgresql(tmp_path, monkeypatch):
    """dagster-postgres on the embedded server, through the URL variable the rendered file names."""
    from hdi_resources.db import Database, stop_embedded_server

    hdi_home = tmp_path / "hdi"
    database = Database(url="", app_url="", home=hdi_home)
    try:
        monkeypatch.setenv(ENV_DAGSTER_PG_URL, database.dagster_url())
        write_dagster_yaml(tmp_path / "dagster")
        rendered = (tmp_path / "dagster" / "dagster.yaml").read_text()
        assert database.dagster_url() not in rendered  # the file names the variable, never the password
        instance = DagsterInstance.from_config(str(tmp_path / "dagster"))
        try:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert instance.get_runs() == []
        finally:
            instance.dispose()
    finally:
        database.close()
        stop_embedded_server(hdi_home)


def test_k8s_instance_passes_dagster_and_dagster_k8s_config_schemas(monkeypatch):
    monkeypatch.setenv(ENV_DAGSTER_PG_URL, "postgresql+psycopg2://hdi:pw@db:5432/dagster")
    dagster_k8s = pytest.importorskip("dagster_k8s")
    folder = REPO_ROOT / "deploy" / "k8s"
    config, _ = dagster_instance_config(str(folder), "dagster-instance.yaml")  # validates the whole file
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = process_config(dagster_k8s.K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, [e.message for e in result.errors]
    from dagster_postgres import DagsterPostgresStorage

    assert process_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"]).success
    # The same instance behaviour as on one machine: logging, retries, Databento limits.
    template = instance_config(use_postgres=True)
    for key in ("python_logs", "run_retries", "run_coordinator"):
        assert config[key] == template[key], key
    assert config["concurrency"]["runs"]["tag_concurrency_limits"][0]["key"] == "hdi/databento"
    # The lake volume is mounted where the code writes it: $HDI_HOME/lake of the image.
    mounts = {m["name"]: m["mountPath"] for m in launcher["config"]["volume_mounts"]}
    assert mounts["hdi-lake"] == f"{COMPOSE['x-hdi-env']['HDI_HOME']}/lake"


def test_deploy_doc_names_the_files_that_exist():
    doc = (REPO_ROOT / "docs" / "deploy.md").read_text()
    for name in re.findall(r"`((?:deploy/|docker-compose|Dockerfile|dagster\.yaml)[^`\s]*)`", doc):
        assert (REPO_ROOT / name).exists(), name
    assert "deploy/k8s/dagster-instance.yaml" in doc


# ------------------------------------------------------------------------------------------ JSON logs


def test_run_logs_are_redacted_json_with_run_asset_and_partition(tmp_path, monkeypatch):
    log_file = tmp_path / "hdi.jsonl"
    monkeypatch.setenv("HDI_LOG_FILE", str(log_file))
    monkeypatch.setenv("DATABENTO_API_KEY", "db-super-secret-key")
    monkeypatch.delenv(ENV_DAGSTER_PG_URL, raising=False)
    write_dagster_yaml(tmp_path / "dagster")
    parts = StaticPartitionsDefinition(["ES|2024-01-01", "NQ|2024-01-01"])

    @asset(partitions_def=parts)
    def some_bars(context):
        context.log.info("loading into postgresql+psycopg2://hdi:hunter2@db:5432/hdi with db-super-secret-key")
        import logging

        logging.getLogger("hdi.databento").warning("fetched 3 chunks")

    instance = DagsterInstance.from_config(str(tmp_path / "dagster"))
    try:
        result = materialize([some_bars], partition_key="NQ|2024-01-01", instance=instance)
    finally:
        instance.dispose()
    text = log_file.read_text()
    assert "hunter2" not in text and "db-super-secret-key" not in text
    records = [json.loads(line) for line in text.splitlines()]
    mine = [r for r in records if r["step"] == "some_bars"]
    redacted = "loading into postgresql+psycopg2://hdi:***@db:5432/hdi with ***"
    assert {r["event"] for r in mine} >= {"fetched 3 chunks", redacted}
    for record in mine:
        assert record["run_id"] == result.run_id
        assert record["asset"] == "some_bars" and record["partition"] == "NQ|2024-01-01"
    assert all({"run_id", "asset", "partition", "timestamp", "level", "event"} <= r.keys() for r in records)
    assert os.environ.get("HDI_LOG_FILE") == str(log_file)
