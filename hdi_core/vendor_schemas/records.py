"""Stage 1 of vendor validation: Pydantic models of ONE stored record per schema (seed 004's OhlcvMsg,
TradeMsg, TbboMsg, StatisticsMsg and the definition record of story 2.4).

Field names are the stored column names; prices are int fixed point (1e-9 units, `price_decimal` turns one
into a Decimal for display); timestamps are UTC datetimes. Each business rule raises with its rule id first
(`ohlc.high_ge_low: ...`), the same ids the column-wise rules in rules.py use.

Use: every record of the low-volume schemas (statistics, definitions) goes through `check_records`; at tick
scale (trades, tbbo, ohlcv) only the rows the column rules rejected are built, to explain the rejection."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from hdi_core.vendor_schemas.mapping import Mappings, load_mappings

INT16_MAX = 2**15 - 1
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
PLAUSIBLE_FROM = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
PLAUSIBLE_TO = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
GRANULARITIES = ("1s", "1m", "5m", "15m", "1h", "1d")
LOW_VOLUME_FAMILIES = frozenset({"statistics", "definition"})


@dataclass(frozen=True)
class Expectation:
    """What a job asked for; rows outside it are quarantined (rules timestamp.in_range, symbol.expected,
    instrument.expected). None = not checked. The range is [start, end) on the index timestamp (ts_recv
    where the schema has it, else ts_event), as Databento filters requests."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    symbols: frozenset[str] | None = None
    instrument_ids: frozenset[int] | None = None
    allow_nonpositive_prices: bool = False  # spreads and some statistics can trade at or below zero

    @classmethod
    def for_job(cls, job: Any) -> Expectation:
        """From a config.DatabentoJob: its date range and (for raw/continuous/parent symbols) its symbols."""
        symbols = frozenset(job.symbols) if job.stype_in in ("raw_symbol", "continuous", "parent") else None
        ids = frozenset(int(s) for s in job.symbols) if job.stype_in == "instrument_id" else None
        return cls(start=job.start, end=job.end, symbols=symbols, instrument_ids=ids)


def price_decimal(nanos: int | None) -> Decimal | None:
    """A 1e-9 fixed-point price as an exact Decimal (presentation only)."""
    return None if nanos is None else Decimal(nanos).scaleb(-9)


def _expect(info: ValidationInfo) -> Expectation:
    context = info.context or {}
    return context.get("expect") or Expectation()


def _mappings(info: ValidationInfo) -> Mappings:
    context = info.context or {}
    return context.get("mappings") or load_mappings()


class VendorRecord(BaseModel):
    """Fields and checks shared by every stored vendor record."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    family: ClassVar[str] = ""
    positive_prices: ClassVar[tuple[str, ...]] = ()
    enum_fields: ClassVar[dict[str, str]] = {}

    ts_event: AwareDatetime
    instrument_id: int = Field(ge=0, le=INT32_MAX)

    @property
    def index_ts(self) -> dt.datetime:
        return getattr(self, "ts_recv", None) or self.ts_event

    @model_validator(mode="after")
    def _common_rules(self, info: ValidationInfo) -> VendorRecord:
        for name in ("ts_event", "ts_recv"):
            value = getattr(self, name, None)
            if value is not None and not PLAUSIBLE_FROM <= value < PLAUSIBLE_TO:
                raise ValueError(f"timestamp.plausible: {name} {value.isoformat()} is outside 1990..2100")
        for name, enum in self.enum_fields.items():
            value = getattr(self, name)
            allowed = _mappings(info).enums[enum]
            if value is not None and value not in allowed:
                raise ValueError(f"{name}.valid: {value!r} is not one of {sorted(map(str, allowed))}")
        expect = _expect(info)
        if not expect.allow_nonpositive_prices:
            for name in self.positive_prices:
                value = getattr(self, name)
                if value is not None and value <= 0:
                    raise ValueError(f"price.positive: {name} {price_decimal(value)} is not > 0")
        ts = self.index_ts
        if expect.start is not None and ts < expect.start or expect.end is not None and ts >= expect.end:
            raise ValueError(
                f"timestamp.in_range: {ts.isoformat()} is outside [{expect.start}, {expect.end})"
            )
        if expect.instrument_ids is not None and self.instrument_id not in expect.instrument_ids:
            raise ValueError(f"instrument.expected: instrument_id {self.instrument_id} was not requested")
        return self


class OhlcvMsg(VendorRecord):
    """One OHLCV bar of ohlcv_data (any granularity)."""

    family: ClassVar[str] = "ohlcv"
    positive_prices: ClassVar[tuple[str, ...]] = ("open_price", "high_price", "low_price", "close_price")

    open_price: int
    high_price: int
    low_price: int
    close_price: int
    volume: int = Field(ge=0, le=INT64_MAX)
    trade_count: int | None = Field(default=None, ge=0)
    vwap: int | None = None
    granularity: str
    data_source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ohlc(self) -> OhlcvMsg:
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity.valid: {self.granularity!r} is not one of {GRANULARITIES}")
        if self.high_price < self.low_price:
            raise ValueError(
                f"ohlc.high_ge_low: high {price_decimal(self.high_price)} < "
                f"low {price_decimal(self.low_price)}"
            )
        if self.high_price < max(self.open_price, self.close_price):
            raise ValueError(
                f"ohlc.high_ge_open_close: high {price_decimal(self.high_price)} is below open "
                f"{price_decimal(self.open_price)} or close {price_decimal(self.close_price)}"
            )
        if self.low_price > min(self.open_price, self.close_price):
            raise ValueError(
                f"ohlc.low_le_open_close: low {price_decimal(self.low_price)} is above open "
                f"{price_decimal(self.open_price)} or close {price_decimal(self.close_price)}"
            )
        return self


class TradeMsg(VendorRecord):
    """One trade of trades_data."""

    family: ClassVar[str] = "trades"
    positive_prices: ClassVar[tuple[str, ...]] = ("price",)
    enum_fields: ClassVar[dict[str, str]] = {"action": "action", "side": "side"}

    ts_recv: AwareDatetime
    publisher_id: int = Field(ge=0, le=INT16_MAX)
    price: int
    size: int = Field(ge=0, le=INT32_MAX)
    action: str
    side: str
    flags: int = Field(ge=0, le=255)
    depth: int = Field(ge=0, le=255)
    sequence: int = Field(ge=0)
    ts_in_delta: int | None = None

    @model_validator(mode="after")
    def _size(self) -> TradeMsg:
        if self.size <= 0:
            raise ValueError(f"size.positive: size {self.size} is not > 0")
        return self


class TbboMsg(TradeMsg):
    """One trade with the best bid and offer just before it (tbbo_data)."""

    family: ClassVar[str] = "tbbo"
    positive_prices: ClassVar[tuple[str, ...]] = ("price", "bid_px_00", "ask_px_00")

    bid_px_00: int | None = None
    ask_px_00: int | None = None
    bid_sz_00: int | None = Field(default=None, ge=0)
    ask_sz_00: int | None = Field(default=None, ge=0)
    bid_ct_00: int | None = Field(default=None, ge=0)
    ask_ct_00: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bbo(self) -> TbboMsg:
        if self.bid_px_00 is not None and self.ask_px_00 is not None and self.bid_px_00 > self.ask_px_00:
            raise ValueError(
                f"bbo.bid_le_ask: bid {price_decimal(self.bid_px_00)} > ask {price_decimal(self.ask_px_00)}"
            )
        return self


class StatisticsMsg(VendorRecord):
    """One venue statistic of statistics_data (settlement, open interest, session high/low, ...)."""

    family: ClassVar[str] = "statistics"
    enum_fields: ClassVar[dict[str, str]] = {"stat_type": "stat_type", "update_action": "stat_update_action"}

    ts_recv: AwareDatetime
    ts_ref: AwareDatetime | None = None
    publisher_id: int = Field(ge=0, le=INT16_MAX)
    price: int | None = None
    quantity: int | None = None
    sequence: int = Field(ge=0)
    ts_in_delta: int
    stat_type: int
    channel_id: int = Field(ge=0, le=INT16_MAX)
    update_action: int
    stat_flags: int = Field(ge=0, le=255)

    @property
    def stat_type_name(self) -> str:
        return load_mappings().enums["stat_type"].get(self.stat_type, f"unknown_{self.stat_type}")

    @model_validator(mode="after")
    def _value(self, info: ValidationInfo) -> StatisticsMsg:
        deleted = self.update_action == 2
        if not deleted and self.price is None and self.quantity is None:
            raise ValueError(f"statistics.value_set: {self.stat_type_name} has neither price nor quantity")
        if self.quantity is not None and self.quantity < 0:
            raise ValueError(f"quantity.non_negative: quantity {self.quantity} < 0")
        price_types = _mappings(info).price_stat_types
        if (
            self.price is not None
            and self.stat_type in price_types
            and self.price <= 0
            and not _expect(info).allow_nonpositive_prices
        ):
            raise ValueError(f"price.positive: {self.stat_type_name} {price_decimal(self.price)} is not > 0")
        return self


class DefinitionMsg(VendorRecord):
    """One instrument definition (one leg) of definitions_data: DatabentoDefinitionRecord of story 2.4."""

    family: ClassVar[str] = "definition"
    positive_prices: ClassVar[tuple[str, ...]] = ("min_price_increment", "display_factor")
    enum_fields: ClassVar[dict[str, str]] = {
        "instrument_class": "instrument_class",
        "security_update_action": "security_update_action",
    }

    ts_recv: AwareDatetime
    rtype: int
    publisher_id: int = Field(ge=0, le=INT16_MAX)
    raw_symbol: str = Field(min_length=1, max_length=255)
    security_update_action: str
    instrument_class: str
    min_price_increment: int
    display_factor: int
    expiration: AwareDatetime | None = None  # UNDEF_TIMESTAMP (e.g. equities) is NULL
    activation: AwareDatetime | None = None
    high_limit_price: int
    low_limit_price: int
    max_price_variation: int
    unit_of_measure_qty: int | None = None
    min_price_increment_amount: int | None = None
    price_ratio: int | None = None
    inst_attrib_value: int
    underlying_id: int | None = None
    raw_instrument_id: int | None = None
    market_depth_implied: int
    market_depth: int
    market_segment_id: int
    max_trade_vol: int
    min_lot_size: int
    min_trade_vol: int
    channel_id: int
    currency: str = Field(max_length=4)
    security_group: str = Field(max_length=21)
    exchange: str = Field(max_length=5)
    asset: str = Field(max_length=11)
    strike_price: int | None = None
    strike_price_currency: str | None = None
    underlying: str | None = None
    maturity_year: int | None = None
    maturity_month: int | None = None
    leg_count: int = Field(ge=0)
    leg_index: int = Field(ge=0)

    @model_validator(mode="after")
    def _limits(self) -> DefinitionMsg:
        if self.high_limit_price < self.low_limit_price:
            raise ValueError(
                f"definition.limits_ordered: high_limit_price {price_decimal(self.high_limit_price)}"
                f" < low_limit_price {price_decimal(self.low_limit_price)}"
            )
        return self


DatabentoDefinitionRecord = DefinitionMsg  # the name story 2.4 gives it

MODELS: dict[str, type[VendorRecord]] = {
    "ohlcv": OhlcvMsg,
    "trades": TradeMsg,
    "tbbo": TbboMsg,
    "statistics": StatisticsMsg,
    "definition": DefinitionMsg,
}
_RULE_IN_MESSAGE = re.compile(r"^([a-z_0-9]+(?:\.[a-z_0-9]+)+): ")


def rule_of(error: dict[str, Any]) -> str:
    """The rule id of a Pydantic error: its `rule.id: ` prefix, else required.<field> or record.<field>."""
    msg = re.sub(r"^(Value error|Assertion failed), ", "", str(error.get("msg", "")))
    match = _RULE_IN_MESSAGE.match(msg)
    if match:
        return match.group(1)
    loc = error.get("loc") or ("record",)
    field = str(loc[0])
    if error.get("type") == "missing" or error.get("input", "") is None:
        return f"required.{field}"
    return f"record.{field}"


def explain(error: dict[str, Any]) -> str:
    msg = re.sub(r"^(Value error|Assertion failed), ", "", str(error.get("msg", "")))
    loc = error.get("loc") or ()
    if _RULE_IN_MESSAGE.match(msg) or not loc:
        return msg
    if error.get("input", "") is None:
        return f"{loc[0]}: no value (NULL or the DBN sentinel)"
    return f"{loc[0]}: {msg} (got {error.get('input')!r})"


def check_record(
    family: str, row: dict[str, Any], expect: Expectation | None = None, mappings: Mappings | None = None
) -> tuple[str, str] | None:
    """(rule, message) for a record its model rejects, None when it is valid."""
    model = MODELS[family]
    try:
        model.model_validate(row, context={"expect": expect or Expectation(), "mappings": mappings})
    except ValidationError as exc:
        first = exc.errors()[0]
        return rule_of(first), f"{model.__name__}: {explain(first)}"
    return None


def check_records(
    family: str, table: pa.Table, expect: Expectation | None = None, mappings: Mappings | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate every row through its model (low-volume schemas only): (failed mask, rules, messages)."""
    n = table.num_rows
    failed = np.zeros(n, dtype=bool)
    rules = np.full(n, None, dtype=object)
    messages = np.full(n, None, dtype=object)
    for i, row in enumerate(table.to_pylist()):  # statistics / definitions: small by nature
        result = check_record(family, row, expect, mappings)
        if result is not None:
            failed[i] = True
            rules[i], messages[i] = result
    return failed, rules, messages
