"""Verdicts: outcome codes and measures turned into the per-rule results and case verdict of SPEC.md.

Nothing is decided here: the executor's outcome code fixes each status, and the measures give the
numbers. This module only words them (Chinese by default, English on request) and rolls the statuses
up into the case verdict (fail > warn > pending > pass).
"""

from __future__ import annotations

import functools
import itertools
import math
import typing
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel

from engine.domain import Lang
from engine.executors.plan import KindPlan, RulePlan, status_of
from engine.measures import Measured, OpenNote, RuleMeasure
from engine.rules import AllOf, Condition, Leaf, MonthsMeasure, NotOf, Rule

__all__ = [
    "CASE_VERDICTS",
    "UNITS",
    "VERDICT_PRECEDENCE",
    "WORDED_RESULTS",
    "CaseVerdict",
    "RuleResult",
    "SerialisedVerdicts",
    "Status",
    "UnitWords",
    "Verdict",
    "VerdictBuilder",
    "case_verdict",
    "quantity",
    "result_verdict",
]

Status = Literal["pass", "fail", "pending", "exempt", "not_applicable"]
CaseVerdict = Literal["pass", "warn", "pending", "fail", "not_checked"]
CASE_VERDICTS: tuple[CaseVerdict, ...] = typing.get_args(CaseVerdict)  # the order reports show them in


class RuleResult(BaseModel):
    rule: str
    status: Status
    severity: Literal["mandatory", "advisory"]
    value: float | int | str | bool | None = None
    limit: float | int | str | bool | None = None
    unit: str | None = None
    deadline: date | None = None
    remaining: int | None = None
    excluded: int | None = None
    reason: str | None = None
    # How an open case was counted where not simply up to as_of: ``not_started`` (it starts after as_of,
    # so nothing has elapsed), ``counted_to`` (as_of lies past the calendar: counted to its last day, so
    # ``value`` is a lower bound; only a fail is given so).
    note: Literal["not_started", "counted_to"] | None = None
    message: str
    source: str


class Verdict(BaseModel):
    case_id: str
    kind: str
    # ``not_checked``: the kind has no per-case rules (loans, customs declarations: only aggregates judge
    # them), so nothing was checked; never ``pass``.
    verdict: CaseVerdict
    as_of: date
    ruleset: str
    calendar: str
    results: list[RuleResult]


@dataclass(frozen=True)
class UnitWords:
    """How a unit (or a counted thing) reads in one language: after a count of one, after any other count
    (English says 1 day, 0 days, 2 days; Chinese does not inflect), and alone, as a heading or axis label."""

    one: str
    many: str
    name: str

    def after(self, count: Any) -> str:
        return self.one if count in (1, -1) else self.many


def _words(one: str, many: str | None = None, name: str | None = None) -> UnitWords:
    many = one if many is None else many
    return UnitWords(one, many, many.strip() if name is None else name)


# The one definition of the unit words, shared by the verdicts and the report (``ratio`` reads as a
# percentage after a number, so only its name is used).
UNITS: dict[Lang, dict[str, UnitWords]] = {
    "zh": {
        "working_days": _words("个工作日", name="工作日"),
        "calendar_days": _words("日"),
        "months": _words("个月", name="月"),
        "steps": _words("个环节", name="环节"),
        "documents": _words("份"),
        "CNY": _words("元"),
        "pauses": _words("段暂停", name="暂停"),
        "ratio": _words("", name="比例"),
    },
    "en": {
        "working_days": _words(" working day", " working days"),
        "calendar_days": _words(" day", " days"),
        "months": _words(" month", " months"),
        "steps": _words(" step", " steps"),
        "documents": _words(" document", " documents"),
        "CNY": _words(" CNY"),
        "pauses": _words(" pause", " pauses"),
        "ratio": _words("", name="ratio"),
    },
}
_OPS = {
    "zh": {"le": "不超过", "lt": "少于", "ge": "不少于", "gt": "超过", "eq": "为", "ne": "不为"},
    "en": {
        "le": "at most",
        "lt": "below",
        "ge": "at least",
        "gt": "above",
        "eq": "equal to",
        "ne": "other than",
    },
}
_TEXT = {
    "zh": {
        "effective": "不适用：本规则自{effective}起施行，案件{anchor}为{date}",
        "ended": "不适用：本规则施行至{until}，案件{anchor}为{date}",
        "replaced": "；由 {rule} 取代",
        "absent": "不适用：案件未提供 {field}（{label}）",
        "cond": "不适用：不满足“{label}”",
        "cond_not": "不适用：{label}",
        "exempt": "豁免：{reason}",
        "input": "不适用：案件未提供 {field}",
        "fail_input": "不符合：案件未提供 {field}",
        "pass": "符合：{title}（实际{value}，要求{op}{limit}）",
        "fail": "不符合：{title}（实际{value}，要求{op}{limit}）",
        "pending": "办理中：{title}（已用{value}，剩余{remaining}，期限{deadline}）",
        "excluded": "；已扣除暂停{excluded}",
        "not_excluded": "；{count}不属可扣除情形，未扣除",
        "extended": "；期限顺延至{deadline}",
        "no_deadline": "；期限超出工作日历覆盖范围，未给出",
        "not_started": "；截至{as_of}尚未开始",
        "counted_to": "；{as_of}超出工作日历覆盖范围，计至日历末日{last}，实际不少于此数",
        "not_given": "未给出",
    },
    "en": {
        "effective": "not applicable: in force from {effective}; the case's {anchor} is {date}",
        "ended": "not applicable: in force until {until}; the case's {anchor} is {date}",
        "replaced": "; replaced by {rule}",
        # English condition labels are clauses ("the customer is non-residential"): they read after
        # "only if" and "whether", and alone for a condition that must not hold.
        "absent": "not applicable: the case does not carry {field}, needed to tell whether {label}",
        "cond": "not applicable: applies only if {label}",
        "cond_not": "not applicable: {label}",
        "exempt": "exempt: {reason}",
        "input": "not applicable: the case does not carry {field}",
        "fail_input": "fail: the case does not carry {field}",
        "pass": "pass: {title} ({value}, required {op} {limit})",
        "fail": "fail: {title} ({value}, required {op} {limit})",
        "pending": "pending: {title} ({value} so far, {remaining} left, deadline {deadline})",
        "excluded": "; {excluded} of pauses excluded",
        "not_excluded": "; {count} not excluded (no excludable reason)",
        "extended": "; deadline extended to {deadline}",
        "no_deadline": "; the deadline lies beyond the working-day calendar",
        "not_started": "; not yet started as of {as_of}",
        "counted_to": (
            "; counted up to {last}, the working-day calendar's last day, as {as_of} lies beyond it: "
            "at least this many"
        ),
        "not_given": "not given",
    },
}


# The outcomes worded from the measure's numbers; every other is worded by a reason.
_MEASURED = frozenset(("pass", "pending", "fail"))


def _number(value: Any) -> float | int | str | bool | None:
    """Whole numbers as ints, so working days read 3 and not 3.0; absent as None."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    return value


def _day(value: np.datetime64 | None) -> date | None:
    """A date, or None for NaT: ``item()`` of a day-unit NaT is None, so no separate ``isnat`` test."""
    if value is None:
        return None
    return value.astype("datetime64[D]").item()


# The measure's arrays a measured result is worded from, in the order of ``_measured_result``'s arguments:
# what rows must share to share a wording.
_MEASURE_ROWS = (
    "value",
    "allowance",
    "deadline",
    "excluded",
    "not_excluded",
    "deadline_note",
    "extended",
    "open_note",
)
_NO_ROWS = itertools.repeat(None)  # a measure without one of those arrays: None in every row


def _measure_rows(measure: RuleMeasure) -> list[tuple[Any, ...]]:
    """Per row, the values of the measure's ``_MEASURE_ROWS`` arrays as Python values (None for an array
    the measure lacks): the arguments its measured results are worded from.

    One ``tolist`` per array turns every row into Python values in C (dates for ``datetime64[D]``, None
    for NaT), where reading row by row would box a NumPy scalar and convert it for each rule and row.
    """
    # Spelt out rather than a loop over the names: this runs for every measured rule of every case.
    m = measure
    return list(
        zip(
            m.value.tolist(),
            _NO_ROWS if m.allowance is None else m.allowance.tolist(),
            _NO_ROWS if m.deadline is None else m.deadline.tolist(),
            _NO_ROWS if m.excluded is None else m.excluded.tolist(),
            _NO_ROWS if m.not_excluded is None else m.not_excluded.tolist(),
            _NO_ROWS if m.deadline_note is None else m.deadline_note.tolist(),
            _NO_ROWS if m.extended is None else m.extended.tolist(),
            _NO_ROWS if m.open_note is None else m.open_note.tolist(),
            strict=False,  # the absent arrays repeat None without end
        )
    )


# Measured results kept worded per builder (a kind): the few values, deadlines and pauses a rule's cases
# share come back as a copy instead of being formatted again. Bounded, so that a long run of distinct
# cases keeps its memory flat; least recently used go first.
WORDED_RESULTS = 1024


def quantity(value: Any, unit: str | None, lang: Lang) -> str:
    """A number with its unit word (``3个工作日``, ``1 working day``), a ratio as a percentage."""
    if unit == "ratio" and isinstance(value, int | float):
        return f"{value * 100:g}%"
    if isinstance(value, bool):
        return str(value).lower()
    words = UNITS[lang].get(unit or "")
    return f"{value}" if words is None else f"{value}{words.after(value)}"


def _label(condition: Condition, lang: Lang) -> str:
    if condition.label is not None:
        return getattr(condition.label, lang)
    if isinstance(condition, Leaf):
        return f"{condition.field} {condition.op} {condition.value}"
    return "…"


@dataclass
class SerialisedVerdicts:
    """A batch's verdicts as JSON, in row order: what the batch endpoint answers and logs.

    ``head[i] + rest[i]`` is exactly ``orjson.dumps`` of the verdict dict ``VerdictBuilder.build`` gives
    row i: its opening and case_id, then the rest, one bytes object shared by the rows worded alike (so
    that a caller wrapping each verdict copies it once); ``statuses[i]`` is the JSON text of its {rule
    id: status}, in rule order.
    """

    head: list[bytes]
    rest: list[bytes]
    verdict: list[str]
    statuses: list[str]


class VerdictBuilder:
    """Words the results of one kind's rules; built once per (plan, language) and reused per row."""

    def __init__(self, plan: KindPlan, anchor_field: str, ruleset: str, calendar: str) -> None:
        self.plan = plan
        self.anchor_field = anchor_field
        self.ruleset = ruleset
        self.calendar = calendar
        # What does not depend on the case is worded once: the clause reference of each rule, and the
        # whole result of a condition outcome (``na:absent:K``, ``na:cond:K``), filled in on first use.
        self._sources = {rule_plan.rule.id: rule_plan.rule.source.reference for rule_plan in plan.rules}
        self._condition_results: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._rules = {rule_plan.rule.id: rule_plan.rule for rule_plan in plan.rules}
        self._wording: dict[tuple[str, str], _Wording] = {}
        # Typed: the arguments are the row's values, and a value of True must not find the wording of 1
        # (nor 3.0 that of 3).
        self._measured_result = functools.lru_cache(maxsize=WORDED_RESULTS, typed=True)(self._word_measured)

    def build(self, measured: Measured, outcomes: list[list[str]], lang: Lang = "zh") -> list[dict[str, Any]]:
        """One verdict dict per row (the JSON shape of ``Verdict``)."""
        verdicts = []
        batch = measured.batch
        # Filled on first use: only a rule with a measured outcome (pass, pending, fail) reads its values.
        listed: dict[int, list[tuple[Any, ...]]] = {}
        for row in range(batch.n):
            results = [
                self._result(rule_plan.rule, code, measure, measured, row, lang, listed)
                for rule_plan, code, measure in zip(
                    self.plan.rules, outcomes[row], measured.measures, strict=True
                )
            ]
            verdicts.append(
                {
                    "case_id": batch.case_id[row],
                    "kind": batch.kind,
                    "verdict": case_verdict(results),
                    "as_of": measured.as_of,
                    "ruleset": self.ruleset,
                    "calendar": self.calendar,
                    "results": results,
                }
            )
        return verdicts

    def build_json(self, measured: Measured, positions: np.ndarray, lang: Lang = "zh") -> SerialisedVerdicts:
        """The verdicts ``build`` gives for outcome ``positions`` (cases × rules), serialised.

        A batch of thousands repeats itself: a rule has a handful of outcomes, and the numbers that word
        a result (working days, a deadline, a limit) take far fewer values than there are cases. So each
        rule's results are worded and serialised once per distinct set of the inputs ``_result`` reads
        (``_result_inputs``), and each case's list of results once per distinct combination; a case then
        costs its case_id and a join of bytes, not a dict per result.
        """
        batch = measured.batch
        n, rules = batch.n, self.plan.rules
        listed: dict[int, list[tuple[Any, ...]]] = {}
        # Per rule: the distinct results and, per row, which one is its own.
        distinct: list[list[dict[str, Any]]] = []
        serialised: list[list[bytes]] = []
        which = np.zeros((n, len(rules)), np.int64)
        for r, (rule_plan, measure) in enumerate(zip(rules, measured.measures, strict=True)):
            first, which[:, r] = _distinct_rows(
                _result_inputs(rule_plan, measure, measured, positions[:, r]), n
            )
            results = [
                self._result(rule_plan.rule, rule_plan.outcomes[p].code, measure, measured, row, lang, listed)
                for row, p in zip(first.tolist(), positions[first, r].tolist(), strict=True)
            ]
            distinct.append(results)
            serialised.append([orjson.dumps(result) for result in results])
        # The statuses, and so the case verdict, follow from the outcomes alone: worded once per distinct
        # row of outcomes, with the verdict object's members between its case_id and its results.
        first, outcomes = _distinct_rows(list(positions.T), n)
        verdicts, statuses, members = [], [], []
        for row in first.tolist():
            results = [distinct[r][i] for r, i in enumerate(which[row].tolist())]
            verdict = case_verdict(results)
            verdicts.append(verdict)
            statuses.append(orjson.dumps({r["rule"]: r["status"] for r in results}).decode())
            # ``{"kind":…,"results":[]}`` opened up: orjson writes an object as its members joined by
            # commas, so members, then the serialised results, make ``orjson.dumps`` of the whole.
            shared = {"kind": batch.kind, "verdict": verdict, "as_of": measured.as_of}
            shared |= {"ruleset": self.ruleset, "calendar": self.calendar, "results": []}
            members.append(b"," + orjson.dumps(shared)[1:-2])
        # The rest of the verdict object after its case_id, once per distinct combination of results
        # (which fixes the outcomes too).
        first, combination = _distinct_rows(list(which.T), n)
        rests = [
            members[outcomes[row]]
            + b",".join(serialised[r][i] for r, i in enumerate(which[row].tolist()))
            + b"]}"
            for row in first.tolist()
        ]
        by_outcomes = outcomes.tolist()
        return SerialisedVerdicts(
            [b'{"case_id":' + orjson.dumps(case_id) for case_id in batch.case_id.tolist()],
            [rests[c] for c in combination.tolist()],
            [verdicts[o] for o in by_outcomes],
            [statuses[o] for o in by_outcomes],
        )

    def _result(
        self,
        rule: Rule,
        code: str,
        measure: RuleMeasure,
        measured: Measured,
        row: int,
        lang: Lang,
        listed: dict[int, list[tuple[Any, ...]]],
    ) -> dict[str, Any]:
        # Copies, both: the caller owns (and may change) the verdicts it gets.
        if code in _MEASURED:
            rows = listed.get(id(measure))
            if rows is None:
                rows = listed[id(measure)] = _measure_rows(measure)
            return self._measured_result(rule.id, code, lang, *rows[row]).copy()
        constant = self._condition_results.get((rule.id, code, lang))
        if constant is not None:
            return constant.copy()
        result: dict[str, Any] = {"rule": rule.id, "severity": rule.severity, "unit": rule.unit}
        kind, _, detail = code.partition(":")
        result["status"] = status_of(code)
        result["reason"] = self._reason(rule, code, detail, measure, measured, row, lang)
        result["message"] = result["reason"]
        result["source"] = self._sources[rule.id]
        if kind == "na" and detail not in ("effective", "ended", "input"):
            self._condition_results[(rule.id, code, lang)] = result.copy()
        return result

    def _reason(
        self,
        rule: Rule,
        code: str,
        detail: str,
        measure: RuleMeasure,
        measured: Measured,
        row: int,
        lang: Lang,
    ) -> str:
        """Why a reasoned outcome holds. The condition reasons (``na:absent:K``, ``na:cond:K``) depend on
        the rule alone, so ``_result`` keeps their whole result and words them once per language."""
        text = _TEXT[lang]
        if code == "na:effective":
            anchor = _day(measured.anchor[row])
            return text["effective"].format(
                effective=rule.effective_from, anchor=self.anchor_field, date=anchor
            )
        if code == "na:ended":
            anchor = _day(measured.anchor[row])
            reason = text["ended"].format(until=rule.effective_until, anchor=self.anchor_field, date=anchor)
            if rule.replaced_by is not None:
                reason += text["replaced"].format(rule=rule.replaced_by)
            return reason
        if code == "exempt":
            return text["exempt"].format(reason=measured.batch.exemptions[rule.id][row])
        if code in ("na:input", "fail:input"):
            key = "fail_input" if code == "fail:input" else "input"
            return text[key].format(field=measure.missing[row])
        reason, k = detail.split(":")
        conjunct = _conjunct(rule, int(k))
        if reason == "absent":
            assert isinstance(conjunct, Leaf)
            return text["absent"].format(field=conjunct.field, label=_label(conjunct, lang))
        key = "cond_not" if isinstance(conjunct, NotOf) else "cond"
        return text[key].format(label=_label(conjunct, lang))

    def _word_measured(
        self,
        rule_id: str,
        code: str,
        lang: Lang,
        value: Any,
        allowance: Any,
        deadline: date | None,
        excluded: int | None,
        not_excluded: int | None,
        deadline_note: str | None,
        extended: bool | None,
        open_note: OpenNote | None,
    ) -> dict[str, Any]:
        """A measured result (pass, pending, fail) from one row's ``_measure_rows`` values: nothing else
        of the case, so that ``_measured_result`` may keep it for the next row with the same values."""
        rule = self._rules[rule_id]
        text = _TEXT[lang]
        wording = self._wording.get((rule_id, lang))
        if wording is None:
            wording = self._wording[(rule_id, lang)] = _Wording.of(rule, lang)
        value = _number(value)
        # A month limit only has a length in days per case; a day limit keeps its literal number and the
        # rest-day extension shows in the deadline.
        months = wording.months
        limit = _number(allowance) if months and allowance is not None else rule.require.limit
        unit = rule.unit
        # One literal in the JSON order of ``RuleResult``; the optional keys follow in that order too.
        result: dict[str, Any] = {
            "rule": rule_id,
            "severity": rule.severity,
            "unit": unit,
            "status": code,
            "value": value,
            "limit": limit,
            "deadline": deadline,
        }
        fields = {"value": quantity(value, unit, lang), "deadline": deadline or text["not_given"]}
        if months:
            fields["limit"] = quantity(limit, unit, lang)
        if code == "pending":
            allowed = allowance if allowance is not None else rule.require.limit
            remaining = int(allowed) - int(value)  # type: ignore[arg-type]
            result["remaining"] = remaining
            fields["remaining"] = quantity(remaining, unit, lang)
        message = wording.templates[code].format_map(fields)
        if excluded is not None:
            result["excluded"] = excluded
            if excluded:
                message += text["excluded"].format(excluded=quantity(excluded, "working_days", lang))
            if not_excluded:
                message += text["not_excluded"].format(count=quantity(not_excluded, "pauses", lang))
        if extended and code != "pending":
            message += text["extended"].format(deadline=deadline)
        if deadline_note is not None:
            message += text["no_deadline"]
        if open_note is not None:
            result["note"] = open_note.code
            message += text[open_note.code].format(as_of=open_note.as_of, last=open_note.last)
        result["message"] = message
        result["source"] = self._sources[rule_id]
        return result


@dataclass(frozen=True)
class _Wording:
    """What a rule's measured results say whatever the case, worded once per language.

    Each message template (``pass``, ``fail``, ``pending``) has the title, the operator and, unless the
    limit is the case's own (months), the limit already in it: a result formats only the case's numbers.
    """

    months: bool
    templates: dict[str, str]

    @classmethod
    def of(cls, rule: Rule, lang: Lang) -> _Wording:
        months = isinstance(rule.measure, MonthsMeasure)
        fixed = {
            "title": getattr(rule.title, lang),
            "op": _OPS[lang][rule.require.op],
            "limit": None if months else quantity(rule.require.limit, rule.unit, lang),
        }
        # Filled in now: the fixed words (braces doubled, so that they stay text); kept as placeholders:
        # the case's own numbers.
        filling = {
            key: "{" + key + "}" if word is None else word.replace("{", "{{").replace("}", "}}")
            for key, word in fixed.items()
        }
        filling.update((key, "{" + key + "}") for key in ("value", "remaining", "deadline"))
        templates = {code: _TEXT[lang][code].format_map(filling) for code in ("pass", "fail", "pending")}
        return cls(months, templates)


def _result_inputs(
    rule_plan: RulePlan, measure: RuleMeasure, measured: Measured, positions: np.ndarray
) -> list[np.ndarray]:
    """Per row, int64 columns that are equal only where ``VerdictBuilder._result`` words the same result.

    They are the outcome and, for that outcome, every per-row input ``_result`` reads: a measured
    outcome reads the measure's arrays that ``_MEASURE_ROWS`` lists (all ``_measured_result`` sees),
    ``na:effective`` the anchor date, ``exempt`` the exemption's reason, ``na:input``/``fail:input`` the
    missing field (``_reason``); a condition outcome reads none. A per-row input added to ``_reason``
    must be added here, or rows that differ in it would share a wording.
    """
    reads: dict[str, list[np.ndarray | None]] = {
        "measured": [getattr(measure, name) for name in _MEASURE_ROWS],
        "na:effective": [measured.anchor],
        "exempt": [measured.batch.exemptions.get(rule_plan.rule.id)],
        "input": [measure.missing],
    }
    # Each outcome's group of inputs, by its position in ``reads`` (-1: it reads none).
    names = list(reads)
    group_of = np.array(
        [
            names.index(name) if name in names else -1
            for name in (
                "measured" if code in _MEASURED else "input" if code in ("na:input", "fail:input") else code
                for code in (outcome.code for outcome in rule_plan.outcomes)
            )
        ]
    )
    group = group_of[positions]
    columns = [positions]
    for number, arrays in enumerate(reads.values()):
        rows = np.flatnonzero(group == number)
        if not len(rows):
            continue
        for values in arrays:
            if values is not None:
                column = np.zeros(len(positions), np.int64)
                column[rows] = _as_integers(values[rows])
                columns.append(column)
    return columns


def _as_integers(values: np.ndarray) -> np.ndarray:
    """int64 per value, equal where the values are: numbers and dates by their bits, objects by a
    numbering of their distinct (type, value) pairs (so that True and 1 stay apart)."""
    if values.dtype.kind == "O":
        absent = np.equal(values, None)
        if absent.all():  # the usual deadline_note or missing field: no Python loop
            return np.zeros(len(values), np.int64)
        numbers: dict[tuple[type, Any], int] = {}
        return np.array([numbers.setdefault((type(v), v), len(numbers)) for v in values.tolist()], np.int64)
    if values.dtype.kind == "f":
        return np.ascontiguousarray(values, np.float64).view(np.int64)
    if values.dtype.kind == "M":
        return values.astype("datetime64[D]").view(np.int64)
    return values.astype(np.int64)


def _distinct_rows(columns: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct row, distinct row of each row) of ``n``-row int64 columns.

    One stable ``lexsort`` of the rows, then a new group wherever a row differs from the one before it
    in any column: ``np.unique(axis=0)`` sorts the rows as opaque records at several times the cost.
    """
    if not columns or n == 0:
        return np.zeros(min(n, 1), np.int64), np.zeros(n, np.int64)
    order = np.lexsort(columns)
    starts = np.zeros(n, bool)
    starts[0] = True
    for column in columns:
        ordered = column[order]
        starts[1:] |= ordered[1:] != ordered[:-1]
    group = np.empty(n, np.int64)
    group[order] = np.cumsum(starts) - 1
    # Stable, so each group's first row in sorted order is its first row in the batch.
    return order[starts], group


def _conjunct(rule: Rule, k: int) -> Condition:
    assert rule.when is not None
    return rule.when.all[k] if isinstance(rule.when, AllOf) else rule.when


def result_verdict(status: str, severity: str) -> CaseVerdict:
    """What one result says of its case: a failed mandatory rule fails it, a failed advisory rule warns,
    a pending rule leaves it pending; anything else lets it pass."""
    if status == "fail":
        return "fail" if severity == "mandatory" else "warn"
    return "pending" if status == "pending" else "pass"


# A case's verdict is the weightiest of what its results say, in this order; ``not_checked`` when its kind
# has no per-case rule. The scan rolls up whole matrices of outcomes by the same ranks.
VERDICT_PRECEDENCE: tuple[CaseVerdict, ...] = ("pass", "pending", "warn", "fail")
_RANK = {
    (status, severity): VERDICT_PRECEDENCE.index(result_verdict(status, severity))
    for status in typing.get_args(Status)
    for severity in ("mandatory", "advisory")
}


def case_verdict(results: list[dict[str, Any]]) -> str:
    """The case verdict of its results (``VERDICT_PRECEDENCE``)."""
    if not results:
        return "not_checked"
    return VERDICT_PRECEDENCE[max(_RANK[result["status"], result["severity"]] for result in results)]
