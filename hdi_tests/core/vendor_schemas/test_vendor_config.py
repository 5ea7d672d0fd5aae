"""The Databento job file: the repository's file loads, seed spellings normalise, and broken files are
refused before any run with one line naming the file, the job and the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from repo_paths import REPO_ROOT

from hdi_core.errors import ConfigError, HdiError
from hdi_core.vendor_schemas.config import (
    DEFAULT_CONFIG_PATH,
    SCHEMAS,
    load_config,
    normalize_schema,
    schema_spec,
    shown_path,
)

GOOD_JOB = {
    "name": "es_trades",
    "dataset": "GLBX.MDP3",
    "schema": "trades",
    "symbols": ["ESH4"],
    "stype_in": "raw_symbol",
    "start_date": "2024-03-04",
    "end_date": "2024-03-06",
}


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "databento_config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _base() -> dict[str, Any]:
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["mapping_config_path"] = str(REPO_ROOT / "configs" / "api_specific" / "databento_mappings.yaml")
    raw["jobs"] = [copy.deepcopy(GOOD_JOB)]
    return raw


def test_repository_config_loads_with_every_kind_of_job():
    config = load_config()
    assert config.api.key_env_var == "DATABENTO_API_KEY"
    assert config.retry_policy.max_attempts >= 1
    schemas = {job.schema_name for job in config.jobs}
    assert {"trades", "ohlcv-1m", "ohlcv-5m", "statistics", "definition", "tbbo"} <= schemas
    assert all(job.dataset == "GLBX.MDP3" for job in config.jobs)
    five = next(job for job in config.jobs if job.schema_name == "ohlcv-5m")
    assert five.source_schema == "ohlcv-1m" and five.spec.derived and five.spec.bar_minutes == 5
    assert five.target_table == "ohlcv_data" and five.spec.granularity == "5m"
    assert config.mapping_path.exists()
    for job in config.jobs:
        assert (job.end_date - job.start_date).days <= 7  # small ranges: these are examples, not backfills
        assert config.chunk_days(job) >= 1


def test_databento_resource_reads_the_same_model():
    from hdi_resources.databento import DatabentoResource
    from hdi_resources.retry import RetryPolicy

    resource = DatabentoResource.from_config()
    config = load_config()
    assert resource.budget_usd == config.api.budget_usd
    assert resource.max_attempts == config.retry_policy.max_attempts
    assert resource.retry_policy == RetryPolicy()  # the file sets no retry key: the model's defaults
    assert resource.date_chunk_interval_days == config.date_chunk_interval_days
    assert resource.parallel_fetches == config.parallel_fetches


def test_config_dir_is_followed_and_unknown_keys_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from hdi_core.vendor_schemas import config as config_module
    from hdi_resources.databento import DatabentoResource

    folder = tmp_path / "api_specific"
    folder.mkdir()
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["api"]["budget_usd"] = 7.5
    raw["retry_policy"] = {"max_attempts": 3}
    (folder / "databento_config.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("HDI_CONFIG_DIR", str(tmp_path))
    assert config_module.DEFAULT_CONFIG_PATH == folder / "databento_config.yaml"
    resource = DatabentoResource.from_config()
    assert (resource.budget_usd, resource.max_attempts) == (7.5, 3)
    assert DatabentoResource.from_config(budget_usd=1.0).budget_usd == 1.0  # keyword arguments win

    raw["retry_policy"] = {"max_attempt": 3}
    (folder / "databento_config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"databento_config\.yaml: retry_policy\.max_attempt: unknown field"):
        DatabentoResource.from_config()


@pytest.mark.parametrize(
    ("spelling", "schema"),
    [
        ("ohlcv.1m", "ohlcv-1m"),
        ("OHLCV_1H", "ohlcv-1h"),
        ("ohlcv-15m", "ohlcv-15m"),
        ("ohlcv.5m", "ohlcv-5m"),
        ("statistics.market_summary", "statistics"),
        ("statistics.daily_summary", "statistics"),
        ("definitions", "definition"),
        ("trades", "trades"),
        ("TBBO", "tbbo"),
    ],
)
def test_seed_schema_spellings_are_normalised(spelling: str, schema: str):
    assert normalize_schema(spelling) == schema
    assert schema_spec(spelling) is SCHEMAS[schema]


def test_derived_schemas_record_their_source():
    assert {name for name, spec in SCHEMAS.items() if spec.derived} == {"ohlcv-5m", "ohlcv-15m"}
    assert SCHEMAS["ohlcv-15m"].source_schema == "ohlcv-1m" and SCHEMAS["ohlcv-15m"].bar_minutes == 15


BROKEN_JOBS = [
    ({"schema": "ohlcv-7m"}, "job 'es_trades': schema: unknown schema 'ohlcv-7m'"),
    ({"schema": "mbo"}, "job 'es_trades': schema: schema 'mbo' is not stored by HDI"),
    ({"end_date": "2024-03-01"}, "job 'es_trades': end_date: must be after start_date (2024-03-04)"),
    ({"end_date": "2024-03-04"}, "job 'es_trades': end_date: must be after start_date"),
    ({"symbols": None}, "job 'es_trades': symbols: field required"),
    ({"symbols": []}, "job 'es_trades': symbols: must name at least one symbol"),
    (
        {"stype_in": "ticker"},
        "job 'es_trades': stype_in: must be one of continuous, instrument_id, parent, "
        "raw_symbol (got 'ticker')",
    ),
    ({"stype_in": "continuous"}, "job 'es_trades': symbols: 'ESH4' is not a continuous symbol"),
    ({"stype_in": "parent", "symbols": ["ES"]}, "job 'es_trades': symbols: 'ES' is not a parent symbol"),
    ({"dataset": "glbx"}, "job 'es_trades': dataset: 'glbx' is not a Databento dataset id"),
    ({"start_date": "yesterday"}, "job 'es_trades': start_date: Input should be a valid date"),
    ({"simbols": ["ESH4"]}, "job 'es_trades': simbols: unknown field"),
    ({"date_chunk_interval_days": 0}, "job 'es_trades': date_chunk_interval_days: Input should be greater"),
    (
        {"stat_types": ["settlement_price"]},
        "job 'es_trades': stat_types: only allowed with schema statistics",
    ),
    (
        {"schema": "statistics", "stat_types": ["settlement_prize"]},
        "job 'es_trades': stat_types: unknown stat type 'settlement_prize'",
    ),
]


@pytest.mark.parametrize(("change", "expected"), BROKEN_JOBS, ids=[e for _, e in BROKEN_JOBS])
def test_broken_jobs_are_refused_naming_job_and_field(tmp_path: Path, change: dict[str, Any], expected: str):
    document = _base()
    job = document["jobs"][0]
    for key, value in change.items():
        if value is None:
            job.pop(key)
        else:
            job[key] = value
    path = _write(tmp_path, document)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert isinstance(err.value, HdiError)
    assert "\n" not in message
    assert message.startswith(f"{shown_path(path)}: {expected}"), message


def test_unnamed_job_is_named_by_position(tmp_path: Path):
    document = _base()
    document["jobs"].append({k: v for k, v in GOOD_JOB.items() if k != "name"})
    with pytest.raises(ConfigError, match=r": job #2: name: field required$"):
        load_config(_write(tmp_path, document))


def test_duplicate_job_names_and_top_level_settings_are_refused(tmp_path: Path):
    document = _base()
    document["jobs"].append(copy.deepcopy(GOOD_JOB))
    with pytest.raises(ConfigError, match=r"jobs: two jobs are named 'es_trades'"):
        load_config(_write(tmp_path, document))
    document = _base()
    document["retry_policy"]["max_attempts"] = 0
    with pytest.raises(ConfigError, match=r": retry_policy.max_attempts: Input should be greater"):
        load_config(_write(tmp_path, document))
    document = _base()
    document["validation_schema_paths"]["candles"] = "hdi_core.vendor_schemas.rules:ohlcv"
    with pytest.raises(ConfigError, match=r"validation_schema_paths: unknown schema family 'candles'"):
        load_config(_write(tmp_path, document))


def test_missing_references_and_bad_yaml_are_refused(tmp_path: Path):
    document = _base()
    document["mapping_config_path"] = "nowhere/databento_mappings.yaml"
    with pytest.raises(ConfigError, match=r"mapping_config_path: file not found: nowhere/databento_mappings"):
        load_config(_write(tmp_path, document))
    document = _base()
    document["validation_schema_paths"]["ohlcv"] = "hdi_core.vendor_schemas.rules:candles"
    with pytest.raises(ConfigError, match=r"validation_schema_paths.ohlcv: .* has no rule set 'candles'"):
        load_config(_write(tmp_path, document))
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobs:\n  - name: x\n   dataset: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing.yaml: file not found"):
        load_config(tmp_path / "missing.yaml")


def test_job_expectation_and_lookup():
    from hdi_core.vendor_schemas.records import Expectation

    config = load_config()
    job = config.job("es_ohlcv_1m")
    expect = Expectation.for_job(job)
    assert expect.symbols == frozenset(job.symbols)
    assert (
        expect.start is not None
        and expect.start.isoformat() == f"{job.start_date.isoformat()}T00:00:00+00:00"
    )
    with pytest.raises(ConfigError, match="no job named 'nope'"):
        config.job("nope")
