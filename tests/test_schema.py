"""The exported JSON Schema is a contract: a standard validator accepts exactly the records the engine does.

Generated valid records of every kind have one field at a time replaced by a value from a list of the
forms integrators send (numbers, numeric text, padded or signed text, booleans, dates in and out of ISO
form, nulls); ``jsonschema`` and ``validate_case`` must agree on each. What a pattern cannot say is left
out of the lists, and named in ``engine.cases``: a day that does not exist (2026-02-30), a year outside the
calendar, a fraction of a fen in a JSON number; an end before its start is a check across fields, so the
engine's verdict is taken without that one error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from engine.cases import CASE_MODELS, case_json_schema, validate_case
from engine.domain import KINDS
from engine.errors import InvalidCase
from engine.generate import generate_cases
from engine.ingest import field_specs

SAMPLES = Path(__file__).resolve().parent.parent / "cases" / "samples"
TRIED: dict[str, list[Any]] = {
    "number": [
        0,
        -0.0,
        5,
        1.5,
        -5,
        "3",
        "3.5",
        "1e2",
        "-0",
        "-5",
        " 3",
        "+3",
        "1_000",
        "3.",
        "abc",
        "",
        "NaN",
        True,
    ],
    "integer": [0, 1, 2, 3.0, 2.5, -1, "2", "2.0", "007", "0", "-0", " 2", "+2", "1e2", "x", True],
    "money": [0, 100, 1.5, "1.50", "1.230", "1.234", "0.00", "-0.00", "-1", "1e3", " 1", "abc", True],
    "boolean": [True, False, 0, 1, 2, 1.0, "true", "YES", "n", "On", "maybe", "", "2"],
    "timestamp": [
        "2026-03-02",
        "2026-03-02T09:00:00",
        "2026-03-02 09:00",
        "2026-03-02T09:00:00.5+08:00",
        "2026-03-02T09:00:00Z",
        "2026-3-2",
        "2026-13-01",
        "20260302",
        "2026-03-02T25:00",
        " 2026-03-02",
        "2026-03-02t09:00",
        "2026-03-02T09",
        5,
    ],
    "text": ["x", "", 5, None],
    "choice": ["nonsense", 1],
}
COMMON = [None, [], {}]


def engine_accepts(record: dict[str, Any]) -> bool:
    try:
        validate_case(record)
    except InvalidCase as exc:
        return all(e.message.startswith("must not be earlier than") for e in exc.errors)
    return True


def variants(kind: str, base: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    found = []
    for spec in field_specs(CASE_MODELS[kind]):
        for value in [*TRIED.get(spec.form, []), *COMMON]:
            found.append((spec.name, value, {**base, spec.name: value}))
        if not spec.required:
            found.append((spec.name, "<absent>", {k: v for k, v in base.items() if k != spec.name}))
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_schema_and_engine_accept_the_same_records(kind: str) -> None:
    validator = Draft202012Validator(case_json_schema(kind))
    bases = list(generate_cases(40, seed=7, kinds=(kind,)))[:3]
    disagreements = []
    checked = 0
    for base in bases:
        assert validator.is_valid(base) and engine_accepts(base)
        for name, value, record in variants(kind, base):
            checked += 1
            schema_ok, engine_ok = validator.is_valid(record), engine_accepts(record)
            if schema_ok != engine_ok:
                disagreements.append((name, value, f"schema {schema_ok}, engine {engine_ok}"))
    assert checked > 100
    assert disagreements == []


def test_the_union_schema_dispatches_on_kind() -> None:
    validator = Draft202012Validator(case_json_schema())
    for case in generate_cases(60, seed=3):
        assert validator.is_valid(case)
        assert not validator.is_valid({**case, "kind": "no_such_kind"})


def test_the_schema_uses_standard_keywords_only() -> None:
    """``ge``/``gt`` are pydantic's words, not JSON Schema's: validators ignore them (steps: 0 passed)."""
    schema = case_json_schema()
    Draft202012Validator.check_schema(schema)
    words: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            words.update(k for k in node if k not in ("properties", "$defs", "mapping"))
            for key, value in node.items():
                if key in ("properties", "$defs"):
                    for sub in value.values():
                        walk(sub)
                elif key != "mapping":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    assert not words & {"ge", "gt", "le", "lt"}
    water = case_json_schema("water_connection")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**next(generate_cases(1, kinds=("water_connection",))), "steps": 0}, water)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**next(generate_cases(1, kinds=("water_connection",))), "external_works_m": -5}, water
        )


def test_openapi_shows_sample_cases_and_parameter_examples(tmp_path: Path) -> None:
    from engine.api import Settings, create_app

    with TestClient(create_app(Settings(store=f"sqlite:///{tmp_path}/v.db"))) as client:
        document = client.get("/openapi.json").json()
    samples = {
        line
        for path in SAMPLES.glob("*.ndjson")
        for line in map(str.strip, path.read_text(encoding="utf-8").splitlines())
        if line
    }
    case_schema = Draft202012Validator(case_json_schema())
    operations = [op for item in document["paths"].values() for op in item.values()]
    bodies = 0
    for operation in operations:
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "header":
                assert parameter["schema"].get("examples") or parameter.get("examples"), parameter
        body = operation.get("requestBody")
        if body is None:
            continue
        bodies += 1
        examples = body["content"]["application/json"]["examples"]
        for example in examples.values():
            cases = example["value"] if isinstance(example["value"], list) else [example["value"]]
            for case in cases:
                assert case_schema.is_valid(case)
                assert json.dumps(case, ensure_ascii=False) in samples  # taken from cases/samples as it is
                validate_case(case)
    assert bodies == 2
    assert '"ge"' not in json.dumps(document)
