"""YAML jobs as Dagster assets, materialized against the local gateway (real databento client) into the embedded
PostgreSQL: every schema, stored values equal to what the gateway sent, re-materialization changes nothing."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, materialize
from repo_paths import REPO_ROOT

from hdi_assets.vendor_schema_jobs.assets import build_job_assets, job_partitions
from hdi_core.errors import ConfigError
from hdi_core.vendor_schemas.config import load_config, parse_config
from hdi_resources.databento import DatabentoResource
from hdi_resources.db import Database
from hdi_resources.db.resource import DatabaseResource
from hdi_resources.db.server import stop_embedded_server

DAY = "2024-03-05"
NEXT = "2024-03-06"
JOBS = [
    {"name": "t_trades", "schema": "trades", "symbols": ["ESH4", "NQH4"], "stype_in": "raw_symbol"},
    {"name": "t_tbbo", "schema": "tbbo", "symbols": ["ESH4"], "stype_in": "raw_symbol"},
    {"name": "t_1s", "schema": "ohlcv-1s", "symbols": ["ESH4"], "stype_in": "raw_symbol"},
    {"name": "t_1m", "schema": "ohlcv-1m", "symbols": ["ESH4"], "stype_in": "raw_symbol"},
    {"name": "t_5m", "schema": "ohlcv-5m", "symbols": ["ESH4"], "stype_in": "raw_symbol"},
    {"name": "t_15m", "schema": "ohlcv-15m", "symbols": ["ES.c.0"], "stype_in": "continuous"},
    {"name": "t_1h", "schema": "ohlcv-1h", "symbols": ["ESH4"], "stype_in": "raw_symbol"},
    {"name": "t_1d", "schema": "ohlcv-1d", "symbols": ["ESH4"], "stype_in": "raw_symbol"},
    {"name": "t_stats", "schema": "statistics", "symbols": ["ES.FUT"], "stype_in": "parent",
     "stat_types": ["settlement_price", "open_interest"]},
    {"name": "t_defs", "schema": "definition", "symbols": ["ES.FUT"], "stype_in": "parent"},
]
READ_SCHEMA = {"definition": "definitions"}


@pytest.fixture(scope="module")
def env(synthetic_gateway_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("hdi_home")
    wanted = {"HDI_HOME": str(home), **synthetic_gateway_env}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield home
    finally:
        stop_embedded_server(home)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def config_and_assets(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("config")
    raw = yaml.safe_load(
        (REPO_ROOT / "configs" / "api_specific" / "databento_config.yaml").read_text())
    raw["mapping_config_path"] = str(
        REPO_ROOT / "configs" / "api_specific" / "databento_mappings.yaml")
    raw["jobs"] = [{"dataset": "GLBX.MDP3", "start_date": DAY, "end_date": NEXT, **job} for job in JOBS]
    path = folder / "databento_config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    return config, {a.key.path[-1]: a for a in build_job_assets(config)}


@pytest.fixture(scope="module")
def materialized(env, config_and_assets):
    """Every job's one partition materialized twice in one Dagster instance."""
    _, assets = config_and_assets
    instance = DagsterInstance.ephemeral()
    resources = {"databento": DatabentoResource.from_config(), "database": DatabaseResource()}
    runs: dict[str, list] = {}
    for name, asset_def in assets.items():
        for _ in range(2):
            result = materialize([asset_def], partition_key=DAY, instance=instance, resources=resources)
            assert result.success, name
            runs.setdefault(name, []).append(result.asset_materializations_for_node(asset_def.node_def.name)[0])
    return instance, runs


def _meta(materialization, key: str):
    return materialization.metadata[key].value


def test_jobs_become_assets_with_date_chunk_partitions(config_and_assets) -> None:
    config, assets = config_and_assets
    assert set(assets) == {job["name"] for job in JOBS}
    assert assets["t_trades"].key == AssetKey(["vendor", "t_trades"])
    assert assets["t_trades"].partitions_def.get_partition_keys() == [DAY]
    long = parse_config({"jobs": [{"name": "long", "dataset": "GLBX.MDP3", "schema": "trades", "symbols": "ESH4",
                                   "start_date": "2024-01-01", "end_date": "2024-03-01",
                                   "date_chunk_interval_days": 31}]})
    assert job_partitions(long, long.jobs[0]).get_partition_keys() == ["2024-01-01", "2024-02-01"]


def test_every_schema_is_fetched_validated_and_stored(materialized) -> None:
    _, runs = materialized
    for name, (first, _second) in runs.items():
        fetched, stored, quarantined = (_meta(first, k) for k in ("fetched", "stored", "quarantined"))
        assert fetched > 0 and stored > 0, name
        assert quarantined == 0, (name, _meta(first, "rules_broken"))
        assert _meta(first, "inserted") == stored, name
        assert "fetched" in _meta(first, "summary")
    assert _meta(runs["t_trades"][0], "fetched") > 2_000  # two products' session at test volume
    # 5m / 15m bars are aggregated from 1m: fewer bars than 1m records fetched
    assert _meta(runs["t_5m"][0], "stored") < _meta(runs["t_5m"][0], "fetched")


def test_rematerializing_changes_nothing(materialized) -> None:
    _, runs = materialized
    for name, (first, second) in runs.items():
        assert (_meta(second, "inserted"), _meta(second, "updated")) == (0, 0), name
        assert _meta(second, "unchanged") == _meta(first, "stored"), name


def test_stored_values_equal_what_the_gateway_sent(materialized, synthetic_client) -> None:
    database = Database()
    for job in JOBS:
        if job["schema"] in ("ohlcv-5m", "ohlcv-15m"):
            continue
        store = synthetic_client.timeseries.get_range(
            dataset="GLBX.MDP3", schema=job["schema"], symbols=job["symbols"], stype_in=job["stype_in"],
            start=DAY, end=NEXT)
        records = np.asarray(store.to_ndarray()).reshape(-1)
        if job["schema"] == "statistics":
            records = records[np.isin(records["stat_type"], [3, 9])]
        iid = int(records["instrument_id"][0])
        mine = records[records["instrument_id"] == iid]
        rows = database.query(str(iid), READ_SCHEMA.get(job["schema"], job["schema"]),
                              dt.datetime.fromisoformat(DAY), dt.datetime.fromisoformat(NEXT) + dt.timedelta(days=1),
                              raw=True)
        assert rows.num_rows == len(mine), job["name"]
        stored_ts = rows.column("ts_event").cast("int64").to_numpy()
        assert np.array_equal(np.sort(stored_ts), np.sort(mine["ts_event"].astype(np.int64) // 1000)), job["name"]
        price_col = {"trades": "price", "tbbo": "price", "statistics": "price", "definition": "min_price_increment"}
        field = {"definition": "min_price_increment"}.get(job["schema"], "price")
        column = price_col.get(job["schema"], "close_price")
        field = "close" if column == "close_price" else field
        stored = sorted(int(v * 10**9) for v in rows.column(column).to_pylist() if v is not None)
        sent = sorted(int(v) for v in mine[field] if int(v) != np.iinfo(np.int64).max)
        assert stored == sent, job["name"]
    esh4 = database.stats("ESH4", "ohlcv-1m", raw=True)
    assert esh4["row_count"] > 0 and esh4["symbol"] == "ESH4"


def test_broken_configs_are_refused_with_the_field_named(tmp_path: Path) -> None:
    good = {"dataset": "GLBX.MDP3", "schema": "trades", "symbols": ["ESH4"], "start_date": DAY, "end_date": NEXT}
    cases = [
        ({**good, "name": "bad_schema", "schema": "ohlcv-3m"}, "job 'bad_schema': schema: unknown schema"),
        ({**good, "name": "bad_range", "end_date": "2024-03-01"}, "job 'bad_range': end_date: must be after"),
        ({**good, "name": "bad_stype", "stype_in": "continuous"}, "job 'bad_stype': symbols:"),
        ({**good, "name": "typo", "symbol": "ESH4"}, "job 'typo': symbol: unknown field"),
    ]
    for job, message in cases:
        path = tmp_path / "databento_config.yaml"
        path.write_text(yaml.safe_dump({"jobs": [job]}))
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            build_job_assets(load_config(path, check_references=False))
