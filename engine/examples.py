"""Rule examples: cases with the status a rule must give them, kept in a pack's ``examples/`` folder (outside
the pack's version hash, so adding an example changes no verdict's pack version). ``casecheck rules test``
runs each through both executors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from engine.calendar import WorkdayIndex
from engine.core import Engine
from engine.domain import Kind
from engine.errors import CalendarRangeError, InvalidCase, RulePackError
from engine.packs import RulePack, format_location
from engine.rules import Rule, Strict
from engine.verdicts import Status

__all__ = [
    "BaseCases",
    "Example",
    "ExampleFile",
    "ExampleRun",
    "load_examples",
    "run_examples",
]


class Example(Strict):
    rule: str
    name: str = Field(min_length=1)
    # The fields that differ from the base case of the rule's kind; null removes a field.
    fields: dict[str, Any] = Field(default_factory=dict)
    as_of: date
    expect: Status
    # Checked only when given: the measured value (days, steps, a ratio …) the rule reports.
    value: Any = None


class ExampleFile(Strict):
    examples: list[Example]


class BaseCases(Strict):
    base: dict[Kind, dict[str, Any]]


@dataclass
class ExampleRun:
    file: str
    example: Example
    expected: str
    durable: str
    columnar: str
    case: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.durable == self.expected == self.columnar


def load_examples(pack: RulePack, folder: Path) -> list[tuple[str, Example, dict[str, Any]]]:
    """(file name, example, full case) for every example under ``folder``; problems name file, example
    and field (``RulePackError``, one line each)."""
    problems: list[str] = []
    base_path = folder / "base.yaml"
    try:
        bases = BaseCases.model_validate(yaml.safe_load(base_path.read_bytes())).base
    except FileNotFoundError:
        raise RulePackError(f"{base_path}: missing (a base case per kind the examples vary)") from None
    except (ValidationError, yaml.YAMLError) as exc:
        raise RulePackError(f"{base_path}: {exc}") from exc
    found = []
    for path in sorted(p for p in folder.glob("*.yaml") if p.name != "base.yaml"):
        try:
            examples = ExampleFile.model_validate(yaml.safe_load(path.read_bytes())).examples
        except ValidationError as exc:
            problems.extend(f"{path}: {format_location(e['loc'])}: {e['msg']}" for e in exc.errors())
            continue
        except yaml.YAMLError as exc:
            problems.append(f"{path}: {exc}")
            continue
        for position, example in enumerate(examples):
            rule = pack.by_id.get(example.rule)
            if not isinstance(rule, Rule):
                problems.append(f"{path}: examples[{position}].rule: no per-case rule {example.rule!r}")
                continue
            case = {**bases.get(rule.kind, {"kind": rule.kind}), **example.fields}
            found.append((path.name, example, {k: v for k, v in case.items() if v is not None}))
    if problems:
        raise RulePackError("\n".join(problems))
    return found


def _answer(engine: Engine, example: Example, case: dict[str, Any]) -> str:
    """The rule's status for the case (with its value when the example names one), or why none."""
    try:
        verdict = engine.check(case, as_of=example.as_of, lang="en")
    except (InvalidCase, CalendarRangeError) as exc:
        return f"error: {str(exc).splitlines()[0]}"
    result = next(r for r in verdict.results if r.rule == example.rule)
    if example.value is None:
        return result.status
    return f"{result.status} {result.value}"


def run_examples(pack: RulePack, calendar: WorkdayIndex, folder: Path) -> list[ExampleRun]:
    engines = [Engine(pack, calendar, "durable"), Engine(pack, calendar, "columnar")]
    runs = []
    for file, example, case in load_examples(pack, folder):
        expected = example.expect if example.value is None else f"{example.expect} {example.value}"
        durable, columnar = (_answer(engine, example, case) for engine in engines)
        runs.append(ExampleRun(file, example, expected, durable, columnar, case))
    return runs
