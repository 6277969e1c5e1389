"""The shapes of the service's answers (pydantic models, for the OpenAPI document only: answers are
encoded by ``engine.api.responses``) and the sample request bodies shown on /docs."""

from __future__ import annotations

import importlib.resources
from datetime import date
from typing import Any

import orjson
from pydantic import BaseModel

from engine.api.errors import ErrorItem
from engine.verdicts import Verdict

__all__ = [
    "BATCH_EXAMPLES",
    "CASE_EXAMPLES",
    "CASE_REF",
    "SAMPLE_CASES",
    "BatchItem",
    "BatchResult",
    "Deadline",
    "History",
    "HistoryEntry",
    "RuleList",
    "RuleSummary",
    "WorkingDays",
]


class RuleSummary(BaseModel):
    id: str
    kind: str
    aggregate: bool
    severity: str
    title: dict[str, str]
    source: str
    effective_from: date


class RuleList(BaseModel):
    ruleset: str
    rules: list[RuleSummary]


class WorkingDays(BaseModel):
    start: date
    end: date
    working_days: int
    calendar: str


class Deadline(BaseModel):
    start: date
    days: int
    deadline: date
    calendar: str


class HistoryEntry(BaseModel):
    case_id: str
    case_sha256: str
    verdict: str
    statuses: dict[str, str]
    as_of: date
    ruleset: str
    calendar: str
    caller: str | None
    checked_at: str


class History(BaseModel):
    case_id: str
    checks: list[HistoryEntry]


class BatchItem(BaseModel):
    index: int
    ok: bool
    verdict: Verdict | None = None
    case_id: Any = None
    line: int | None = None
    errors: list[ErrorItem] | None = None


class BatchResult(BaseModel):
    count: int
    checked: int
    invalid: int
    results: list[BatchItem]


CASE_REF = {"$ref": "#/components/schemas/CaseRecord"}
# Sample cases (from cases/samples) shown on /docs as request bodies; shipped with the package.
SAMPLE_CASES: dict[str, Any] = orjson.loads(
    importlib.resources.files("engine").joinpath("openapi_examples.json").read_bytes()
)
CASE_EXAMPLES = {
    name: {"summary": f"{case['kind']} {case['case_id']}", "value": case}
    for name, case in SAMPLE_CASES.items()
}
BATCH_EXAMPLES = {
    "array": {"summary": "a JSON array of sample cases", "value": list(SAMPLE_CASES.values())},
}
