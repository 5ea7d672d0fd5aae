"""Stage 2 of vendor validation: business rules as pandera schemas over whole columns.

Every rule is a named, vectorized pandera Check (True = row passes); one lazy validation collects all
failures, and pandera's failure cases (row index + check name) say which rule each bad row broke. Rows are
never lost: `validate` returns (valid, quarantined) with valid + quarantined = input rows; each quarantined
row carries its rule, a message (from the stage-1 model when it can explain it) and the original record.
A little over 400 lines: the rule table per family reads best as one list beside the checks it names."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pdr
import pyarrow as pa
import pyarrow.compute as pc

from hdi_core.errors import HdiError
from hdi_core.vendor_schemas.config import FAMILIES, SCHEMAS
from hdi_core.vendor_schemas.mapping import FamilyMapping, Mappings, load_mappings
from hdi_core.vendor_schemas.records import (
    LOW_VOLUME_FAMILIES,
    PLAUSIBLE_FROM,
    PLAUSIBLE_TO,
    Expectation,
    check_record,
    check_records,
)
from hdi_core.vendor_schemas.sequence import sequence_rules

__all__ = [
    "RULE_SETS",
    "Expectation",
    "Rule",
    "quarantine_schema",
    "rules_for",
    "validate",
]

MAX_EXPLAINED = 10_000  # rejected rows worded by their Pydantic model; the rest get the rule's description
QUARANTINE_SCHEMA = pa.schema(
    [("target", pa.string()), ("rule", pa.string()), ("message", pa.string()), ("record", pa.string())]
)


@dataclass(frozen=True)
class Rule:
    """One business rule: `passes(frame)` is a boolean Series, True where the row keeps the rule."""

    name: str
    description: str
    passes: Callable[[pd.DataFrame], pd.Series]
    columns: tuple[str, ...]


def _ok(series: pd.Series) -> pd.Series:
    """NULL comparisons pass: a missing value is the `required.<col>` rule's business, not this one's."""
    return series.fillna(True).astype(bool)


def _ts(value: dt.datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _common_rules(mapping: FamilyMapping, expect: Expectation, has_symbol: bool) -> list[Rule]:
    cols = set(mapping.column_names)
    rules: list[Rule] = []
    for name in ("ts_event", "ts_recv"):
        if name in cols:
            rules.append(
                Rule(
                    "timestamp.plausible",
                    f"{name} lies between 1990 and 2100",
                    lambda d, c=name: _ok((d[c] >= _ts(PLAUSIBLE_FROM)) & (d[c] < _ts(PLAUSIBLE_TO))),
                    (name,),
                )
            )
    index_col = "ts_recv" if "ts_recv" in cols else "ts_event"
    if expect.start is not None or expect.end is not None:
        start = _ts(expect.start) if expect.start is not None else None
        end = _ts(expect.end) if expect.end is not None else None

        # Not named `in_range`: pandera dispatches a check function by its __name__ to its builtin checks.
        def within_requested_range(d: pd.DataFrame, c: str = index_col) -> pd.Series:
            ok = pd.Series(True, index=d.index)
            if start is not None:
                ok &= _ok(d[c] >= start)
            if end is not None:
                ok &= _ok(d[c] < end)
            return ok

        rules.append(
            Rule(
                "timestamp.in_range",
                f"{index_col} within the requested [{start}, {end})",
                within_requested_range,
                (index_col,),
            )
        )
    if expect.symbols is not None and has_symbol:
        wanted = sorted(expect.symbols)
        rules.append(
            Rule(
                "symbol.expected",
                f"the record's symbol is one of {wanted}",
                lambda d: d["symbol"].isin(wanted).fillna(False).astype(bool),
                ("symbol",),
            )
        )
    if expect.instrument_ids is not None:
        ids = sorted(expect.instrument_ids)
        rules.append(
            Rule(
                "instrument.expected",
                f"instrument_id is one of {ids}",
                lambda d: d["instrument_id"].isin(ids).fillna(False).astype(bool),
                ("instrument_id",),
            )
        )
    return rules


def _positive_rule(columns: list[str]) -> Rule:
    def passes(d: pd.DataFrame) -> pd.Series:
        ok = pd.Series(True, index=d.index)
        for c in columns:
            ok &= _ok(d[c] > 0)
        return ok

    return Rule("price.positive", f"{', '.join(columns)} > 0 where set", passes, tuple(columns))


def _enum_rules(mapping: FamilyMapping, mappings: Mappings) -> list[Rule]:
    rules = []
    for col in mapping.columns:
        if col.enum:
            allowed = list(mappings.enums[col.enum])
            rules.append(
                Rule(
                    f"{col.name}.valid",
                    f"{col.name} is one of {allowed}",
                    lambda d, c=col.name, a=allowed: d[c].isin(a) | d[c].isna(),
                    (col.name,),
                )
            )
    return rules


def _family_rules(family: str, mappings: Mappings, expect: Expectation) -> list[Rule]:
    rules: list[Rule] = []
    if family == "ohlcv":
        rules += [
            Rule(
                "ohlc.high_ge_low",
                "high_price >= low_price",
                lambda d: _ok(d["high_price"] >= d["low_price"]),
                ("high_price", "low_price"),
            ),
            Rule(
                "ohlc.high_ge_open_close",
                "high_price >= open_price and close_price",
                lambda d: _ok((d["high_price"] >= d["open_price"]) & (d["high_price"] >= d["close_price"])),
                ("high_price", "open_price", "close_price"),
            ),
            Rule(
                "ohlc.low_le_open_close",
                "low_price <= open_price and close_price",
                lambda d: _ok((d["low_price"] <= d["open_price"]) & (d["low_price"] <= d["close_price"])),
                ("low_price", "open_price", "close_price"),
            ),
            Rule("volume.non_negative", "volume >= 0", lambda d: _ok(d["volume"] >= 0), ("volume",)),
        ]
    if family in ("trades", "tbbo"):
        rules.append(Rule("size.positive", "size > 0", lambda d: _ok(d["size"] > 0), ("size",)))
    if family == "tbbo":
        rules.append(
            Rule(
                "bbo.bid_le_ask",
                "bid_px_00 <= ask_px_00 when both are set",
                lambda d: _ok(d["bid_px_00"] <= d["ask_px_00"]),
                ("bid_px_00", "ask_px_00"),
            )
        )
    if family == "statistics":
        price_types = sorted(mappings.price_stat_types)
        rules.append(
            Rule(
                "statistics.value_set",
                "price or quantity is set (unless the statistic is deleted)",
                lambda d: (
                    (d["update_action"] == 2).fillna(False).astype(bool)
                    | d["price"].notna()
                    | d["quantity"].notna()
                ),
                ("update_action", "price", "quantity"),
            )
        )
        rules.append(
            Rule(
                "quantity.non_negative",
                "quantity >= 0 where set",
                lambda d: _ok(d["quantity"] >= 0),
                ("quantity",),
            )
        )
        if not expect.allow_nonpositive_prices:
            rules.append(
                Rule(
                    "price.positive",
                    "price > 0 for price statistics",
                    lambda d: _ok(~d["stat_type"].isin(price_types) | (d["price"] > 0)),
                    ("stat_type", "price"),
                )
            )
    if family == "definition":
        rules.append(
            Rule(
                "definition.limits_ordered",
                "high_limit_price >= low_limit_price",
                lambda d: _ok(d["high_limit_price"] >= d["low_limit_price"]),
                ("high_limit_price", "low_limit_price"),
            )
        )
    return rules


def rules_for(
    schema: str, expect: Expectation | None = None, mappings: Mappings | None = None, has_symbol: bool = False
) -> list[Rule]:
    """The ordered rules of a schema (or family); the first rule a row breaks is the one reported."""
    mappings = mappings or load_mappings()
    expect = expect or Expectation()
    mapping = mappings.family(schema)
    family = mapping.family
    rules = _common_rules(mapping, expect, has_symbol)
    if mapping.positive_columns and not expect.allow_nonpositive_prices:
        rules.append(_positive_rule(mapping.positive_columns))
    rules += _enum_rules(mapping, mappings)
    rules += _family_rules(family, mappings, expect)
    return rules


def _merge_same_names(rules: list[Rule]) -> list[Rule]:
    """pandera reports by check name, so rules sharing a name become one check (all must pass)."""
    merged: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in merged:
            first = merged[rule.name]
            merged[rule.name] = Rule(
                rule.name,
                f"{first.description}; {rule.description}",
                lambda d, a=first.passes, b=rule.passes: a(d) & b(d),
                tuple(dict.fromkeys(first.columns + rule.columns)),
            )
        else:
            merged[rule.name] = rule
    return list(merged.values())


def pandera_schema(
    schema: str, expect: Expectation | None = None, mappings: Mappings | None = None, has_symbol: bool = False
) -> tuple[pdr.DataFrameSchema, list[str]]:
    """The pandera schema of one schema's rules, plus the rule names in reporting order."""
    mappings = mappings or load_mappings()
    mapping = mappings.family(schema)
    rules = _merge_same_names(rules_for(schema, expect, mappings, has_symbol))
    columns = {c: pdr.Column(nullable=False, required=True) for c in mapping.required_columns}
    # No `error=`: pandera would report the error text instead of the rule name in failure_cases.
    checks = [pdr.Check(rule.passes, name=rule.name, ignore_na=False) for rule in rules]
    order = [f"required.{c}" for c in mapping.required_columns] + [rule.name for rule in rules]
    return pdr.DataFrameSchema(columns, checks=checks, name=mapping.family), order


RULE_SETS: dict[str, str] = {family: family for family in FAMILIES}  # config validation_schema_paths targets


def _frame(table: pa.Table, columns: list[str], symbols: pa.Array | None) -> pd.DataFrame:
    """Only the columns the rules read, as Arrow-backed pandas (int64 prices stay exact, no float)."""
    frame = table.select(columns).to_pandas(types_mapper=pd.ArrowDtype)
    if symbols is not None:
        frame["symbol"] = pd.Series(symbols.to_pandas(), index=frame.index, dtype="object").astype("category")
    return frame.reset_index(drop=True)


def _failed_rules(schema_obj: pdr.DataFrameSchema, frame: pd.DataFrame, order: list[str]) -> np.ndarray:
    """Run pandera lazily; for each row the first rule (in `order`) it broke, or None."""
    n = len(frame)
    result = np.full(n, None, dtype=object)
    try:
        schema_obj.validate(frame, lazy=True)
    except pdr.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        crashed = cases[cases["index"].isna()]
        if len(crashed):
            # A check that raised reports no rows; passing them silently would let bad rows through.
            first = crashed.iloc[0]
            raise HdiError(
                f"validation rule {first['check']} could not run: {first['failure_case']}"
            ) from None
        names = np.where(
            cases["check"].astype(str) == "not_nullable",
            "required." + cases["column"].astype(str),
            cases["check"].astype(str),
        )
        rank = {name: i for i, name in enumerate(order)}
        found = pd.DataFrame({"index": cases["index"].astype(np.int64).to_numpy(), "rule": names})
        found["rank"] = found["rule"].map(lambda r: rank.get(r, len(rank)))
        first = found.sort_values(["index", "rank"]).drop_duplicates("index")
        result[first["index"].to_numpy()] = first["rule"].to_numpy()
    return result


def _records_json(rows: pa.Table) -> list[str]:
    """The rejected rows as JSON objects (quarantine is the exception, so a Python object each is fine)."""
    return [json.dumps(rec, default=json_default, sort_keys=True) for rec in rows.to_pylist()]


def json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def validate(
    schema: str,
    table: pa.Table,
    expect: Expectation | None = None,
    *,
    original: pa.Table | None = None,
    mappings: Mappings | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Split mapped rows into (valid, quarantined); valid + quarantined = input rows.

    `original` (same rows, e.g. the decoded DBN records with their `symbol`) is what a quarantined row's
    `record` shows and where the symbol rule reads; without it the mapped row is recorded."""
    mappings = mappings or load_mappings()
    expect = expect or Expectation()
    mapping = mappings.family(schema)
    family = mapping.family
    n = table.num_rows
    if original is not None and original.num_rows != n:
        raise HdiError(f"validate({schema}): original has {original.num_rows} rows, table has {n}")
    missing = [c for c in mapping.column_names if c not in table.column_names]
    if missing:
        raise HdiError(f"validate({schema}): table lacks column(s) {missing}; map the records first")
    symbols = None
    for source in (original, table):
        if source is not None and "symbol" in source.column_names:
            symbols = source.column("symbol").combine_chunks()
            break
    schema_obj, order = pandera_schema(schema, expect, mappings, has_symbol=symbols is not None)
    frame = _frame(table, mapping.column_names, symbols)
    rules = _failed_rules(schema_obj, frame, order)
    model_rules = np.full(n, None, dtype=object)
    model_messages = np.full(n, None, dtype=object)
    if family in LOW_VOLUME_FAMILIES:
        failed, found_rules, found_messages = check_records(
            family, table.select(mapping.column_names), expect, mappings
        )
        take = failed & pd.isna(rules)
        rules[take] = found_rules[take]
        model_rules[failed] = found_rules[failed]
        model_messages[failed] = found_messages[failed]
    # Duplicates and index-time order read the records as delivered (every DBN field, the input's order).
    sequence_found, sequence_messages = sequence_rules(original if original is not None else table,
                                                       rejected=~pd.isna(rules))
    take = pd.isna(rules) & ~pd.isna(sequence_found)
    rules[take] = sequence_found[take]
    bad = ~pd.isna(rules)
    bad_idx = np.flatnonzero(bad)
    if bad_idx.size and family not in LOW_VOLUME_FAMILIES:
        # Only rejected rows become model objects (at most MAX_EXPLAINED): the model words the failure.
        explained = bad_idx[~take[bad_idx]][:MAX_EXPLAINED]
        for i, row in zip(explained, table.take(pa.array(explained)).to_pylist(), strict=True):
            found = check_record(family, row, expect, mappings)
            if found is not None:
                model_rules[i], model_messages[i] = found
    descriptions = {rule.name: rule.description for rule in rules_for(schema, expect, mappings, True)}
    messages = []
    for i in bad_idx:
        rule = str(rules[i])
        if take[i]:
            messages.append(str(sequence_messages[i]))
        elif model_rules[i] == rule:
            messages.append(str(model_messages[i]))
        elif rule.startswith("required."):
            messages.append(f"{rule}: {rule.split('.', 1)[1]} has no value (NULL or the DBN sentinel)")
        else:
            messages.append(f"{rule}: broken ({descriptions.get(rule, rule)})")
    mask = pa.array(bad)
    valid = table.filter(pc.invert(mask)) if bad_idx.size else table
    source = original if original is not None else table
    rejected = source.filter(mask) if bad_idx.size else source.slice(0, 0)
    quarantined = pa.table(
        {
            "target": pa.repeat(pa.scalar(mapping.target_table, pa.string()), len(bad_idx)),
            "rule": pa.array([str(rules[i]) for i in bad_idx], pa.string()),
            "message": pa.array(messages, pa.string()),
            "record": pa.array(_records_json(rejected), pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return valid, quarantined


def quarantine_schema() -> pa.Schema:
    return QUARANTINE_SCHEMA


SUPPORTED_SCHEMAS = tuple(SCHEMAS)
