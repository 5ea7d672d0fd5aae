"""The local gateway against the unmodified databento client over TLS loopback: every endpoint, the synthetic
market's schemas, symbology in responses, auth and parameter errors, the CLI process."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
import subprocess
import sys
from pathlib import Path

import databento as db
import numpy as np
import pytest
import requests
from repo_paths import DBN_SAMPLES

from hdi_core.dbn import decode_response, schema_dtype, time_field
from hdi_gateway.server import COST_PER_GB, parse_time, start_gateway_process
from hdi_gateway.synthetic import SCHEMAS_SERVED

DBN_SAMPLES = DBN_SAMPLES
DATASET = "GLBX.MDP3"
DAY = "2024-03-12"  # a Tuesday inside the ES March 2024 roll window
NEXT_DAY = "2024-03-13"


def _front_raw_symbol(client: db.Historical) -> str:
    res = client.symbology.resolve(DATASET, ["ES.c.0"], "continuous", "raw_symbol", DAY, NEXT_DAY)
    return res["result"]["ES.c.0"][0]["s"]


def test_list_datasets_schemas_and_range(synthetic_client: db.Historical) -> None:
    assert synthetic_client.metadata.list_datasets() == [DATASET]
    assert set(synthetic_client.metadata.list_schemas(DATASET)) == set(SCHEMAS_SERVED)
    rng = synthetic_client.metadata.get_dataset_range(DATASET)
    assert rng["start"].endswith("Z") and rng["start"] < rng["end"]
    assert set(rng["schema"]) == set(SCHEMAS_SERVED)


@pytest.mark.parametrize("schema", SCHEMAS_SERVED)
def test_every_synthetic_schema_equals_source(
    synthetic_client: db.Historical, synthetic_market, schema: str
) -> None:
    symbol = _front_raw_symbol(synthetic_client)
    store = synthetic_client.timeseries.get_range(DATASET, DAY, NEXT_DAY, symbols=[symbol], schema=schema)
    got = store.to_ndarray()
    iid = int(store.metadata.mappings[symbol][0]["symbol"])
    start, end = parse_time("start", DAY)[0], parse_time("end", NEXT_DAY)[0]
    expected = synthetic_market.records(DATASET, schema, np.array([iid]), start, end)
    assert len(got) > 0
    assert got.dtype.itemsize == schema_dtype(schema).itemsize
    assert np.asarray(got).tobytes() == expected.tobytes()
    assert store.metadata.schema == schema and store.metadata.dataset == DATASET


def test_metadata_counts_size_cost(synthetic_client: db.Historical) -> None:
    args = {"dataset": DATASET, "start": DAY, "end": NEXT_DAY, "symbols": ["ES.FUT"], "stype_in": "parent"}
    records = synthetic_client.timeseries.get_range(schema="trades", **args).to_ndarray()
    count = synthetic_client.metadata.get_record_count(schema="trades", **args)
    size = synthetic_client.metadata.get_billable_size(schema="trades", **args)
    cost = synthetic_client.metadata.get_cost(schema="trades", **args)
    assert count == len(records) > 0
    assert size == count * 48
    assert cost == pytest.approx(size / 1e9 * COST_PER_GB["trades"])
    assert synthetic_client.metadata.get_record_count(schema="trades", limit=10, **args) == 10


def test_continuous_roll_changes_instrument_in_mappings(synthetic_client: db.Historical) -> None:
    store = synthetic_client.timeseries.get_range(
        DATASET, "2024-03-05", "2024-03-20", symbols=["ES.v.0"], stype_in="continuous", schema="ohlcv-1h"
    )
    intervals = store.metadata.mappings["ES.v.0"]
    assert len(intervals) >= 2
    assert len({iv["symbol"] for iv in intervals}) >= 2  # the roll: a new interval with a new instrument
    records = store.to_ndarray()
    days = (records["ts_event"] // np.uint64(86_400 * 10**9)).astype("datetime64[D]").astype(object)
    for iv in intervals:
        inside = (days >= iv["start_date"]) & (days < iv["end_date"])
        assert set(records["instrument_id"][inside].tolist()) <= {int(iv["symbol"])}
    df = store.to_df(map_symbols=True)
    assert set(df["symbol"]) == {"ES.v.0"}
    resolved = synthetic_client.symbology.resolve(
        DATASET, ["ES.v.0"], "continuous", "instrument_id", "2024-03-05", "2024-03-20"
    )
    assert [(r["d0"], r["s"]) for r in resolved["result"]["ES.v.0"]] == [
        (iv["start_date"].isoformat(), iv["symbol"]) for iv in intervals
    ]
    assert resolved["status"] == 0 and resolved["not_found"] == []


def test_all_symbols_and_raw_symbol_mappings(synthetic_client: db.Historical) -> None:
    store = synthetic_client.timeseries.get_range(DATASET, DAY, NEXT_DAY, schema="ohlcv-1d")
    ids = set(store.to_ndarray()["instrument_id"].tolist())
    mapped = {int(iv["symbol"]) for ivs in store.metadata.mappings.values() for iv in ivs}
    assert store.metadata.symbols == ["ALL_SYMBOLS"]
    assert ids and ids <= mapped


def test_time_forms_and_limit(synthetic_client: db.Historical) -> None:
    symbol = _front_raw_symbol(synthetic_client)
    by_date = synthetic_client.timeseries.get_range(
        DATASET, DAY, symbols=[symbol]
    ).to_ndarray()  # end = +1 day
    start_ns = parse_time("start", DAY)[0]
    by_int = synthetic_client.timeseries.get_range(
        DATASET, start_ns, start_ns + 86_400 * 10**9, symbols=[symbol]
    ).to_ndarray()
    by_dt = synthetic_client.timeseries.get_range(
        DATASET, dt.datetime(2024, 3, 12, tzinfo=dt.UTC), "2024-03-13T00:00:00Z", symbols=[symbol]
    ).to_ndarray()
    assert len(by_date) > 0 and by_date.tobytes() == by_int.tobytes() == by_dt.tobytes()
    limited = synthetic_client.timeseries.get_range(DATASET, DAY, NEXT_DAY, symbols=[symbol], limit=5)
    assert len(limited.to_ndarray()) == 5 and limited.metadata.limit == 5
    assert parse_time("start", "2024-03-12T13")[1] == 3_600 * 10**9
    assert parse_time("start", "2024-03-12T13:30")[1] == 60 * 10**9
    assert parse_time("start", "2024-03-12T13:30:00.5+00:00")[1] == 10**8


def test_no_data_gives_metadata_only_stream(synthetic_client: db.Historical) -> None:
    store = synthetic_client.timeseries.get_range(
        DATASET, "2024-03-16T12:00", "2024-03-16T13:00", symbols=["ES.c.0"], stype_in="continuous"
    )  # Saturday
    assert len(store.to_ndarray()) == 0
    assert store.metadata.dataset == DATASET
    missing = synthetic_client.timeseries.get_range(DATASET, DAY, NEXT_DAY, symbols=["ZZZ9"])
    assert len(missing.to_ndarray()) == 0 and missing.metadata.not_found == ["ZZZ9"]


def test_async_get_range(synthetic_client: db.Historical) -> None:
    symbol = _front_raw_symbol(synthetic_client)
    sync = synthetic_client.timeseries.get_range(DATASET, DAY, NEXT_DAY, symbols=[symbol]).to_ndarray()

    async def fetch() -> db.DBNStore:
        return await synthetic_client.timeseries.get_range_async(DATASET, DAY, NEXT_DAY, symbols=[symbol])

    assert asyncio.run(fetch()).to_ndarray().tobytes() == sync.tobytes()


def test_uncompressed_response_and_headers(synthetic_gateway) -> None:
    form = {
        "dataset": DATASET,
        "start": DAY,
        "end": NEXT_DAY,
        "symbols": "ES.FUT",
        "stype_in": "parent",
        "schema": "ohlcv-1h",
        "stype_out": "instrument_id",
        "encoding": "dbn",
        "compression": "none",
    }
    resp = requests.post(
        f"{synthetic_gateway.url}/v0/timeseries.get_range", data=form, auth=("db-x", ""), timeout=30
    )
    assert resp.status_code == 200 and resp.content[:3] == b"DBN"
    decoded = decode_response(resp.content)
    assert len(decoded.records["ohlcv-1h"]) > 0 and resp.headers["Databento-Schema"] == "ohlcv-1h"
    assert "Databento-Request-Id" in resp.headers


def test_auth_errors(synthetic_gateway) -> None:
    url = f"{synthetic_gateway.url}/v0/metadata.list_datasets"
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 401
    assert resp.json()["detail"]["case"] == "auth_no_api_key_provided"
    with pytest.raises(db.BentoClientError) as err:
        db.Historical("not-a-db-key", gateway=synthetic_gateway.url).metadata.list_datasets()
    assert err.value.http_status == 401
    assert err.value.json_body["detail"]["case"] == "auth_invalid_api_key"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"schema": "imbalance"}, "schema"),  # a real schema the synthetic market does not hold
        ({"dataset": "XNAS.ITCH"}, "dataset"),
        ({"start": NEXT_DAY, "end": DAY}, "end"),
        ({"start": "yesterday-ish"}, "start"),
        ({"stype_in": "smart"}, "stype_in"),
    ],
)
def test_bad_parameters_give_422(synthetic_client: db.Historical, kwargs: dict, field: str) -> None:
    args = {
        "dataset": DATASET,
        "start": DAY,
        "end": NEXT_DAY,
        "symbols": ["ES.c.0"],
        "stype_in": "continuous",
        "schema": "trades",
        **kwargs,
    }
    with pytest.raises(db.BentoClientError) as err:
        synthetic_client.timeseries.get_range(**args)
    assert err.value.http_status == 422
    assert f"'{field}'" in err.value.json_body["detail"]["message"]


def test_unknown_schema_name_gives_422(synthetic_gateway) -> None:
    form = {"dataset": DATASET, "start": DAY, "schema": "ticks", "symbols": "ALL_SYMBOLS"}
    resp = requests.post(
        f"{synthetic_gateway.url}/v0/timeseries.get_range", data=form, auth=("db-x", ""), timeout=30
    )
    assert resp.status_code == 422 and "'schema'" in resp.json()["detail"]["message"]


def test_cli_process_serves_files_and_key_list(tmp_path: Path) -> None:
    gateway = start_gateway_process(
        ["--data", str(DBN_SAMPLES), "--key", "db-only-this"],
        env={"HDI_HOME": os.environ.get("HDI_HOME", str(Path(".hdi").resolve()))},
    )
    try:
        assert gateway.pid is not None and gateway.ca_path.exists()
        assert "GLBX.MDP3" in db.Historical("db-only-this", gateway=gateway.url).metadata.list_datasets()
        with pytest.raises(db.BentoClientError):
            db.Historical("db-another", gateway=gateway.url).metadata.list_datasets()
        key_file = gateway.ca_path.parent / "gateway-key.pem"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    finally:
        gateway.stop()
    assert subprocess.run(["kill", "-0", str(gateway.pid)], capture_output=True).returncode != 0


def test_cli_bad_fault_spec_is_one_line() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from hdi_app.cli import main; main()",
            "replay",
            "serve",
            "--data",
            str(DBN_SAMPLES),
            "--faults",
            "429=2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "--faults" in proc.stderr
    assert "export" not in proc.stdout


def test_source_records_are_sorted_by_filter_time(synthetic_market) -> None:
    start, end = parse_time("start", DAY)[0], parse_time("end", NEXT_DAY)[0]
    trades = synthetic_market.records(DATASET, "trades", None, start, end)
    keys = trades[time_field("trades")]
    assert len(trades) and np.all(keys[1:] >= keys[:-1])
