"""The live-only DBN records, built as NumPy structured arrays: SymbolMappingMsg, SystemMsg, ErrorMsg.

Layouts are databento_dbn's own DBN v3 dtypes; `length` is the record size in 4-byte words as DBN requires.
"""

from __future__ import annotations

from collections.abc import Sequence

import databento_dbn as dbn
import numpy as np

MAPPING_DTYPE = np.dtype(dbn.SymbolMappingMsg._dtypes)
SYSTEM_DTYPE = np.dtype(dbn.SystemMsg._dtypes)
ERROR_DTYPE = np.dtype(dbn.ErrorMsg._dtypes)
RTYPE_ERROR = 0x15
RTYPE_SYMBOL_MAPPING = 0x16
RTYPE_SYSTEM = 0x17
UNDEF_TIMESTAMP = np.iinfo(np.uint64).max
# DBN SType codes (databento_dbn.SType) of the symbology the gateway accepts.
STYPE_CODES = {"instrument_id": 0, "raw_symbol": 1, "continuous": 3, "parent": 4}
# DBN SystemCode / ErrorCode values (databento_dbn.SystemCode / ErrorCode).
SYSTEM_HEARTBEAT = 0
SYSTEM_SUBSCRIPTION_ACK = 1
SYSTEM_SLOW_READER_WARNING = 2
SYSTEM_REPLAY_COMPLETED = 3
ERROR_AUTH_FAILED = 1
ERROR_SYMBOL_RESOLUTION_FAILED = 4
ERROR_INVALID_SUBSCRIPTION = 5
ERROR_INTERNAL = 6
ERROR_SKIPPED_RECORDS_AFTER_SLOW_READING = 7
HEARTBEAT_TEXT = "Heartbeat"


def _header(dtype: np.dtype, n: int, rtype: int) -> np.ndarray:
    out = np.zeros(n, dtype=dtype)
    out["length"] = dtype.itemsize // 4
    out["rtype"] = rtype
    return out


def symbol_mappings(
    ts_event: int, stype_in: str, input_symbols: Sequence[str], instrument_ids: Sequence[int],
    raw_symbols: Sequence[str],
) -> bytes:
    """One SymbolMappingMsg per (input symbol, instrument): input symbol -> the instrument's raw symbol,
    start_ts/end_ts undefined, as Databento's live gateway sends them."""
    out = _header(MAPPING_DTYPE, len(instrument_ids), RTYPE_SYMBOL_MAPPING)
    out["instrument_id"] = np.asarray(instrument_ids, dtype=np.uint32)
    out["ts_event"] = ts_event
    out["stype_in"] = STYPE_CODES.get(stype_in, 255)
    out["stype_in_symbol"] = np.asarray([s.encode() for s in input_symbols], dtype="S71")
    out["stype_out"] = STYPE_CODES["raw_symbol"]
    out["stype_out_symbol"] = np.asarray([s.encode() for s in raw_symbols], dtype="S71")
    out["start_ts"] = UNDEF_TIMESTAMP
    out["end_ts"] = UNDEF_TIMESTAMP
    return out.tobytes()


def system_message(ts_event: int, text: str, code: int = SYSTEM_HEARTBEAT) -> bytes:
    out = _header(SYSTEM_DTYPE, 1, RTYPE_SYSTEM)
    out["ts_event"] = ts_event
    out["msg"] = text.encode()[: SYSTEM_DTYPE["msg"].itemsize - 1]
    out["code"] = code
    return out.tobytes()


def heartbeat(ts_event: int) -> bytes:
    return system_message(ts_event, HEARTBEAT_TEXT, SYSTEM_HEARTBEAT)


def error_message(ts_event: int, text: str, code: int, is_last: bool = True) -> bytes:
    out = _header(ERROR_DTYPE, 1, RTYPE_ERROR)
    out["ts_event"] = ts_event
    out["err"] = text.encode()[: ERROR_DTYPE["err"].itemsize - 1]
    out["code"] = code
    out["is_last"] = int(is_last)
    return out.tobytes()
