"""Case records: what parses, what is refused and at which JSON path, and how times are settled.

The paths and messages are a public contract (CLI stderr, ``errors.jsonl``, HTTP 422), so the tests pin
them; the time-zone cases pin SPEC "Time semantics", which every measure downstream relies on.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cases import (
    CASE_MODELS,
    ProcurementContract,
    WaterConnection,
    case_adapter,
    case_json_schema,
    validate_case,
)
from engine.domain import SHANGHAI
from engine.errors import CaseError, InvalidCase
from engine.values import local_date, to_fen

# One minimal valid record per kind; tests copy and break them.
VALID: dict[str, dict[str, Any]] = {
    "water_connection": {
        "case_id": "W-2026-0001",
        "kind": "water_connection",
        "customer_type": "non_residential",
        "applied_at": "2026-03-02T09:00:00+08:00",
        "connected_at": "2026-03-04T16:30:00",
        "external_works_m": 0,
        "steps": 2,
        "materials": 1,
    },
    "gas_connection": {
        "case_id": "G-1",
        "kind": "gas_connection",
        "customer_type": "non_residential",
        "applied_at": "2026-03-02",
        "external_works_m": 120.5,
        "steps": 2,
        "materials": 1,
        "max_flow_m3h": 35,
        "internal_works": {"started_at": "2026-03-03", "accepted_at": "2026-03-10"},
        "approval": {"mode": "commitment_filing", "submitted_at": "2026-03-02"},
    },
    "power_connection": {
        "case_id": "P-1",
        "kind": "power_connection",
        "voltage": "high",
        "capacity_kva": 630,
        "capacity_kw": 500,
        "applied_at": "2026-03-02",
        "connected_at": "2026-03-20",
        "external_works_m": 200,
        "approval": {
            "mode": "administrative_approval",
            "submitted_at": "2026-03-03",
            "approved_at": "2026-03-06",
        },
        "steps": 3,
    },
    "procurement_contract": {
        "case_id": "PC-1",
        "kind": "procurement_contract",
        "procurement_method": "tender",
        "category": "works",
        "contract_amount": 1000000,
        "bid_deposit": 0,
        "performance_bond": 50000,
        "performance_period_days": 90,
        "advance_payment": 300000,
        "contract_effective_at": "2026-03-02",
        "ready_at": "2026-03-05",
        "advance_paid_at": "2026-03-12",
        "electronic": True,
        "documents_fee": 0,
    },
    "deregistration": {
        "case_id": "D-1",
        "kind": "deregistration",
        "procedure": "simplified",
        "entity_type": "company",
        "commitment": False,
        "notice_start": "2026-02-01",
        "applied_at": "2026-03-02",
        "deregistered_at": "2026-03-03",
    },
    "company_startup": {
        "case_id": "S-1",
        "kind": "company_startup",
        "applied_at": "2026-03-02T10:00:00+08:00",
        "completed_at": "2026-03-02T15:00:00+08:00",
        "steps": 1,
        "fees": 0,
        "channel": "online",
    },
    "construction_project": {
        "case_id": "C-1",
        "kind": "construction_project",
        "project_type": "general_enterprise_investment",
        "use": "industrial",
        "floor_area_m2": 4200,
        "civil_air_defense_fee": 0,
        "code_assigned_at": "2026-01-05",
        "completion_accepted_at": "2026-03-20",
    },
    "property_registration": {
        "case_id": "R-1",
        "kind": "property_registration",
        "registration_type": "non_residential_transfer",
        "object_unchanged": True,
        "applied_at": "2026-03-02",
        "completed_at": "2026-03-02",
        "steps": 1,
    },
    "loan": {
        "case_id": "L-1",
        "kind": "loan",
        "applied_at": "2026-03-02",
        "decided_at": "2026-03-04",
        "steps": 2,
        "materials": 3,
    },
    "ccc_exemption": {
        "case_id": "CCC-1",
        "kind": "ccc_exemption",
        "applied_at": "2026-03-02",
        "concluded_at": "2026-03-03",
        "urgent": False,
    },
    "customs_declaration": {
        "case_id": "CD-1",
        "kind": "customs_declaration",
        "direction": "import",
        "advance_declared": True,
        "declared_at": "2026-03-02T08:00:00+08:00",
    },
    "bankruptcy_case": {
        "case_id": "B-1",
        "kind": "bankruptcy_case",
        "procedure": "simplified",
        "accepted_at": "2026-01-05",
        "concluded_at": "2026-06-30",
    },
    "service_review": {
        "case_id": "SR-1",
        "kind": "service_review",
        "rating": "negative",
        "reviewed_at": "2026-03-02",
        "revisited": True,
        "rectified": False,
    },
}


def case(kind: str = "water_connection", **changes: Any) -> dict[str, Any]:
    """A valid record of ``kind`` with ``changes`` applied (a value of ``...`` deletes the field)."""
    record = copy.deepcopy(VALID[kind])
    for key, value in changes.items():
        if value is ...:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def errors_of(record: Any) -> list[CaseError]:
    with pytest.raises(InvalidCase) as info:
        validate_case(record)
    assert info.value.errors, "InvalidCase without errors"
    return info.value.errors


def paths_of(record: Any) -> list[str]:
    return [e.path for e in errors_of(record)]


# --- valid records ----------------------------------------------------------------------------------------


def test_every_kind_has_a_model_and_a_sample() -> None:
    assert set(CASE_MODELS) == set(VALID)
    assert len(CASE_MODELS) == 13


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_record_of_each_kind_parses(kind: str) -> None:
    parsed = validate_case(case(kind))
    assert type(parsed) is CASE_MODELS[kind]
    assert parsed.kind == kind
    assert parsed.pauses == [] and parsed.exemptions == []


def test_valid_water_case_fields() -> None:
    record = case(
        pauses=[{"reason": "user_internal_works", "start": "2026-03-02", "end": "2026-03-03"}],
        exemptions=[{"rule": "water.steps", "reason": "批准的例外"}],
        district="海曙区",
        channel="mobile",
    )
    parsed = validate_case(record)
    assert isinstance(parsed, WaterConnection)
    assert parsed.applied_at == datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
    assert parsed.connected_at == datetime(2026, 3, 4, 16, 30, tzinfo=SHANGHAI)
    assert parsed.special_project is False
    assert parsed.approval is None
    assert parsed.pauses[0].reason == "user_internal_works"
    assert parsed.pauses[0].end == date(2026, 3, 3)
    assert parsed.exemptions[0].rule == "water.steps"
    assert parsed.district == "海曙区"


def test_numeric_strings_are_accepted() -> None:
    parsed = validate_case(case(external_works_m="150", steps="2", materials="0"))
    assert parsed.external_works_m == 150.0
    assert parsed.steps == 2 and parsed.materials == 0
    money = validate_case(
        case(
            "procurement_contract", contract_amount="1000000.00", advance_payment="299999.99", bid_deposit="0"
        )
    )
    assert isinstance(money, ProcurementContract)
    assert money.contract_amount == Decimal("1000000")
    assert money.advance_payment == Decimal("299999.99")


def test_money_is_exact_in_fen() -> None:
    # 299999.99 arrives as a JSON float; it must compare exactly below 30 % of 1,000,000.
    raw = orjson.dumps(case("procurement_contract", advance_payment=299999.99))
    parsed = validate_case(orjson.loads(raw))
    assert isinstance(parsed.advance_payment, Decimal)
    assert parsed.advance_payment == Decimal("299999.99")
    assert parsed.advance_payment < Decimal("0.3") * parsed.contract_amount
    assert to_fen(parsed.advance_payment) == 29_999_999
    assert to_fen(Decimal("0.3") * parsed.contract_amount) == 30_000_000
    exact = validate_case(case("procurement_contract", advance_payment="300000.00"))
    assert exact.advance_payment >= Decimal("0.3") * exact.contract_amount


def test_to_fen_refuses_fractions_of_a_fen() -> None:
    assert to_fen(Decimal("1.230")) == 123
    assert to_fen(Decimal("1E+3")) == 100_000
    with pytest.raises(ValueError):
        to_fen(Decimal("0.001"))
    with pytest.raises(ValueError):
        to_fen(Decimal("NaN"))


def test_more_than_two_decimal_places_rejected() -> None:
    errs = errors_of(case("procurement_contract", performance_bond="100.001"))
    assert [e.path for e in errs] == ["performance_bond"]
    assert "2 decimal places" in errs[0].message
    assert paths_of(case("procurement_contract", bid_deposit=0.1 + 0.2)) == ["bid_deposit"]
    # Trailing zeros are not fractions of a fen.
    assert validate_case(case("procurement_contract", documents_fee="1.230")).documents_fee == Decimal("1.23")


def test_extra_fields_are_kept_and_ignored() -> None:
    record = case(
        source_system="ERP-7",
        approval={"mode": "commitment_filing", "submitted_at": "2026-03-02", "officer": "王"},
    )
    parsed = validate_case(record)
    assert parsed.model_extra == {"source_system": "ERP-7"}
    assert parsed.approval is not None and parsed.approval.model_extra == {"officer": "王"}
    assert validate_case(case()) == validate_case(case(source_system=...))  # sample has no extras


# --- invalid records: paths and messages ------------------------------------------------------------------


def test_wrong_type() -> None:
    errs = errors_of(case(steps="two", special_project="maybe", pauses={"reason": "other"}))
    assert {e.path for e in errs} == {"steps", "special_project", "pauses"}
    assert next(e for e in errs if e.path == "steps").message == "must be an integer"


def test_boolean_is_not_a_number() -> None:
    assert paths_of(case(external_works_m=True, steps=True)) == ["external_works_m", "steps"]
    assert paths_of(case("procurement_contract", bid_deposit=False)) == ["bid_deposit"]


def test_missing_required_field() -> None:
    errs = errors_of(case(applied_at=..., customer_type=...))
    assert {e.path for e in errs} == {"applied_at", "customer_type"}
    assert all(e.message == "required field is missing" for e in errs)
    assert paths_of(case(approval={"mode": "commitment_filing"})) == ["approval.submitted_at"]


def test_negative_length_count_and_amount() -> None:
    errs = errors_of(case(external_works_m=-1, materials=-1, steps=0))
    assert [e.path for e in errs] == ["external_works_m", "steps", "materials"]
    assert errs[0].message == "must not be negative"
    assert paths_of(case("procurement_contract", bid_deposit="-0.01", contract_amount=0)) == [
        "contract_amount",
        "bid_deposit",
    ]
    assert paths_of(case("construction_project", floor_area_m2=-5)) == ["floor_area_m2"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "NaN", "nan", "inf", "-Infinity"])
def test_nan_and_inf_rejected(bad: Any) -> None:
    errs = errors_of(case(external_works_m=bad))
    assert [(e.path, e.message) for e in errs] == [("external_works_m", "must be a finite number")]
    money = errors_of(case("procurement_contract", advance_payment=bad))
    assert [(e.path, e.message) for e in money] == [("advance_payment", "must be a finite number")]


def test_impossible_date_and_garbage() -> None:
    errs = errors_of(case(applied_at="2026-02-30", connected_at="soon"))
    assert [e.path for e in errs] == ["applied_at", "connected_at"]
    assert "2026-02-30" in errs[0].message
    assert paths_of(case(applied_at=20260302)) == ["applied_at"]
    assert paths_of(case(applied_at="2026-03-02x10:00")) == ["applied_at"]
    assert paths_of(case(applied_at="2026-03-02T25:00:00")) == ["applied_at"]


def test_unknown_kind() -> None:
    errs = errors_of({"case_id": "X", "kind": "tax_refund"})
    assert [e.path for e in errs] == ["kind"]
    assert "tax_refund" in errs[0].message
    assert all(kind in errs[0].message for kind in CASE_MODELS)
    assert paths_of({"case_id": "X"}) == ["kind"]


@pytest.mark.parametrize("bad", [[], "a string", 42, None])
def test_non_object_is_a_root_error(bad: Any) -> None:
    assert paths_of(bad) == ["$"]


def test_unknown_enum_value() -> None:
    errs = errors_of(case(channel="fax", approval={"mode": "verbal", "submitted_at": "2026-03-02"}))
    assert [e.path for e in errs] == ["channel", "approval.mode"]
    assert "fax" in errs[0].message and "online" in errs[0].message
    assert paths_of(case(pauses=[{"reason": "holiday", "start": "2026-03-02"}])) == ["pauses[0].reason"]


def test_case_id_length() -> None:
    assert paths_of(case(case_id="")) == ["case_id"]
    assert paths_of(case(case_id="x" * 129)) == ["case_id"]
    assert validate_case(case(case_id="x" * 128)).case_id == "x" * 128


@pytest.mark.parametrize("when", ["2027-01-04", "2027-01-04T09:00:00+08:00", "2003-12-31"])
def test_date_outside_calendar_names_the_year(when: str) -> None:
    errs = errors_of(case(connected_at=when))
    assert [e.path for e in errs] == ["connected_at"]
    assert when[:4] in errs[0].message


def test_uncovered_year_is_judged_on_the_local_date() -> None:
    # 16:30Z on 31 December is already 1 January 2027 in Ningbo.
    errs = errors_of(case(connected_at="2026-12-31T16:30:00Z"))
    assert "2027" in errs[0].message
    assert validate_case(case(applied_at="2003-12-31T16:00:00Z")).applied_at.year == 2004


def test_several_errors_reported_at_once() -> None:
    record = case(
        case_id="",
        external_works_m="-3",
        applied_at="2026-02-30",
        channel="fax",
        pauses=[
            {"reason": "other", "start": "2026-03-02"},
            {"reason": "other", "start": "2026-03-03", "end": "2026-03-01"},
        ],
        steps=...,
    )
    assert paths_of(record) == [
        "case_id",
        "channel",
        "pauses[1].end",
        "applied_at",
        "external_works_m",
        "steps",
    ]
    with pytest.raises(InvalidCase, match=r"pauses\[1\]\.end: must not be earlier than start"):
        validate_case(record)


# --- end before start -------------------------------------------------------------------------------------


def test_pause_end_before_start_message() -> None:
    record = case(
        pauses=[
            {"reason": "user_internal_works", "start": "2026-03-02", "end": "2026-03-02"},
            {"reason": "other", "start": "2026-03-01", "end": "2026-02-27"},
        ]
    )
    errs = errors_of(record)
    assert [str(e) for e in errs] == ["pauses[1].end: must not be earlier than start (2026-03-01)"]


@pytest.mark.parametrize(
    ("kind", "end_path", "changes"),
    [
        ("water_connection", "connected_at", {"connected_at": "2026-03-01"}),
        (
            "water_connection",
            "approval.approved_at",
            {
                "approval": {
                    "mode": "administrative_approval",
                    "submitted_at": "2026-03-05",
                    "approved_at": "2026-03-04",
                }
            },
        ),
        (
            "gas_connection",
            "internal_works.accepted_at",
            {"internal_works": {"started_at": "2026-03-05", "accepted_at": "2026-03-04"}},
        ),
        ("power_connection", "connected_at", {"connected_at": "2026-03-01"}),
        ("company_startup", "completed_at", {"completed_at": "2026-03-01"}),
        ("loan", "decided_at", {"decided_at": "2026-03-01"}),
        ("ccc_exemption", "concluded_at", {"concluded_at": "2026-03-01"}),
        ("deregistration", "deregistered_at", {"deregistered_at": "2026-03-01"}),
        ("property_registration", "completed_at", {"completed_at": "2026-03-01"}),
        ("construction_project", "completion_accepted_at", {"completion_accepted_at": "2026-01-04"}),
        ("bankruptcy_case", "concluded_at", {"concluded_at": "2026-01-04"}),
        ("procurement_contract", "advance_paid_at", {"advance_paid_at": "2026-03-01"}),
        ("procurement_contract", "ready_at", {"ready_at": "2026-03-01"}),
    ],
)
def test_end_before_start_has_its_own_path(kind: str, end_path: str, changes: dict[str, Any]) -> None:
    errs = errors_of(case(kind, **changes))
    assert [e.path for e in errs] == [end_path]
    assert errs[0].message.startswith("must not be earlier than ")


def test_end_before_start_compares_instants_across_offsets() -> None:
    # 23:30 local on 2 March and 00:30 local on 3 March, written in three different offsets.
    start = "2026-03-02T15:30:00Z"
    assert validate_case(case(applied_at=start, connected_at="2026-03-03T00:30:00+08:00"))
    assert validate_case(case(applied_at=start, connected_at="2026-03-02T15:30:00-01:00"))
    # One hour earlier than the start, although its wall-clock date (3 March in +09:00) is later.
    errs = errors_of(case(applied_at="2026-03-03T00:30:00+08:00", connected_at="2026-03-03T00:30:00+09:00"))
    assert [e.path for e in errs] == ["connected_at"]
    assert "2026-03-03T00:30:00+08:00" in errs[0].message
    # Same local date (3 March), but 00:15 local is earlier than 00:30 local: instants decide.
    errs = errors_of(case(applied_at="2026-03-03T01:30:00+09:00", connected_at="2026-03-02T16:15:00Z"))
    expected = "connected_at: must not be earlier than applied_at (2026-03-03T00:30:00+08:00)"
    assert [str(e) for e in errs] == [expected]
    # Same instant is not "before".
    assert validate_case(case(applied_at="2026-03-02T16:30:00Z", connected_at="2026-03-03T00:30:00+08:00"))


def test_end_before_start_compares_dates_when_one_side_is_a_date() -> None:
    # Same local date: fine, although 00:00 is earlier than 18:00.
    assert validate_case(case(applied_at="2026-03-03T18:00:00+08:00", connected_at="2026-03-03"))
    assert validate_case(case(applied_at="2026-03-03", connected_at="2026-03-02T16:30:00Z"))  # local 3 March
    errs = errors_of(case(applied_at="2026-03-03", connected_at="2026-03-02T15:59:00Z"))  # local 2 March
    assert [str(e) for e in errs] == ["connected_at: must not be earlier than applied_at (2026-03-03)"]


def test_end_check_skipped_when_start_is_invalid() -> None:
    # The start's own error is enough; no second, misleading error on the end.
    assert paths_of(case(applied_at="bad", connected_at="2026-03-01")) == ["applied_at"]


# --- time zones -------------------------------------------------------------------------------------------


def test_utc_is_converted_to_shanghai() -> None:
    parsed = validate_case(case(applied_at="2026-03-02T16:30:00Z", connected_at=...))
    assert parsed.applied_at == datetime(2026, 3, 3, 0, 30, tzinfo=SHANGHAI)
    assert parsed.applied_at.utcoffset() == timedelta(hours=8)
    assert (parsed.applied_at.hour, parsed.applied_at.minute) == (0, 30)
    assert local_date(parsed.applied_at) == date(2026, 3, 3)


def test_naive_timestamp_is_shanghai_time_and_date_stays_a_date() -> None:
    parsed = validate_case(case(applied_at="2026-03-02T23:30:00", connected_at="2026-03-04"))
    assert parsed.applied_at == datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    assert parsed.applied_at.tzinfo is SHANGHAI
    assert type(parsed.connected_at) is date
    assert local_date(parsed.connected_at) == date(2026, 3, 4)


def test_python_date_and_datetime_objects_are_accepted() -> None:
    parsed = validate_case(
        case(
            applied_at=datetime(2026, 3, 2, 20, 0, tzinfo=timezone(timedelta(hours=-5))),
            connected_at=date(2026, 3, 4),
        )
    )
    assert parsed.applied_at == datetime(2026, 3, 3, 9, 0, tzinfo=SHANGHAI)
    assert local_date(parsed.applied_at) == date(2026, 3, 3)
    assert parsed.connected_at == date(2026, 3, 4)
    naive = validate_case(case(applied_at=datetime(2026, 3, 2, 9, 0), connected_at=...))
    assert naive.applied_at == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def test_local_date_of_a_foreign_aware_datetime() -> None:
    assert local_date(datetime(2026, 3, 2, 16, 30, tzinfo=UTC)) == date(2026, 3, 3)
    assert local_date(date(2026, 3, 2)) == date(2026, 3, 2)


def test_json_dump_keeps_the_offset() -> None:
    dumped = validate_case(case(applied_at="2026-03-02T16:30:00Z")).model_dump(mode="json")
    assert dumped["applied_at"] == "2026-03-03T00:30:00+08:00"


# --- JSON Schema ------------------------------------------------------------------------------------------


def test_json_schema_of_one_kind() -> None:
    schema = case_json_schema("water_connection")
    props = schema["properties"]
    assert set(schema["required"]) >= {"case_id", "kind", "customer_type", "applied_at", "external_works_m"}
    assert props["applied_at"]["type"] == "string"
    assert "Asia/Shanghai" in props["applied_at"]["description"]
    assert props["kind"]["const"] == "water_connection"
    orjson.dumps(schema)  # serialisable


def test_json_schema_of_the_union() -> None:
    schema = case_json_schema()
    assert set(schema["discriminator"]["mapping"]) == set(CASE_MODELS)
    assert schema == case_adapter.json_schema()
    with pytest.raises(ValueError, match="unknown kind"):
        case_json_schema("tax_refund")


# --- round trip -------------------------------------------------------------------------------------------

_FIRST = datetime(2004, 1, 2, tzinfo=SHANGHAI)
_MAX_GAP_S = 60 * 86400
# Starts end 60 days before the calendar does, so that every end still falls in a covered year.
_SPAN_S = int((datetime(2026, 12, 30, tzinfo=SHANGHAI) - _FIRST).total_seconds()) - _MAX_GAP_S
_OFFSETS = st.sampled_from([None, "Z", -12, -5, -1, 0, 5.75, 8, 9, 14])


@st.composite
def _moment(draw: st.DrawFn) -> datetime:
    seconds, micros = draw(st.integers(0, _SPAN_S)), draw(st.integers(0, 999_999))
    return _FIRST + timedelta(seconds=seconds, microseconds=micros)


@st.composite
def _timestamp_text(draw: st.DrawFn, moment: datetime) -> str:
    """The same instant written as a date alone, a naive local time, or with some offset."""
    if draw(st.booleans()):
        return moment.date().isoformat()
    offset = draw(_OFFSETS)
    if offset is None:
        return moment.replace(tzinfo=None).isoformat()
    if offset == "Z":
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return moment.astimezone(timezone(timedelta(hours=offset))).isoformat()


@st.composite
def _span(draw: st.DrawFn) -> tuple[str, str]:
    """A start and an end not before it (end instant ≥ start instant, hence local dates ordered too)."""
    start = draw(_moment())
    end = start + timedelta(seconds=draw(st.integers(0, _MAX_GAP_S)))
    return draw(_timestamp_text(start)), draw(_timestamp_text(end))


_number = st.one_of(
    st.integers(0, 10**6),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
).flatmap(lambda n: st.sampled_from([n, str(n)]))
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)


@st.composite
def water_cases(draw: st.DrawFn) -> dict[str, Any]:
    applied, connected = draw(_span())
    record: dict[str, Any] = {
        "case_id": draw(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=128)),
        "kind": "water_connection",
        "customer_type": draw(st.sampled_from(["non_residential", "residential"])),
        "applied_at": applied,
        "external_works_m": draw(_number),
        "steps": draw(st.integers(1, 20).flatmap(lambda n: st.sampled_from([n, str(n)]))),
        "materials": draw(st.integers(0, 20)),
    }
    if draw(st.booleans()):
        record["connected_at"] = connected
    for key, strategy in [
        ("district", _text),
        ("department", _text),
        ("channel", st.sampled_from(["online", "mobile", "window"])),
        ("special_project", st.booleans()),
        ("extra_note", st.one_of(_text, st.integers(-5, 5), st.lists(st.integers(-5, 5), max_size=3))),
    ]:
        if draw(st.booleans()):
            record[key] = draw(strategy)
    if draw(st.booleans()):
        submitted, approved = draw(_span())
        approval: dict[str, Any] = {
            "mode": draw(st.sampled_from(["commitment_filing", "administrative_approval"])),
            "submitted_at": submitted,
        }
        if draw(st.booleans()):
            approval["approved_at"] = approved
        record["approval"] = approval
    pauses = []
    for _ in range(draw(st.integers(0, 3))):
        start, end = draw(_span())
        pause: dict[str, Any] = {
            "reason": draw(st.sampled_from(["user_internal_works", "gas_tightness_test", "other"])),
            "start": start,
        }
        if draw(st.booleans()):
            pause["end"] = end
        pauses.append(pause)
    record["pauses"] = pauses
    exemption = st.fixed_dictionaries({"rule": st.just("water.steps"), "reason": _text.filter(bool)})
    record["exemptions"] = draw(st.lists(exemption, max_size=2))
    return record


@settings(max_examples=300, deadline=None)
@given(water_cases())
def test_water_case_round_trips(record: dict[str, Any]) -> None:
    parsed = validate_case(record)
    dumped = parsed.model_dump(mode="json")
    again = validate_case(orjson.loads(orjson.dumps(dumped)))
    assert again == parsed
    assert again.model_dump(mode="json") == dumped
