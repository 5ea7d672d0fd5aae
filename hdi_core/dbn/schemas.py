"""DBN record layouts: one NumPy dtype per schema and DBN version, and the record-type byte of each schema."""

from __future__ import annotations

import databento_dbn as dbn
import numpy as np
from databento_dbn import v1, v2

from hdi_core.errors import HdiError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # first bytes of every zstd frame
DBN_MAGIC = b"DBN"  # first bytes of every DBN stream, followed by the version byte
DBN_VERSIONS = (1, 2, 3)
# DBN u64 time fields; UNDEF_TIMESTAMP is 2**64-1.
TIME_FIELDS = frozenset({"ts_event", "ts_recv", "ts_ref", "ts_out", "expiration", "activation", "auction_time"})

# Record class name of every schema Databento serves (as databento's SCHEMA_STRUCT_MAP; named here so the core
# needs only the codec library, never the network client).
_SCHEMA_CLASS_NAMES: dict[str, str] = {
    "definition": "InstrumentDefMsg", "imbalance": "ImbalanceMsg", "mbo": "MBOMsg", "mbp-1": "MBP1Msg",
    "mbp-10": "MBP10Msg", "ohlcv-1s": "OHLCVMsg", "ohlcv-1m": "OHLCVMsg", "ohlcv-1h": "OHLCVMsg",
    "ohlcv-1d": "OHLCVMsg", "ohlcv-eod": "OHLCVMsg", "statistics": "StatMsg", "status": "StatusMsg",
    "tbbo": "MBP1Msg", "trades": "TradeMsg", "cmbp-1": "CMBP1Msg", "cbbo-1s": "CBBOMsg",
    "cbbo-1m": "CBBOMsg", "tcbbo": "CBBOMsg", "bbo-1s": "BBOMsg", "bbo-1m": "BBOMsg",
}
_VERSION_MODULES = {1: v1, 2: v2, 3: dbn}
# ohlcv-eod exists from DBN v3 on (databento's SCHEMA_STRUCT_MAP_V1/V2 leave it out).
_V3_ONLY = frozenset({"ohlcv-eod"})

# Record layout (numpy dtype) of every schema by DBN version; SCHEMA_DTYPES is the v3 (current) one.
VERSION_DTYPES: dict[int, dict[str, np.dtype]] = {
    version: {
        schema: np.dtype(getattr(module, name)._dtypes)
        for schema, name in _SCHEMA_CLASS_NAMES.items()
        if version == 3 or schema not in _V3_ONLY
    }
    for version, module in _VERSION_MODULES.items()
}
SCHEMA_DTYPES: dict[str, np.dtype] = VERSION_DTYPES[3]

# Record type byte -> schema, for splitting mixed (live-format) streams; rtype 1 is mbp-1 (tbbo shares it).
RTYPE_SCHEMA: dict[int, str] = {
    0x00: "trades", 0x01: "mbp-1", 0x0A: "mbp-10", 0xA0: "mbo", 0x20: "ohlcv-1s", 0x21: "ohlcv-1m",
    0x22: "ohlcv-1h", 0x23: "ohlcv-1d", 0x24: "ohlcv-eod", 0x13: "definition", 0x18: "statistics",
    0x12: "status", 0x14: "imbalance", 0xB1: "cmbp-1", 0xC0: "cbbo-1s", 0xC1: "cbbo-1m", 0xC2: "tcbbo",
    0xC3: "bbo-1s", 0xC4: "bbo-1m",
}


def schema_dtype(schema: str, version: int = 3) -> np.dtype:
    """The record layout of `schema` in DBN `version` (default: the current v3 layout)."""
    try:
        return VERSION_DTYPES[version][schema]
    except KeyError:
        raise HdiError(f"unknown DBN schema '{schema}' for DBN version {version}") from None


def time_field(schema: str) -> str:
    """Databento filters on ts_recv where the schema has it, else on ts_event."""
    return "ts_recv" if "ts_recv" in (schema_dtype(schema).names or ()) else "ts_event"


def empty_records(schema: str) -> np.ndarray:
    return np.empty(0, dtype=schema_dtype(schema))
