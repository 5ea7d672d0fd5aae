"""The UI's way in: a partition backfill of 2 symbols x 2 windows launched through Dagster's GraphQL API
against a running `dagster dev` (the `dagster_ui` fixture), then every run, check and database row verified."""

from __future__ import annotations

import json
import time

import pytest

from hdi_assets.continuous.assets import ADJUSTMENT_CHECKS, CHECKPOINTS
from hdi_assets.definitions import PIPELINE_ASSETS
from hdi_assets.partitions import products

SYMBOLS = ("ES", "NQ")
WINDOWS = ("2024-01-01", "2024-07-01")
PARTITIONS = [f"{s}|{w}" for s in SYMBOLS for w in WINDOWS]
BACKFILL_TIMEOUT_S = 420
CHECKS = {"ohlcv_1s": CHECKPOINTS, "panama_adjusted_ticks": ADJUSTMENT_CHECKS}

LAUNCH = """
mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename
  ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message }
  ... on UnauthorizedError { message }
  ... on PartitionKeysNotFoundError { message }
  ... on InvalidSubsetError { message }
} }
"""
BACKFILL = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename
  ... on PartitionBackfill { id status numPartitions error { message } runs { id status tags { key value } } }
  ... on PythonError { message }
} }
"""
CHECK_EXECUTIONS = """
query($asset: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $asset, checkName: $check, limit: 100) {
    runId status partition evaluation { success }
  }
}
"""
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@pytest.fixture(scope="module")
def backfill(dagster_ui):
    asset_names = [a.key.to_user_string() for a in PIPELINE_ASSETS]
    launched = dagster_ui.graphql(
        LAUNCH, {"p": {"assetSelection": [{"path": [n]} for n in asset_names], "partitionNames": PARTITIONS}}
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    state: dict = {}
    while time.monotonic() < deadline:
        state = dagster_ui.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        assert state["__typename"] == "PartitionBackfill", state
        if state["status"] in FINISHED and not [r for r in state["runs"] if r["status"] not in _DONE_RUN]:
            return state
        time.sleep(5)
    pytest.fail(f"backfill {backfill_id} not finished after {BACKFILL_TIMEOUT_S}s: {state}\n{dagster_ui.log_tail()}")


_DONE_RUN = {"SUCCESS", "FAILURE", "CANCELED"}


def test_backfill_completes_and_every_run_succeeded(backfill, dagster_ui):
    assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, (backfill, dagster_ui.log_tail())
    runs = backfill["runs"]
    assert runs, "the backfill launched no runs"
    tags = [{t["key"]: t["value"] for t in r["tags"]} for r in runs]
    # A run that died for a transient reason is re-launched by the instance's run_retries; its retry must succeed.
    retried = {t.get("dagster/parent_run_id") for r, t in zip(runs, tags, strict=True) if r["status"] == "SUCCESS"}
    for run in runs:
        assert run["status"] == "SUCCESS" or run["id"] in retried, (run, runs)
    covered = {t.get("dagster/partition") for t in tags} | {
        f"{t['dagster/asset_partition_range_start']}..{t['dagster/asset_partition_range_end']}"
        for t in tags
        if "dagster/asset_partition_range_start" in t
    }
    assert set(PARTITIONS) <= covered or any(".." in c for c in covered if c), covered


def test_every_asset_check_has_a_passing_result_per_partition(backfill, dagster_ui):
    for asset, checks in CHECKS.items():
        for check in checks:
            executions = dagster_ui.graphql(CHECK_EXECUTIONS, {"asset": {"path": [asset]}, "check": check})[
                "assetCheckExecutions"
            ]
            by_partition = {e["partition"]: e for e in executions}
            assert set(PARTITIONS) <= set(by_partition), (asset, check, sorted(by_partition))
            for partition in PARTITIONS:
                execution = by_partition[partition]
                assert execution["status"] == "SUCCEEDED", (asset, check, execution)
                assert execution["evaluation"]["success"] is True, (asset, check, execution)


def test_the_database_holds_the_rows_of_every_partition(backfill, dagster_ui):
    from hdi_resources.db import Database

    database = Database(url="", app_url="", home=dagster_ui.hdi_home)
    try:
        with database.raw("owner") as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT continuous_symbol, \"window\"::text, granularity, count(*) FROM continuous_bars "
                "GROUP BY 1, 2, 3"
            )
            bars = {(s, w, g): n for s, w, g, n in cur.fetchall()}
            cur.execute("SELECT continuous_symbol, count(*) FROM roll_events GROUP BY 1")
            rolls = dict(cur.fetchall())
    finally:
        database.close()
    for symbol in SYMBOLS:
        for window in WINDOWS:
            for granularity in ("1s", "1m", "5m", "15m", "1h", "1d"):
                key = (products()[symbol].continuous_symbol, window, granularity)
                assert bars.get(key, 0) > 0, (key, bars)
        # Quarterly contracts: a year of windows holds rolls of every product.
        assert rolls.get(products()[symbol].continuous_symbol, 0) >= 2, rolls


def test_run_logs_are_json_lines_with_run_asset_and_partition(backfill, dagster_ui):
    lines = (dagster_ui.hdi_home / "logs" / "hdi.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records
    assert all({"run_id", "asset", "partition", "event", "timestamp", "level"} <= r.keys() for r in records)
    run_ids = {r["id"] for r in backfill["runs"]}
    in_steps = [r for r in records if r["run_id"] in run_ids and r["step"]]
    assert in_steps and {r["partition"] for r in in_steps} >= set(PARTITIONS)
    assert {"raw_ticks", "continuous_bars_table"} <= {r["asset"] for r in in_steps}
    assert "db-hdi-test-key" not in "\n".join(lines)
