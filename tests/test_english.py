"""English verdict messages: every message the rule pack can produce, held to grammar rules one can state.

English inflects: 1 working day, but 0 and 2 working days (plural for every count but one). The condition
labels of the rule files are clauses ("the customer is non-residential"), since the messages put them
after "only if", after "whether", or alone (a condition that must not hold). Each rule of the pack is
driven through each outcome its plan lists, with the counts 0, 1 and 2 in every number the message shows;
then a generated batch checks the same rules on the messages real cases get.
"""

from __future__ import annotations

import itertools
import re
from datetime import date
from types import SimpleNamespace

import numpy as np
import pytest

from engine import Engine
from engine.cases import validate_case
from engine.generate import generate_cases
from engine.measures import OpenNote
from engine.rules import AllOf, Condition
from engine.verdicts import UNITS

COUNTS = (0, 1, 2)
OPEN_NOTES = (
    OpenNote("not_started", date(2026, 3, 2)),
    OpenNote("counted_to", date(2027, 1, 5), date(2026, 12, 31)),
)
AS_OF = "2026-11-24"
_EN = UNITS["en"]
SINGULAR = "|".join(
    sorted({re.escape(w.one.strip()) for w in _EN.values() if w.one.strip() != w.many.strip()})
)
PLURAL = "|".join(
    sorted({re.escape(w.many.strip()) for w in _EN.values() if w.one.strip() != w.many.strip()})
)
# A count (not part of a longer number or a date) and the unit word after it.
ONE_THEN_PLURAL = re.compile(rf"(?<![\d.\-])-?1 ({PLURAL})\b")
OTHER_THEN_SINGULAR = re.compile(rf"(?<![\d.\-])(?:-?(?:0|[2-9]|\d{{2,}})|\d+\.\d+) ({SINGULAR})\b(?!s)")
DOUBLED = re.compile(r"\b(\w+(?: \w+)?) \1\b", re.IGNORECASE)  # a word or two words twice
FINITE_VERB = re.compile(r"\b(is|are|has|have|was|were)\b")


def grammar_problems(message: str) -> list[str]:
    problems = []
    if match := ONE_THEN_PLURAL.search(message):
        problems.append(f"plural after 1: {match.group(0)!r}")
    if match := OTHER_THEN_SINGULAR.search(message):
        problems.append(f"singular after a count other than 1: {match.group(0)!r}")
    if match := DOUBLED.search(message):
        problems.append(f"doubled word: {match.group(0)!r}")
    if "not applicable: not " in message:
        problems.append("'not applicable: not …'")
    if re.search(r"[{}]|\bNone\b|\bnan\b|…", message):
        problems.append("a placeholder, None, nan or an unlabelled condition")
    # An exemption's reason is the case's own text, in whatever language the case gave it.
    if not message.startswith("exempt: ") and re.search(r"[\u4e00-\u9fff]", message):
        problems.append("Chinese in an English message")
    return [f"{p} in {message!r}" for p in problems]


@pytest.fixture(scope="module")
def columnar() -> Engine:
    return Engine.load(executor="columnar")


def _conjuncts(condition: Condition | None) -> list[Condition]:
    if condition is None:
        return []
    return list(condition.all) if isinstance(condition, AllOf) else [condition]


def every_message(engine: Engine) -> dict[tuple[str, str], list[str]]:
    """(rule, outcome code) → the English messages of that outcome, with 0, 1 and 2 in each number."""
    messages: dict[tuple[str, str], list[str]] = {}
    deadline = date(2026, 12, 1)
    for kind, plan in engine.plans.items():
        builder = engine.builders[kind]
        for rule_plan in plan.rules:
            rule = rule_plan.rule
            for code in dict.fromkeys(outcome.code for outcome in rule_plan.outcomes):
                found = messages.setdefault((rule.id, code), [])
                if code in ("pass", "fail", "pending"):
                    # value, allowance (a month rule's limit in days; the days left of a pending one),
                    # pauses excluded, pauses not excludable, and whether the deadline was extended.
                    for value, extra, excluded, not_excluded, extended in itertools.product(
                        COUNTS, COUNTS, COUNTS, COUNTS, (False, True)
                    ):
                        allowance = value + extra if code == "pending" or rule.unit != "ratio" else None
                        if rule.unit == "ratio":
                            value = value / 100
                        result = builder._measured_result(
                            rule.id,
                            code,
                            "en",
                            value,
                            allowance,
                            deadline,
                            excluded,
                            not_excluded,
                            None,
                            extended,
                            None,
                        )
                        found.append(result["message"])
                    found.append(
                        builder._measured_result(
                            rule.id, code, "en", 1, 1, None, None, None, "beyond", None, None
                        )["message"]
                    )
                    for note in OPEN_NOTES:
                        found.append(
                            builder._measured_result(
                                rule.id, code, "en", 1, 2, deadline, 0, 0, None, None, note
                            )["message"]
                        )
                    continue
                # The reasoned outcomes read the case only for these: stand-ins for one row.
                measure = SimpleNamespace(missing=np.array(["started_at"], object))
                measured = SimpleNamespace(
                    anchor=np.array(["2020-01-01"], "datetime64[D]"),
                    batch=SimpleNamespace(exemptions={rule.id: np.array(["force majeure"], object)}),
                )
                found.append(builder._result(rule, code, measure, measured, 0, "en", {})["message"])  # type: ignore[arg-type]
    return messages


def test_every_outcome_of_every_rule_reads_as_english(columnar: Engine) -> None:
    messages = every_message(columnar)
    codes = {code for _, code in messages}
    # Every kind of outcome the plans have is worded here, conditions included.
    assert {"pass", "fail", "pending", "exempt", "na:effective"} <= codes
    assert any(code.startswith("na:cond:") for code in codes) and any(
        code.startswith("na:absent:") for code in codes
    )
    problems = [p for texts in messages.values() for text in texts for p in grammar_problems(text)]
    assert problems == []


def test_the_grammar_rules_catch_the_old_wordings() -> None:
    """The checks above are only worth as much as they can fail: the wordings this suite replaced fail them."""
    for old in (
        "pass: Gas connection needs at most 1 document (1 documents, required at most 1 documents)",
        "pending: Water connection within 5 working days (1 working days so far, 4 working days left, deadline x)",
        "not applicable: not external works",
        "pass: x (3 working days, required at most 5 working days); 1 working days of pauses excluded",
        "fail: x (0 working day, required at most 1 working day)",
        "fail: x (2 steps, required at most at most 1 step)",
    ):
        assert grammar_problems(old), old
    assert grammar_problems("pass: x (1 working day, required at most 2 working days); 2 pauses") == []


def test_condition_labels_are_clauses(columnar: Engine) -> None:
    """A label is read after "only if" and "whether", or alone: in English it must be a clause."""
    labels = {
        conjunct.label.en
        for rule in columnar.pack.rules
        for conjunct in _conjuncts(rule.when)
        if conjunct.label is not None
    }
    assert labels
    assert [label for label in labels if not FINITE_VERB.search(label) or label[0].isupper()] == []
    # Every condition a verdict may name carries a label: the field-op-value fallback is not English.
    unlabelled = [
        rule.id
        for rule in columnar.pack.rules
        for conjunct in _conjuncts(rule.when)
        if conjunct.label is None
    ]
    assert unlabelled == []


def test_messages_of_generated_cases_read_as_english(columnar: Engine) -> None:
    verdicts = columnar.check_many([validate_case(r) for r in generate_cases(3_000, seed=3)], AS_OF, "en")
    messages = {r["message"] for v in verdicts for r in v["results"]}
    assert len(messages) > 100
    problems = [p for text in sorted(messages) for p in grammar_problems(text)]
    assert problems == []
    # Written out by hand for one count of each form.
    text = "\n".join(messages)
    assert (
        "(1 working day, required at most" in text
        and "; 2 pauses not excluded (no excludable reason)" in text
    )


def test_chinese_pause_wordings_are_unchanged(columnar: Engine) -> None:
    """Chinese does not inflect: the pause notes read as before the unit words were shared."""
    builder = columnar.builders["water_connection"]
    rule = next(r.rule.id for r in builder.plan.rules if r.rule.unit == "working_days")
    message = builder._measured_result(rule, "pass", "zh", 1, 1, None, 2, 1, None, None, None)["message"]
    assert message.endswith("；已扣除暂停2个工作日；1段暂停不属可扣除情形，未扣除")
