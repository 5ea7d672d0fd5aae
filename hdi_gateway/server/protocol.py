"""Databento's Historical API conventions as the gateway speaks them: constants, the cost model, the JSON
error shape and parameter parsing.

Cost model (deterministic, USD per GB of billable size = record count x DBN v3 record size), chosen to be
in the range of Databento's CME prices: see COST_PER_GB.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re

import pandas as pd

log = logging.getLogger("hdi.replay.gateway")

ENV_GATEWAY_KEYS = "HDI_GATEWAY_KEYS"
NS_PER_DAY = 86_400 * 1_000_000_000
DOCS = "https://databento.com/docs/api-reference-historical"
ALL_SYMBOLS = "ALL_SYMBOLS"
STYPES_IN = ("raw_symbol", "instrument_id", "parent", "continuous")
STYPES_OUT = ("instrument_id", "raw_symbol")
SYMBOLOGY_LOOKBACK_DAYS = 14  # continuous rules rank by previous sessions' volume / open interest
# Complete response bodies kept per request, bounded by bytes: a repeated request streams stored bytes,
# as Databento serves from storage rather than by producing the data again.
BODY_CACHE_BYTES = int(os.environ.get("HDI_REPLAY_BODY_CACHE_MB", "384")) << 20
RECORD_COUNT_CACHE_SIZE = 4096
# Records produced to count a request (get_cost before get_range) are kept for the get_range that follows.
RECENT_RECORDS_BYTES = int(os.environ.get("HDI_REPLAY_RECENT_RECORDS_MB", "384")) << 20
WRITE_SIZE = 8 << 20  # bytes per socket write (and per HTTP chunk) when sending a stored body

# USD per GB (1e9 bytes) of billable size, by schema; deterministic stand-ins for Databento's CME rates.
COST_PER_GB: dict[str, float] = {
    "mbo": 1.80,
    "mbp-10": 2.40,
    "mbp-1": 1.00,
    "tbbo": 0.80,
    "trades": 0.50,
    "bbo-1s": 0.60,
    "bbo-1m": 0.60,
    "cbbo-1s": 0.60,
    "cbbo-1m": 0.60,
    "ohlcv-1s": 0.40,
    "ohlcv-1m": 0.40,
    "ohlcv-1h": 0.40,
    "ohlcv-1d": 0.40,
    "statistics": 0.25,
    "status": 0.10,
    "definition": 0.10,
    "imbalance": 0.50,
}
DEFAULT_COST_PER_GB = 0.50
# Calls that can be hit by injected faults (the client's data and metadata calls).
FAULTABLE_CALLS = {
    "timeseries.get_range",
    "metadata.get_cost",
    "metadata.get_record_count",
    "metadata.get_billable_size",
    "metadata.get_dataset_range",
    "metadata.list_datasets",
    "metadata.list_schemas",
    "symbology.resolve",
}


class ApiError(Exception):
    """An HTTP error answered with Databento's JSON error shape."""

    def __init__(self, status: int, case: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.case = case
        self.message = message
        self.headers = headers or {}

    def body(self) -> bytes:
        detail = {"case": self.case, "message": self.message, "status_code": self.status, "docs": DOCS}
        return json.dumps({"detail": detail}).encode()


def bad_param(field_name: str, message: str, case: str = "param_invalid") -> ApiError:
    return ApiError(422, case, f"Invalid value for '{field_name}': {message}")


# ---------------------------------------------------------------------------------------------- parsing

INT_PATTERN = re.compile(r"^-?\d+$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(field_name: str, value: str) -> tuple[int, int]:
    """(ns since epoch UTC, resolution in ns) of a Databento start/end: int ns, ISO date or ISO datetime."""
    text = value.strip()
    if INT_PATTERN.match(text):
        return int(text), 1
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise bad_param(field_name, f"'{value}' is not an ISO 8601 date/datetime or integer nanoseconds") from None
    if ts is pd.NaT:
        raise bad_param(field_name, f"'{value}' is not a time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if DATE_PATTERN.match(text):
        return int(ts.value), NS_PER_DAY
    clock = re.split(r"[T ]", text, maxsplit=1)[1] if re.search(r"[T ]", text) else ""
    clock = re.split(r"[Z+\-]", clock, maxsplit=1)[0]
    parts = clock.split(":")
    if len(parts) == 1:
        resolution = 3_600 * 10**9
    elif len(parts) == 2:
        resolution = 60 * 10**9
    elif "." in parts[2]:
        resolution = 10 ** max(0, 9 - len(parts[2].split(".")[1]))
    else:
        resolution = 10**9
    return int(ts.value), resolution


def parse_date(field_name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise bad_param(field_name, f"'{value}' is not an ISO 8601 date") from None


def iso_ns(ns: int) -> str:
    """Databento's timestamp text: 2020-12-28T00:00:00.000000000Z."""
    seconds, frac = divmod(int(ns), 10**9)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def ns_date(ns: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(ns) // NS_PER_DAY)


def date_ns(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * NS_PER_DAY

