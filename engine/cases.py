"""Case records: one pydantic model per kind (RULES.md "Kinds and their fields"), joined by ``kind``.

Everything downstream (measures, both executors, reports) trusts these models, so the checks that make a
number meaningful live here and in their value types (``engine.values``), once: time zones are settled
(every time is Asia/Shanghai, SPEC "Time semantics"), dates outside the working-day calendar are refused
instead of guessed, money is an exact ``Decimal`` in fen, and an end before its start is an error at the
end's own JSON path.

Validation collects every problem of a record in one pass (pydantic does the collecting), and
``validate_case`` turns pydantic's locations into the JSON paths users see (``pauses[1].end``).
"""

from __future__ import annotations

import functools
import re
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.domain import PauseReason
from engine.errors import CaseError, InvalidCase, json_path
from engine.values import (
    VALUE_MESSAGES,
    Flag,
    Money,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    PositiveMoney,
    Timestamp,
    not_before,
    shown,
)

__all__ = [
    "CASE_MODELS",
    "MAX_DEPTH",
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
    "WaterConnection",
    "case_adapter",
    "case_json_schema",
    "field_type",
    "leaf_types",
    "shown_error",
    "shown_id",
    "validate_case",
]

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
    end: Annotated[OptionalTimestamp, not_before("start")] = None


class Exemption(_Record):
    """A documented exception for an exemptible rule (原则上/一般应); the reason is echoed in the verdict."""

    rule: str
    reason: NonEmpty


class Approval(_Record):
    """External-works approval: commitment filing (承诺备案) or administrative approval (行政审批)."""

    mode: Literal["commitment_filing", "administrative_approval"]
    submitted_at: Timestamp
    approved_at: Annotated[OptionalTimestamp, not_before("submitted_at")] = None


class InternalWorks(_Record):
    """Gas internal works (内线施工) from start to acceptance (验收合格), task (32)."""

    started_at: Timestamp
    accepted_at: Annotated[OptionalTimestamp, not_before("started_at")] = None


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
    connected_at: Annotated[OptionalTimestamp, not_before("applied_at")] = None
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
    connected_at: Annotated[OptionalTimestamp, not_before("applied_at")] = None
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
    ready_at: Annotated[OptionalTimestamp, not_before("contract_effective_at")] = None
    advance_paid_at: Annotated[OptionalTimestamp, not_before("contract_effective_at")] = None
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
    deregistered_at: Annotated[OptionalTimestamp, not_before("applied_at")] = None


class CompanyStartup(CaseBase):
    """企业开办, tasks (20)–(23)."""

    kind: Literal["company_startup"]
    applied_at: Timestamp
    completed_at: Annotated[OptionalTimestamp, not_before("applied_at")] = None
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
    completion_accepted_at: Annotated[OptionalTimestamp, not_before("code_assigned_at")] = None


class PropertyRegistration(CaseBase):
    """不动产登记, task (43)."""

    kind: Literal["property_registration"]
    registration_type: Literal["non_residential_transfer", "other"]
    object_unchanged: Flag
    applied_at: Timestamp
    completed_at: Annotated[OptionalTimestamp, not_before("applied_at")] = None
    steps: PositiveInt


class Loan(CaseBase):
    """获得信贷, task (52)."""

    kind: Literal["loan"]
    applied_at: Timestamp
    decided_at: Annotated[OptionalTimestamp, not_before("applied_at")] = None
    steps: PositiveInt
    materials: NonNegativeInt


class CccExemption(CaseBase):
    """进口产品强制性认证免办, task (55)."""

    kind: Literal["ccc_exemption"]
    applied_at: Timestamp
    concluded_at: Annotated[OptionalTimestamp, not_before("applied_at")] = None
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
    concluded_at: Annotated[OptionalTimestamp, not_before("accepted_at")] = None


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
    template = VALUE_MESSAGES.get(kind)
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
