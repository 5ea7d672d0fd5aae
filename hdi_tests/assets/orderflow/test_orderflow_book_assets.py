"""Absorption zones and iceberg candidates through Dagster on the synthetic market's book (mbp-10, mbo of the
front contract, fetched session by session through the Databento resource); evidence checks pass, the rows
reference events of the fetched tapes, and the database serves them (both backends)."""

from __future__ import annotations

import numpy as np
import pytest
from dagster import DagsterInstance, materialize

from hdi_assets.continuous.definitions import PIPELINE_ASSETS as CHAIN
from hdi_assets.definitions import build_resources
from hdi_assets.orderflow.definitions import BOOK_ASSETS
from hdi_assets.partitions import partition_key
from hdi_resources import lake
from hdi_resources.db import Database
from hdi_resources.db.orderflow import query_orderflow

WINDOW = "2024-07-01"
CHECKS = {"absorption_evidence_exists", "iceberg_evidence_exists"}
UPSTREAM = [a for a in CHAIN if a.key.to_user_string() in ("raw_ticks", "roll_events", "panama_adjusted_ticks")]


@pytest.fixture(scope="module")
def built(storage_db: Database, synthetic_gateway_env, tmp_path_factory):
    home = tmp_path_factory.mktemp("hdi_home")
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"HDI_HOME": str(home), **synthetic_gateway_env}.items():
            env.setenv(name, value)
        if storage_db.mode == "embedded":
            env.setenv("HDI_HOME", str(storage_db.home))
        result = materialize([*UPSTREAM, *BOOK_ASSETS], partition_key=partition_key("ES", WINDOW),
                             instance=DagsterInstance.ephemeral(), resources=build_resources())
        yield result, storage_db


def test_evidence_checks_pass(built) -> None:
    result, _ = built
    assert result.success
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name in CHECKS]
    assert {e.check_name for e in evaluations} == CHECKS
    assert all(e.passed for e in evaluations), [(e.check_name, e.metadata) for e in evaluations if not e.passed]
    events = {e.check_name: e.metadata["events"].value for e in evaluations}
    assert all(n > 0 for n in events.values()), events


def test_zones_and_candidates_are_stored_with_their_contract(built) -> None:
    _, db = built
    zones = lake.read_table("absorption_zones", symbol="ES", window=WINDOW)
    assert zones.num_rows > 0
    assert set(zones["outcome"].to_pylist()) <= {"held", "broke", "open"}
    assert bool(np.all(zones["volume"].to_numpy() > zones["initial_size"].to_numpy()))
    assert all(s.startswith("ES") for s in set(zones["raw_symbol"].to_pylist()))
    stored = query_orderflow(db, "ES", "absorption", max_rows=None)
    assert stored.num_rows == zones.num_rows
    icebergs = lake.read_table("iceberg_candidates", symbol="ES", window=WINDOW)
    assert set(icebergs["label"].to_pylist()) <= {"inference"}
    if icebergs.num_rows:
        assert query_orderflow(db, "ES", "icebergs", max_rows=None).num_rows == icebergs.num_rows
