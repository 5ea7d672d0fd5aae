"""`FileSource`: a DataSource over a folder of real DBN files (v1..v3, plain or zstd), queried like Databento.

Every `.dbn` / `.dbn.zst` below the folder is read once at start, upgraded to the DBN v3 layout, merged per
(dataset, schema), de-duplicated (the same records often ship in several DBN versions) and sorted by the
time Databento filters on (ts_recv where the schema has it, else ts_event). Instruments come from the
definition records, completed by the files' own symbol mappings; daily volume and open interest (for the
continuous-contract rules) come from ohlcv/trades and statistics records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import defaultdict
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import pandas as pd

from hdi_core.dbn import SCHEMA_DTYPES, decode_file, empty_records, time_field
from hdi_core.errors import HdiError

from .source import Instrument

NS_PER_DAY = 86_400 * 1_000_000_000
INT64_MAX = np.iinfo(np.int64).max
UINT64_UNDEF = np.iinfo(np.uint64).max
STAT_OPEN_INTEREST = 9  # databento_dbn.StatType.OPEN_INTEREST
# Volume sources for the continuous rules, best first: a daily bar is the exchange's own daily volume.
_VOLUME_SCHEMAS = ("ohlcv-1d", "ohlcv-1h", "ohlcv-1m", "ohlcv-1s", "trades")
_CME_FUTURE = re.compile(r"^(?P<root>[A-Z0-9]{1,4}?)(?P<month>[FGHJKMNQUVXZ])(?P<year>\d{1,2})$")


def _dedup_sorted(parts: list[np.ndarray], schema: str) -> np.ndarray:
    """Concatenate, drop byte-identical records, sort stably by the schema's filter time."""
    if not parts:
        return empty_records(schema)
    records = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if len(records) > 1:
        rows = records.view(np.dtype((np.void, records.dtype.itemsize)))
        _, first = np.unique(rows, return_index=True)
        records = records[np.sort(first)]
        records = records[np.argsort(records[time_field(schema)], kind="stable")]
    return records


def _to_ns(value: np.ndarray | int, undefined: int) -> np.ndarray:
    """uint64 DBN timestamps to int64, with UNDEF_TIMESTAMP mapped to `undefined`."""
    arr = np.asarray(value, dtype=np.uint64)
    return np.where(arr == UINT64_UNDEF, np.uint64(undefined), np.minimum(arr, np.uint64(INT64_MAX))).astype(
        np.int64
    )


class FileSource:
    """DataSource over the DBN files below `folder` (searched recursively)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise HdiError(f"--data {self.folder}: not a folder")
        paths = sorted(
            p for p in self.folder.rglob("*") if p.is_file() and p.name.endswith((".dbn", ".dbn.zst"))
        )
        if not paths:
            raise HdiError(f"--data {self.folder}: no .dbn or .dbn.zst files found")
        parts: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        # (dataset, raw_symbol, instrument_id, start_ns, end_ns) from the files' symbol mappings
        mapping_rows: list[tuple[str, str, int, int, int]] = []
        self.files: list[Path] = paths
        for path in paths:
            try:
                decoded = decode_file(path)
            except HdiError:
                raise
            except Exception as exc:
                raise HdiError(f"{path}: cannot decode DBN ({exc})") from None
            meta = decoded.metadata
            dataset = meta.dataset
            for schema, records in decoded.records.items():
                parts[(dataset, schema)].append(records)
            if meta.schema is not None:
                parts.setdefault((dataset, str(meta.schema)), [])
            if meta.stype_in is not None and str(meta.stype_in) == "raw_symbol":
                for raw_symbol, intervals in dict(meta.mappings).items():
                    for iv in intervals:
                        if str(iv["symbol"]).isdigit():
                            mapping_rows.append(
                                (
                                    dataset,
                                    raw_symbol,
                                    int(iv["symbol"]),
                                    _date_ns(iv["start_date"]),
                                    _date_ns(iv["end_date"]),
                                )
                            )
            if decoded.symbol_mappings:
                lo, hi = _file_span(decoded.records)
                for symbol, iid, _start, _end in decoded.symbol_mappings:
                    mapping_rows.append((dataset, symbol, int(iid), lo, hi))
        self._records: dict[tuple[str, str], np.ndarray] = {
            key: _dedup_sorted(arrays, key[1]) for key, arrays in parts.items()
        }
        self._keys: dict[tuple[str, str], np.ndarray] = {
            key: np.ascontiguousarray(arr[time_field(key[1])]).astype(np.int64)
            for key, arr in self._records.items()
        }
        self._instruments = self._build_instruments(mapping_rows)
        self._daily = {ds: self._build_daily(ds) for ds in self.datasets()}

    # ------------------------------------------------------------------------------------- DataSource

    def datasets(self) -> list[str]:
        return sorted({ds for ds, _ in self._records})

    def schemas(self, dataset: str) -> list[str]:
        return sorted(schema for ds, schema in self._records if ds == dataset)

    def dataset_range(self, dataset: str) -> tuple[int, int, dict[str, tuple[int, int]]]:
        ranges: dict[str, tuple[int, int]] = {}
        for schema in self.schemas(dataset):
            keys = self._keys[(dataset, schema)]
            if len(keys) == 0:
                continue
            # Whole UTC days, as Databento reports coverage.
            lo = int(keys[0]) // NS_PER_DAY * NS_PER_DAY
            hi = (int(keys[-1]) // NS_PER_DAY + 1) * NS_PER_DAY
            ranges[schema] = (lo, hi)
        if not ranges:
            return 0, 0, {}
        return min(r[0] for r in ranges.values()), max(r[1] for r in ranges.values()), ranges

    def instruments(self, dataset: str, start_ns: int, end_ns: int) -> list[Instrument]:
        return [
            i
            for i in self._instruments.get(dataset, [])
            if i.activation_ns < end_ns and i.expiration_ns >= start_ns
        ]

    def daily_stats(self, dataset: str, start_date: dt.date, end_date: dt.date) -> pd.DataFrame:
        daily = self._daily.get(dataset)
        if daily is None or daily.empty:
            return _empty_daily()
        dates = daily["date"]
        return daily[(dates >= start_date) & (dates < end_date)].reset_index(drop=True)

    def records(
        self, dataset: str, schema: str, instrument_ids: np.ndarray | None, start_ns: int, end_ns: int
    ) -> np.ndarray:
        key = (dataset, schema)
        if key not in self._records:
            return empty_records(schema) if schema in SCHEMA_DTYPES else np.empty(0)
        keys = self._keys[key]
        lo, hi = np.searchsorted(keys, [start_ns, end_ns], side="left")
        records = self._records[key][lo:hi]
        if instrument_ids is not None:
            records = records[np.isin(records["instrument_id"], np.asarray(instrument_ids, dtype=np.uint32))]
        return records

    # ------------------------------------------------------------------------------------- building

    def _build_instruments(
        self, mapping_rows: list[tuple[str, str, int, int, int]]
    ) -> dict[str, list[Instrument]]:
        out: dict[str, dict[int, Instrument]] = defaultdict(dict)
        for dataset in self.datasets():
            defs = self._records.get((dataset, "definition"))
            if defs is None or len(defs) == 0:
                continue
            defs = defs[np.argsort(defs["ts_recv"], kind="stable")]
            _, last = np.unique(defs["instrument_id"][::-1], return_index=True)
            latest = defs[::-1][last]  # the newest definition of each instrument
            expiration = _to_ns(latest["expiration"], INT64_MAX)
            activation = _to_ns(latest["activation"], 0)
            uom = latest["unit_of_measure_qty"]
            multiplier = np.where(uom == INT64_MAX, 1, uom // dbn.FIXED_PRICE_SCALE)
            tick = np.where(latest["min_price_increment"] == INT64_MAX, 0, latest["min_price_increment"])
            for row, exp, act, mult, tk in zip(latest, expiration, activation, multiplier, tick, strict=True):
                # one object per instrument (not per record): a few thousand at most
                asset = row["asset"].decode(errors="replace")
                klass = row["instrument_class"].decode(errors="replace")
                parent = f"{asset}.{'OPT' if klass in ('C', 'P') else 'FUT'}" if asset else ""
                iid = int(row["instrument_id"])
                out[dataset][iid] = Instrument(
                    iid,
                    row["raw_symbol"].decode(errors="replace"),
                    parent,
                    int(exp),
                    int(act),
                    int(tk),
                    int(mult),
                )
        # The files' symbol mappings: list instruments known only from them over the mapped dates, and bound
        # definitions whose listing dates are undefined (equities) by them too.
        spans: dict[tuple[str, int], tuple[str, int, int]] = {}
        for dataset, raw_symbol, iid, lo, hi in mapping_rows:
            prev = spans.get((dataset, iid))
            spans[(dataset, iid)] = (
                raw_symbol,
                min(lo, prev[1]) if prev else lo,
                max(hi, prev[2]) if prev else hi,
            )
        for (dataset, iid), (raw_symbol, lo, hi) in spans.items():
            known = out[dataset].get(iid)
            if known is not None:
                out[dataset][iid] = dataclasses.replace(
                    known,
                    activation_ns=lo if known.activation_ns == 0 else known.activation_ns,
                    expiration_ns=hi if known.expiration_ns == INT64_MAX else known.expiration_ns,
                )
                continue
            match = _CME_FUTURE.match(raw_symbol) if dataset == "GLBX.MDP3" else None
            parent = f"{match['root']}.FUT" if match else ""
            out[dataset][iid] = Instrument(iid, raw_symbol, parent, hi, lo, 0, 1)
        return {
            ds: sorted(v.values(), key=lambda i: (i.expiration_ns, i.instrument_id)) for ds, v in out.items()
        }

    def _build_daily(self, dataset: str) -> pd.DataFrame:
        volume = pd.DataFrame(columns=["day", "instrument_id", "volume"])
        for schema in _VOLUME_SCHEMAS:
            recs = self._records.get((dataset, schema))
            if recs is None or len(recs) == 0:
                continue
            size = recs["volume"] if schema.startswith("ohlcv") else recs["size"]
            frame = pd.DataFrame(
                {
                    "day": _utc_days(recs[time_field(schema)]),
                    "instrument_id": recs["instrument_id"].astype(np.int64),
                    "volume": size.astype(np.int64),
                }
            )
            volume = frame.groupby(["day", "instrument_id"], as_index=False)["volume"].sum()
            break
        oi = pd.DataFrame(columns=["day", "instrument_id", "open_interest"])
        stats = self._records.get((dataset, "statistics"))
        if stats is not None and len(stats):
            stats = stats[stats["stat_type"] == STAT_OPEN_INTEREST]
            if len(stats):
                frame = pd.DataFrame(
                    {
                        "day": _utc_days(stats["ts_recv"]),
                        "instrument_id": stats["instrument_id"].astype(np.int64),
                        "open_interest": stats["quantity"].astype(np.int64),
                    }
                )
                oi = frame.groupby(["day", "instrument_id"], as_index=False)["open_interest"].last()
        if volume.empty and oi.empty:
            return _empty_daily()
        daily = volume.merge(oi, on=["day", "instrument_id"], how="outer")
        # one date object per (day, instrument) row of the small daily table, not per record
        daily.insert(
            0, "date", daily.pop("day").to_numpy(dtype=np.int64).astype("datetime64[D]").astype(object)
        )
        daily["volume"] = daily["volume"].fillna(0).astype(np.int64)
        daily["open_interest"] = daily["open_interest"].fillna(0).astype(np.int64)
        return daily.sort_values(["date", "instrument_id"]).reset_index(drop=True)


def _empty_daily() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.Series([], dtype=object),
            "instrument_id": pd.Series([], dtype=np.int64),
            "volume": pd.Series([], dtype=np.int64),
            "open_interest": pd.Series([], dtype=np.int64),
        }
    )


def _utc_days(ts: np.ndarray) -> np.ndarray:
    """Days since the epoch (UTC) of nanosecond timestamps."""
    return (np.asarray(ts, dtype=np.uint64) // np.uint64(NS_PER_DAY)).astype(np.int64)


def _date_ns(value: dt.date | str) -> int:
    day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    return (day - dt.date(1970, 1, 1)).days * NS_PER_DAY


def _file_span(records: dict[str, np.ndarray]) -> tuple[int, int]:
    lo, hi = INT64_MAX, 0
    for schema, arr in records.items():
        if len(arr):
            keys = arr[time_field(schema)].astype(np.int64)
            lo, hi = min(lo, int(keys.min())), max(hi, int(keys.max()))
    if hi == 0:
        return 0, 0
    return lo // NS_PER_DAY * NS_PER_DAY, (hi // NS_PER_DAY + 1) * NS_PER_DAY
