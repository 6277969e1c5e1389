"""Case records: one pydantic model per kind (RULES.md "Kinds and their fields"), joined by ``kind``.

Everything downstream (measures, both executors, reports) trusts these models, so the checks that make a
number meaningful live here, once: time zones are settled (every time is Asia/Shanghai, SPEC "Time
semantics"), dates outside the working-day calendar are refused instead of guessed, money is an exact
``Decimal`` in fen, and an end before its start is an error at the end's own JSON path.

Validation collects every problem of a record in one pass (pydantic does the collecting), and
``validate_case`` turns pydantic's locations into the JSON paths users see (``pauses[1].end``).
"""

from __future__ import annotations

import functools
import math
import os
import re
import reprlib
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.domain import SHANGHAI, PauseReason
from engine.errors import CaseError, InvalidCase, json_path
from engine.resources import ENV_DATA, year_file

__all__ = [
    "CASE_MODELS",
    "MAX_DEPTH",
    "MAX_MONEY",
    "Approval",
    "BankruptcyCase",
    "Case",
    "CaseBase",
    "CccExemption",
    "CompanyStartup",
    "ConstructionProject",
    "CustomsDeclaration",
    "Deregistration",
    "Exemption",
    "GasConnection",
    "InternalWorks",
    "Loan",
    "Pause",
    "PowerConnection",
    "ProcurementContract",
    "PropertyRegistration",
    "ServiceReview",
    "Timestamp",
    "WaterConnection",
    "calendar_bounds",
    "case_adapter",
    "case_json_schema",
    "field_type",
    "leaf_types",
    "local_date",
    "shown",
    "shown_error",
    "shown_id",
    "to_fen",
    "validate_case",
]

# ---------------------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------------------

# Per data directory (``CASECHECK_DATA``), whose year files may extend the calendar.
_calendar_bounds: dict[str | None, tuple[date, date]] = {}


def calendar_bounds() -> tuple[date, date]:
    """First and last day of the working-day calendar in force, loaded on first use.

    Loaded lazily so that importing the models (e.g. for the JSON Schema) does not read calendar data,
    and cached in a module global because it is consulted for every timestamp of every case.
    """
    key = os.environ.get(ENV_DATA)
    bounds = _calendar_bounds.get(key)
    if bounds is None:
        from engine.calendar import load_calendar

        cal = load_calendar()
        bounds = _calendar_bounds[key] = (cal.first, cal.last)
    return bounds


# The text forms a field takes: one definition for the models, the column checks (``engine.ingest``) and
# the exported JSON Schema. The models accept text of the form and then apply their bounds; the schema's
# patterns (``*_SCHEMA_TEXT``) are the form and the bound in one, so that a JSON Schema validator accepts
# exactly what the models do. Only what a pattern cannot say is left to the models' own checks: a day
# that does not exist (2026-02-30), a year outside the calendar, a fraction of a fen in a JSON number.
TIMESTAMP_TEXT = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)
TIMESTAMP_SCHEMA_TEXT = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?$"
)
NUMBER_TEXT = r"^-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"
INTEGER_TEXT = r"^-?[0-9]+(?:\.0+)?$"
MONEY_TEXT = r"^-?[0-9]+(?:\.[0-9]+)?$"
TIMESTAMP_FORM = re.compile(TIMESTAMP_TEXT)
# Negative zero ("-0", "-0.0") is not negative: the models take it, so the schema does too.
NON_NEGATIVE_NUMBER_SCHEMA_TEXT = r"^(?:[0-9]+(?:\.[0-9]+)?|-0+(?:\.0+)?)(?:[eE][+-]?[0-9]+)?$"
NON_NEGATIVE_INTEGER_SCHEMA_TEXT = r"^(?:[0-9]+|-0+)(?:\.0+)?$"
POSITIVE_INTEGER_SCHEMA_TEXT = r"^0*[1-9][0-9]*(?:\.0+)?$"
# At most 13 digits before the point (after leading zeros): the models' MAX_MONEY.
MONEY_SCHEMA_TEXT = r"^(?:0*[0-9]{1,13}(?:\.[0-9]{1,2}0*)?|-0+(?:\.0+)?)$"
POSITIVE_MONEY_SCHEMA_TEXT = r"^(?=[0-9.]*[1-9])0*[0-9]{1,13}(?:\.[0-9]{1,2}0*)?$"


def _in_calendar(value: date | datetime) -> date | datetime:
    """Refuse a date the calendar cannot judge: SPEC says an uncovered year is an error, never a guess."""
    day = value.date() if isinstance(value, datetime) else value
    first, last = calendar_bounds()
    if not first <= day <= last:
        raise PydanticCustomError(
            "year_not_covered",
            "year {year} is outside the working-day calendar ({first}–{last}); "
            "add its State Council holiday notice as {file}",
            {"year": day.year, "first": first.year, "last": last.year, "file": year_file(day.year)},
        )
    return value


def _parse_timestamp(value: Any) -> date | datetime:
    """ISO 8601 string, ``date`` or ``datetime`` → a ``date`` or an aware Asia/Shanghai ``datetime``.

    A date alone stays a date: day-granularity rules must not invent a time of day for it. A time with an
    offset is converted to UTC+8 and a naive one is read as UTC+8, so every later comparison and every
    local date is taken in the one zone the standards are written for.
    """
    if isinstance(value, str):
        text = value
        if not TIMESTAMP_FORM.match(text):
            raise PydanticCustomError(
                "timestamp_parsing",
                "must be an ISO 8601 date or timestamp (2026-03-02, 2026-03-02T09:30:00+08:00), got {input}",
                {"input": repr(value)},
            )
        try:
            if "T" in text or "t" in text or " " in text:
                parsed: date | datetime = datetime.fromisoformat(text)
            else:
                parsed = date.fromisoformat(text)
        except ValueError as exc:
            raise PydanticCustomError(
                "timestamp_parsing",
                "must be an ISO 8601 date or timestamp, got {input} ({reason})",
                {"input": shown(value), "reason": str(exc).split(": ")[0]},
            ) from None
    elif isinstance(value, date):
        parsed = value
    else:
        raise PydanticCustomError(
            "timestamp_type",
            "must be an ISO 8601 date or timestamp string, got {type}",
            {"type": type(value).__name__},
        )
    if isinstance(parsed, datetime):
        if parsed.tzinfo is None:
            # combine() attaches the zone ~4x faster than replace(tzinfo=…), which matters per timestamp.
            parsed = datetime.combine(parsed, parsed.time(), SHANGHAI)
        else:
            parsed = parsed.astimezone(SHANGHAI)
    return _in_calendar(parsed)


def _serialize_timestamp(value: date | datetime, info: SerializationInfo) -> date | datetime | str:
    """ISO 8601 in JSON (a datetime keeps its +08:00 offset); the objects themselves in Python mode."""
    return value.isoformat() if info.mode_is_json() else value


Timestamp = Annotated[
    date | datetime,
    PlainValidator(_parse_timestamp),
    PlainSerializer(_serialize_timestamp),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": TIMESTAMP_SCHEMA_TEXT,
            "description": (
                "ISO 8601 date (2026-03-02) or timestamp (2026-03-02T09:30:00+08:00). Without an offset a "
                "timestamp is Asia/Shanghai time; with one it is converted to Asia/Shanghai. Must be a real "
                "day (not 2026-02-30) in a year covered by the working-day calendar."
            ),
        }
    ),
]
"""Every date/time field: a ``date`` (date alone) or an aware ``datetime`` in Asia/Shanghai."""


def local_date(t: date | datetime) -> date:
    """The Asia/Shanghai calendar date of ``t``: what day-granularity rules count from."""
    if isinstance(t, datetime):
        return t.astimezone(SHANGHAI).date() if t.tzinfo is not None else t.date()
    return t


def _is_before(end: date | datetime, start: date | datetime) -> bool:
    """SPEC: instants when both sides carry a time, local dates when either is a date alone."""
    if isinstance(end, datetime) and isinstance(start, datetime):
        return end < start
    return local_date(end) < local_date(start)


def _not_before(start_field: str, label: str | None = None) -> AfterValidator:
    """Validator for an end field: it must not be earlier than ``start_field`` of the same object.

    Done as a field validator (reading the already validated start from ``info.data``) rather than a
    model validator, so the error sits at the end's own path and is reported together with every other
    problem of the record; a model validator would only run once all fields were valid.
    """
    name = label or start_field

    def check(value: date | datetime | None, info: ValidationInfo) -> date | datetime | None:
        if value is None:
            return None
        start = info.data.get(start_field)
        if start is not None and _is_before(value, start):
            raise PydanticCustomError(
                "end_before_start",
                "must not be earlier than {start_field} ({start})",
                {"start_field": name, "start": start.isoformat()},
            )
        return value

    check.start_field = start_field  # type: ignore[attr-defined]  # read by the column checks (ingest)
    return AfterValidator(check)


# ---------------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------------


def _numeric(pattern: str, parsing: str) -> BeforeValidator:
    """Refuse true/false (pydantic's lax mode reads ``true`` as 1: for a length, a count or an amount that
    is a wrong type), and text not of ``pattern`` (lax mode also takes " 3", "+3", "1_000")."""
    form = re.compile(pattern)

    def check(value: Any) -> Any:
        cls = value.__class__
        if cls is bool:
            raise PydanticCustomError("number_type", "must be a number, not true/false")
        if cls is str and not form.match(value):
            raise PydanticCustomError(parsing, _MESSAGES[parsing])
        return value

    return BeforeValidator(check)


def _finite_number(value: Any) -> Any:
    """Refuse NaN/inf (also as strings) before the bound check would misreport them as negative."""
    number = value
    if value.__class__ is str:
        try:
            number = float(value)
        except ValueError:
            return value  # ``_numeric`` words it
    if number.__class__ is float and not math.isfinite(number):
        raise PydanticCustomError("finite_number", "must be a finite number")
    return value


def _whole_fen(value: Decimal) -> Decimal:
    """At most 2 decimal places once trailing zeros are ignored ("1.230" is 1.23 yuan, "1.234" is not)."""
    if to_fen_or_none(value) is None:
        raise PydanticCustomError("decimal_max_places", "must have at most 2 decimal places (fen)")
    return value


def _number_schema(
    json_type: str, text: str, description: str | None = None, **bound: float
) -> WithJsonSchema:
    """A JSON number (or integer) within the bound, or text of the form the models accept."""
    schema: dict[str, Any] = {"anyOf": [{"type": json_type, **bound}, {"type": "string", "pattern": text}]}
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)


# Lengths, areas, flows, capacities: finite, ≥ 0; numeric strings accepted (systems export both).
# Before-validators run last-listed first: finiteness (so "NaN" reads as such), the text form, the bound.
NonNegativeFloat = Annotated[
    float,
    _numeric(NUMBER_TEXT, "float_parsing"),
    BeforeValidator(_finite_number),
    Field(ge=0, allow_inf_nan=False),
    _number_schema("number", NON_NEGATIVE_NUMBER_SCHEMA_TEXT, minimum=0),
]
PositiveInt = Annotated[
    int,
    _numeric(INTEGER_TEXT, "int_parsing"),
    Field(ge=1),
    _number_schema("integer", POSITIVE_INTEGER_SCHEMA_TEXT, minimum=1),
]
NonNegativeInt = Annotated[
    int,
    _numeric(INTEGER_TEXT, "int_parsing"),
    Field(ge=0),
    _number_schema("integer", NON_NEGATIVE_INTEGER_SCHEMA_TEXT, minimum=0),
]
# CNY amounts: exact decimals so that 5 % and 30 % thresholds compare exactly, in whole fen. The upper
# bound keeps every amount's fen inside int64 (the batches' columns) with room to add amounts up: no real
# contract comes near ten trillion yuan, and 1e17 yuan once overflowed a whole batch.
MAX_MONEY = Decimal("9999999999999.99")
_CNY = "CNY; a JSON number or numeric string with at most 2 decimal places (fen), at most 9999999999999.99"
Money = Annotated[
    Decimal,
    _numeric(MONEY_TEXT, "decimal_parsing"),
    BeforeValidator(_finite_number),
    Field(ge=0, le=MAX_MONEY, allow_inf_nan=False),
    AfterValidator(_whole_fen),
    _number_schema("number", MONEY_SCHEMA_TEXT, _CNY, minimum=0, maximum=float(MAX_MONEY)),
]
PositiveMoney = Annotated[
    Decimal,
    _numeric(MONEY_TEXT, "decimal_parsing"),
    BeforeValidator(_finite_number),
    Field(gt=0, le=MAX_MONEY, allow_inf_nan=False),
    AfterValidator(_whole_fen),
    _number_schema("number", POSITIVE_MONEY_SCHEMA_TEXT, _CNY, exclusiveMinimum=0, maximum=float(MAX_MONEY)),
]
# pydantic's lax booleans: true/false, 0/1, and these words in any case.
_FLAG_WORDS = ("true", "false", "yes", "no", "on", "off", "t", "f", "y", "n", "1", "0")
_FLAG_TEXT = (
    "^(?:"
    + "|".join("".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in w) for w in _FLAG_WORDS)
    + ")$"
)
Flag = Annotated[
    bool,
    WithJsonSchema(
        {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}, {"type": "string", "pattern": _FLAG_TEXT}]}
    ),
]


def to_fen_or_none(amount: Decimal) -> int | None:
    """Whole fen of ``amount``, or None when it is not finite or has a fraction of a fen."""
    if not amount.is_finite():
        return None
    fen = amount.scaleb(2)
    if fen != fen.to_integral_value():
        return None
    return int(fen)


def to_fen(amount: Decimal) -> int:
    """An amount in CNY as integer fen (分), so ratios such as 5 % of a contract compare exactly."""
    fen = to_fen_or_none(amount)
    if fen is None:
        raise ValueError(f"{amount} is not a whole number of fen")
    return fen


# ---------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------

NonEmpty = Annotated[str, Field(min_length=1)]
CASE_ID_MAX = 128
OptionalTimestamp = Timestamp | None


# Deepest nesting an unknown field may have: the verdict log re-serialises each record to hash it, and
# orjson writes at most 254 levels, so a deeper record once answered 500 instead of an error.
MAX_DEPTH = 64


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests objects/arrays more than ``limit`` levels deep (iteratively: a
    recursive walk of 1,000 levels would itself hit Python's recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for inner in item.values() if isinstance(item, dict) else item:
            if isinstance(inner, dict | list):
                stack.append((inner, depth + 1))
    return False


class _Record(BaseModel):
    """Unknown fields are kept (they round-trip) but no rule reads them: exporting systems add their own."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _shallow_extras(self) -> _Record:
        """Only unknown fields can hold arbitrary nesting (known ones have the models' shapes)."""
        for name, value in (self.__pydantic_extra__ or {}).items():
            if isinstance(value, dict | list) and _depth_exceeds(value, MAX_DEPTH):
                raise PydanticCustomError(
                    "too_deep",
                    "unknown field {field} is nested more than {limit} levels deep",
                    {"field": shown(name), "limit": MAX_DEPTH},
                )
        return self


class Pause(_Record):
    """A clock stop (暂停计时); only reasons a rule names are excluded, ``other`` never is."""

    reason: PauseReason
    start: Timestamp
    end: Annotated[OptionalTimestamp, _not_before("start")] = None


class Exemption(_Record):
    """A documented exception for an exemptible rule (原则上/一般应); the reason is echoed in the verdict."""

    rule: str
    reason: NonEmpty


class Approval(_Record):
    """External-works approval: commitment filing (承诺备案) or administrative approval (行政审批)."""

    mode: Literal["commitment_filing", "administrative_approval"]
    submitted_at: Timestamp
    approved_at: Annotated[OptionalTimestamp, _not_before("submitted_at")] = None


class InternalWorks(_Record):
    """Gas internal works (内线施工) from start to acceptance (验收合格), task (32)."""

    started_at: Timestamp
    accepted_at: Annotated[OptionalTimestamp, _not_before("started_at")] = None


class CaseBase(_Record):
    """Fields every kind carries (SPEC "Case records")."""

    case_id: Annotated[str, Field(min_length=1, max_length=CASE_ID_MAX)]
    kind: str  # narrowed to one Literal per kind; declared here so that dumps read case_id, kind, …
    district: str | None = None
    department: str | None = None
    channel: Literal["online", "mobile", "window"] | None = None
    # default_factory, not ``= []``: pydantic deep-copies a mutable default on every record.
    pauses: list[Pause] = Field(default_factory=list)
    exemptions: list[Exemption] = Field(default_factory=list)


class _WaterOrGas(CaseBase):
    """The fields water and gas connections share (RULES.md: gas is "as water, plus …")."""

    customer_type: Literal["non_residential", "residential"]
    applied_at: Timestamp
    connected_at: Annotated[OptionalTimestamp, _not_before("applied_at")] = None
    external_works_m: NonNegativeFloat
    special_project: Flag = False
    approval: Approval | None = None
    steps: PositiveInt
    materials: NonNegativeInt


class WaterConnection(_WaterOrGas):
    """用水报装, tasks (29)–(31)."""

    kind: Literal["water_connection"]


class GasConnection(_WaterOrGas):
    """用气报装, tasks (29)–(32): water's fields plus the flow and the internal works."""

    kind: Literal["gas_connection"]
    max_flow_m3h: NonNegativeFloat | None = None
    internal_works: InternalWorks | None = None


class PowerConnection(CaseBase):
    """用电报装, tasks (25)–(28)."""

    kind: Literal["power_connection"]
    voltage: Literal["low", "high"]
    capacity_kva: NonNegativeFloat | None = None
    capacity_kw: NonNegativeFloat | None = None
    applied_at: Timestamp
    connected_at: Annotated[OptionalTimestamp, _not_before("applied_at")] = None
    external_works_m: NonNegativeFloat
    special_project: Flag = False
    approval: Approval | None = None
    steps: PositiveInt


class ProcurementContract(CaseBase):
    """政府采购合同, tasks (16)–(19)."""

    kind: Literal["procurement_contract"]
    procurement_method: Literal["tender", "non_tender"]
    category: Literal["goods", "services", "works"]
    contract_amount: PositiveMoney
    bid_deposit: Money
    performance_bond: Money
    performance_period_days: NonNegativeInt
    advance_payment: Money
    contract_effective_at: Timestamp
    ready_at: Annotated[OptionalTimestamp, _not_before("contract_effective_at")] = None
    advance_paid_at: Annotated[OptionalTimestamp, _not_before("contract_effective_at")] = None
    electronic: Flag
    documents_fee: Money


class Deregistration(CaseBase):
    """企业注销, task (51)."""

    kind: Literal["deregistration"]
    procedure: Literal["simplified", "general"]
    entity_type: Literal[
        "company",
        "non_company_legal_person",
        "sole_proprietorship",
        "farmer_cooperative",
        "branch",
        "individual_business",
    ]
    commitment: Flag
    notice_start: OptionalTimestamp = None
    applied_at: Timestamp
    deregistered_at: Annotated[OptionalTimestamp, _not_before("applied_at")] = None


class CompanyStartup(CaseBase):
    """企业开办, tasks (20)–(23)."""

    kind: Literal["company_startup"]
    applied_at: Timestamp
    completed_at: Annotated[OptionalTimestamp, _not_before("applied_at")] = None
    steps: PositiveInt
    fees: Money


class ConstructionProject(CaseBase):
    """一般企业投资项目, tasks (33)–(34)."""

    kind: Literal["construction_project"]
    project_type: Literal["general_enterprise_investment", "other"]
    use: Literal["industrial", "warehouse", "other"]
    floor_area_m2: NonNegativeFloat | None = None
    civil_air_defense_fee: Money
    code_assigned_at: Timestamp
    completion_accepted_at: Annotated[OptionalTimestamp, _not_before("code_assigned_at")] = None


class PropertyRegistration(CaseBase):
    """不动产登记, task (43)."""

    kind: Literal["property_registration"]
    registration_type: Literal["non_residential_transfer", "other"]
    object_unchanged: Flag
    applied_at: Timestamp
    completed_at: Annotated[OptionalTimestamp, _not_before("applied_at")] = None
    steps: PositiveInt


class Loan(CaseBase):
    """获得信贷, task (52)."""

    kind: Literal["loan"]
    applied_at: Timestamp
    decided_at: Annotated[OptionalTimestamp, _not_before("applied_at")] = None
    steps: PositiveInt
    materials: NonNegativeInt


class CccExemption(CaseBase):
    """进口产品强制性认证免办, task (55)."""

    kind: Literal["ccc_exemption"]
    applied_at: Timestamp
    concluded_at: Annotated[OptionalTimestamp, _not_before("applied_at")] = None
    urgent: Flag


class CustomsDeclaration(CaseBase):
    """报关, task (55)."""

    kind: Literal["customs_declaration"]
    direction: Literal["import", "export"]
    advance_declared: Flag
    declared_at: Timestamp


class BankruptcyCase(CaseBase):
    """破产案件, task (85)."""

    kind: Literal["bankruptcy_case"]
    procedure: Literal["simplified", "no_asset", "ordinary"]
    accepted_at: Timestamp
    concluded_at: Annotated[OptionalTimestamp, _not_before("accepted_at")] = None


class ServiceReview(CaseBase):
    """好差评, task (12)."""

    kind: Literal["service_review"]
    rating: Literal["positive", "neutral", "negative"]
    reviewed_at: Timestamp
    revisited: Flag
    rectified: Flag


Case = Annotated[
    WaterConnection
    | GasConnection
    | PowerConnection
    | ProcurementContract
    | Deregistration
    | CompanyStartup
    | ConstructionProject
    | PropertyRegistration
    | Loan
    | CccExemption
    | CustomsDeclaration
    | BankruptcyCase
    | ServiceReview,
    Field(discriminator="kind"),
]
"""Any case record; pydantic picks the model from ``kind`` without trying the others."""

CASE_MODELS: dict[str, type[CaseBase]] = {
    model.model_fields["kind"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        WaterConnection,
        GasConnection,
        PowerConnection,
        ProcurementContract,
        Deregistration,
        CompanyStartup,
        ConstructionProject,
        PropertyRegistration,
        Loan,
        CccExemption,
        CustomsDeclaration,
        BankruptcyCase,
        ServiceReview,
    )
}

case_adapter: TypeAdapter[Any] = TypeAdapter(Case)


def leaf_types(annotation: Any) -> list[Any]:
    """The types a field annotation admits, in declaration order: ``Annotated`` unwrapped, unions
    flattened (``None`` included as ``NoneType``). Readers of the models (column layouts, column checks)
    decide a field's form from these."""
    if typing.get_origin(annotation) is typing.Annotated:
        return leaf_types(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [leaf for arg in typing.get_args(annotation) for leaf in leaf_types(arg)]
    return [annotation]


# ---------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------


# Values echoed in messages are cut here, once: a 10 MB case_id must not make a 10 MB error line.
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlevel, _SHOWN.maxdict, _SHOWN.maxlist = 2, 4, 4


def shown(value: Any) -> str:
    """``repr(value)``, cut to about 60 characters per string and two levels of nesting."""
    return _SHOWN.repr(value)


def shown_id(value: Any) -> Any:
    """A record's case_id as echoed next to its errors: as given when it could be a valid id, else cut."""
    if isinstance(value, str) and len(value) <= CASE_ID_MAX:
        return value
    return None if value is None else shown(value)


def _json_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's location → JSON path, without the union's tag segment (the kind name)."""
    if loc and isinstance(loc[0], str) and loc[0] in CASE_MODELS:
        loc = loc[1:]
    return json_path(loc)


def _choices(expected: str) -> str:
    """pydantic's "'a', 'b' or 'c'" → "a, b, c"."""
    return expected.replace("' or '", ", ").replace("'", "")


_VALID_KINDS = ", ".join(CASE_MODELS)

# Short plain-English messages for the error types a case record meets; others keep pydantic's text.
_MESSAGES: dict[str, str] = {
    "missing": "required field is missing",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "decimal_type": "must be a number",
    "decimal_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}


def _message(error: Any) -> tuple[str, str]:
    """(path, message) for one pydantic error dict."""
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    path = _json_path(loc)
    if kind == "union_tag_invalid":
        return "kind", f"unknown kind {shown(ctx.get('tag'))}; valid kinds: {_VALID_KINDS}"
    if kind == "union_tag_not_found":
        return "kind", f"required field is missing; valid kinds: {_VALID_KINDS}"
    if kind in ("model_attributes_type", "model_type", "dict_type") and path == "$":
        return "$", "a case must be a JSON object"
    if kind == "literal_error":
        return path, f"{shown(error['input'])} is not one of: {_choices(ctx.get('expected', ''))}"
    if kind == "less_than_equal":
        # pydantic gives a Decimal bound as its repr ("Decimal('9999999999999.99')").
        bound = re.sub(r"^Decimal\('(.*)'\)$", r"\1", str(ctx.get("le")))
        return path, f"must be at most {bound}"
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        if kind == "greater_than_equal" and bound == 0:
            return path, "must not be negative"
        if kind == "greater_than" and bound == 0:
            return path, "must be greater than 0"
        return path, f"must be {'≥' if kind == 'greater_than_equal' else '>'} {bound}"
    template = _MESSAGES.get(kind)
    if template is None:
        return path, error["msg"]
    return path, template.format(**ctx)


def validate_case(obj: Any) -> Case:
    """A parsed JSON value → the case model of its kind, or ``InvalidCase`` listing every problem.

    Any other exception a validator raises on some odd input becomes this record's error too, so that
    one record never stops the batch or scan it is in.
    """
    try:
        return case_adapter.validate_python(obj)
    except ValidationError as exc:
        errors = [CaseError(*_message(e)) for e in exc.errors(include_url=False)]
        raise InvalidCase(errors) from None
    except Exception as exc:
        raise InvalidCase([CaseError("$", f"could not be validated: {shown_error(exc)}")]) from None


def shown_error(exc: BaseException) -> str:
    """An unexpected exception as one short line: its type and its (cut) message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200] + '…' if len(text) > 200 else text}"


def case_json_schema(kind: str | None = None) -> dict[str, Any]:
    """JSON Schema of one kind's record, or of any record (the union on ``kind``) when ``kind`` is None."""
    if kind is None:
        return case_adapter.json_schema()
    model = CASE_MODELS.get(kind)
    if model is None:
        raise ValueError(f"unknown kind {kind!r}; valid kinds: {_VALID_KINDS}")
    return model.model_json_schema()


@functools.cache
def field_type(kind: str, path: str) -> str:
    """``date``, ``money``, ``number`` or ``other``: read from the case model, since a column whose
    values are all absent still needs its dtype."""
    model: Any = CASE_MODELS[kind]
    leaves: list[Any] = []
    for part in path.split("."):
        info = model.model_fields.get(part)
        if info is None:
            return "other"
        leaves = leaf_types(info.annotation)
        model = next((t for t in leaves if isinstance(t, type) and issubclass(t, BaseModel)), None)
    if date in leaves or datetime in leaves:
        return "date"
    if Decimal in leaves:
        return "money"
    if float in leaves or int in leaves:
        return "number"
    return "other"
