"""The values of case fields, checked once, and what is said of one that is wrong: timestamps settled in Asia/Shanghai (SPEC "Time semantics")
and refused outside the working-day calendar instead of guessed, numbers and exact money in fen, flags.
The case models (``engine.cases``) are built from these types."""

from __future__ import annotations

import math
import os
import re
import reprlib
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from engine.domain import SHANGHAI
from engine.resources import ENV_DATA, year_file

__all__ = [
    "MAX_MONEY",
    "NUMBER_TEXT",
    "TIMESTAMP_TEXT",
    "VALUE_MESSAGES",
    "Flag",
    "Money",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveInt",
    "PositiveMoney",
    "Timestamp",
    "calendar_bounds",
    "local_date",
    "not_before",
    "shown",
    "to_fen",
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


def not_before(start_field: str, label: str | None = None) -> AfterValidator:
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
            raise PydanticCustomError(parsing, VALUE_MESSAGES[parsing])
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


# Values echoed in messages are cut here, once: a 10 MB case_id must not make a 10 MB error line.
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlevel, _SHOWN.maxdict, _SHOWN.maxlist = 2, 4, 4


def shown(value: Any) -> str:
    """``repr(value)``, cut to about 60 characters per string and two levels of nesting."""
    return _SHOWN.repr(value)


# What is said of a value pydantic refuses, by its error type.
VALUE_MESSAGES: dict[str, str] = {
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
