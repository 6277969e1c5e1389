"""The engine: one pipeline from case records to verdicts, with either executor.

parse (orjson) → validate (``cases``) → measure (``measures``) → match (``executors``) → verdicts.
Cases are grouped by kind so that each group is measured as columns in one go, then put back in input
order; a single check is the same path with a batch of one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from datetime import date, datetime
from typing import Any, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from engine.calendar import CalendarRangeError, WorkdayIndex, load_calendar
from engine.cases import Case, CaseBase, shown_error, validate_case
from engine.executors.plan import KindPlan, plan_kind
from engine.measures import Batch, Measured, measure_batch, referenced_fields
from engine.rules import KINDS, RulePack, load_pack
from engine.verdicts import Lang, SerialisedVerdicts, Verdict, VerdictBuilder

EngineName = Literal["durable", "columnar"]
SHANGHAI = ZoneInfo("Asia/Shanghai")
T = TypeVar("T")


def isolated(
    items: Sequence[Any], run: Callable[[Sequence[Any]], T]
) -> tuple[list[tuple[list[int], T]], dict[int, str]]:
    """``run`` over all ``items`` at once; where it raises, over halves, down to the single items that
    make it raise. Returns each part that ran (its positions, its result) and, per item that failed, why.

    This is how one record never sinks the others, whatever goes wrong while it is measured or matched:
    a batch with k such records costs about k·log2(n) extra runs, a clean batch none. An ``as_of``
    outside the calendar concerns the whole request, not a record, so it is raised as is.
    """
    done: list[tuple[list[int], T]] = []
    failed: dict[int, str] = {}
    parts = [list(range(len(items)))] if items else []
    while parts:
        part = parts.pop()
        try:
            done.append((part, run([items[i] for i in part])))
        except CalendarRangeError:
            raise
        except Exception as exc:
            if len(part) == 1:
                failed[part[0]] = f"could not be checked: {shown_error(exc)}"
            else:
                parts += [part[len(part) // 2 :], part[: len(part) // 2]]
    return done, failed


class Executor(Protocol):
    name: str

    def match(self, plan: KindPlan, measured: Measured) -> list[list[str]]:
        """Per case, each rule's outcome code: what verdicts are worded from."""
        ...

    def positions(self, plan: KindPlan, measured: Measured) -> np.ndarray:
        """(cases × rules) int64 positions of each rule's outcome in its ``outcomes``: what scans count."""
        ...


def today_in_shanghai() -> date:
    return datetime.now(SHANGHAI).date()


def parse_as_of(value: str | date | None) -> date:
    """``as_of`` for open cases: a date, an ISO string, or today in Asia/Shanghai."""
    if value is None:
        return today_in_shanghai()
    if isinstance(value, datetime):
        return value.astimezone(SHANGHAI).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def make_executor(name: EngineName, plans: dict[str, KindPlan]) -> Executor:
    if name == "durable":
        from engine.executors.durable import DurableExecutor

        return DurableExecutor(plans)
    if name == "columnar":
        from engine.executors.columnar import ColumnarExecutor

        return ColumnarExecutor(plans)
    raise ValueError(f"unknown engine {name!r}: use durable or columnar")


class Engine:
    """A rule pack, a calendar and an executor, ready to check cases."""

    def __init__(self, pack: RulePack, calendar: WorkdayIndex, engine: EngineName = "durable") -> None:
        self.pack = pack
        self.calendar = calendar
        self.plans = {kind: plan_kind(pack, kind) for kind in KINDS}
        self.fields = {kind: referenced_fields(pack, kind) for kind in KINDS}
        self.executor = make_executor(engine, self.plans)
        self.builders = {
            kind: VerdictBuilder(self.plans[kind], pack.anchor(kind), pack.version, calendar.version)
            for kind in KINDS
        }

    @classmethod
    def load(
        cls, pack: str = "ningbo-2020", overlay: str | None = None, engine: EngineName = "durable"
    ) -> Engine:
        return cls(load_pack(pack), load_calendar(overlay), engine)

    def check(self, case: Any, as_of: str | date | None = None, lang: Lang = "zh") -> Verdict:
        """The verdict of one case: a dict, JSON bytes/str, or a validated case model."""
        if isinstance(case, bytes | str):
            case = orjson.loads(case)
        model = case if isinstance(case, CaseBase) else validate_case(case)
        return Verdict.model_validate(self.check_many([model], as_of, lang)[0])

    def check_many(
        self, cases: Sequence[Case], as_of: str | date | None = None, lang: Lang = "zh"
    ) -> list[dict[str, Any]]:
        """Verdict dicts (the JSON shape of ``Verdict``) for validated cases, in input order."""
        verdicts: list[dict[str, Any]] = [{}] * len(cases)
        for kind, positions, measured in self._measured(cases, as_of):
            outcomes = self.executor.match(self.plans[kind], measured)
            for position, verdict in zip(
                positions, self.builders[kind].build(measured, outcomes, lang), strict=True
            ):
                verdicts[position] = verdict
        return verdicts

    def check_serialised(
        self, cases: Sequence[Case], as_of: str | date | None = None, lang: Lang = "zh"
    ) -> SerialisedVerdicts:
        """The verdicts of ``check_many`` as JSON bytes, with each case's verdict and statuses, in input
        order: for batches, which would otherwise build a dict per result only to serialise it."""
        # Object arrays, so that each kind's values are put in place by one fancy assignment.
        columns = {f.name: np.empty(len(cases), object) for f in fields(SerialisedVerdicts)}
        for kind, positions, measured in self._measured(cases, as_of):
            outcomes = self.executor.positions(self.plans[kind], measured)
            built = self.builders[kind].build_json(measured, outcomes, lang)
            for name, column in columns.items():
                column[positions] = np.fromiter(getattr(built, name), object, len(positions))
        return SerialisedVerdicts(**{name: column.tolist() for name, column in columns.items()})

    def _measured(
        self, cases: Sequence[Case], as_of: str | date | None
    ) -> Iterator[tuple[str, list[int], Measured]]:
        """Per kind: the input positions of its cases and their measured batch."""
        day = parse_as_of(as_of)
        by_kind: dict[str, list[int]] = {}
        for position, case in enumerate(cases):
            by_kind.setdefault(case.kind, []).append(position)
        for kind, positions in by_kind.items():
            batch = Batch.from_cases(kind, [cases[p] for p in positions], self.fields[kind])
            yield kind, positions, measure_batch(self.pack, batch, self.calendar, day)
