"""The engine: one pipeline from case records to verdicts, with either executor.

parse (orjson) → validate (``cases``) → measure (``measures``) → match (``executors``) → verdicts.
Cases are grouped by kind so that each group is measured as columns in one go, then put back in input
order; a single check is the same path with a batch of one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

import numpy as np
import orjson

from engine.batch import Batch
from engine.calendar import WorkdayIndex, load_calendar
from engine.cases import Case, CaseBase, shown_error, validate_case
from engine.domain import KINDS, SHANGHAI, ExecutorName, Lang
from engine.errors import CalendarRangeError, CaseError
from engine.executors.plan import KindPlan, plan_kind, status_of
from engine.measures import Measured, measure_batch
from engine.packs import RulePack, load_packs, referenced_fields
from engine.verdicts import SerialisedVerdicts, Verdict, VerdictBuilder

__all__ = [
    "CasesRefused",
    "Engine",
    "Executor",
    "MeasuredPart",
    "Setup",
    "isolated",
    "make_executor",
    "parse_as_of",
    "pending_outcomes",
    "refused_reason",
    "today_in_shanghai",
]

T = TypeVar("T")


class Executor(Protocol):
    name: str

    def match(self, plan: KindPlan, measured: Measured) -> list[list[str]]:
        """Per case, each rule's outcome code: what verdicts are worded from."""
        ...

    def outcome_indices(self, plan: KindPlan, measured: Measured) -> np.ndarray:
        """(cases × rules) int64 positions of each rule's outcome in its ``outcomes``: what scans count."""
        ...


class CasesRefused(CalendarRangeError):
    """Some cases could not be judged: as_of lies past the calendar and a rule of theirs is still pending
    on it. ``refused`` maps their input positions to the reason; the others were judged (``verdicts``, in
    input order without the refused ones)."""

    def __init__(self, refused: dict[int, str], verdicts: Any, as_of: date, covered: tuple[int, int]) -> None:
        super().__init__(as_of.year, covered)
        self.refused = refused
        self.verdicts = verdicts
        self.args = (refused_reason(as_of, covered),)


def refused_reason(as_of: date, covered: tuple[int, int]) -> str:
    """Why an open case cannot be judged as of a day past the calendar."""
    return (
        f"{as_of} lies past the working-day calendar and the case is still open, so its working days "
        f"cannot be counted: {CalendarRangeError(as_of.year, covered)}"
    )


def isolated(
    items: Sequence[Any], run: Callable[[Sequence[Any]], T]
) -> tuple[list[tuple[list[int], T]], dict[int, CaseError]]:
    """``run`` over all ``items`` at once; where it raises, over halves, down to the single items that
    make it raise. Returns each part that ran (the positions judged, their results in order) and, per
    item not judged, its error: ``as_of`` for a case refused by ``CasesRefused``, ``$`` for a failure.

    This is how one record never sinks the others, whatever goes wrong while it is measured or matched:
    a batch with k such records costs about k·log2(n) extra runs, a clean batch none. An ``as_of``
    outside the calendar for every case concerns the whole request, not a record: it is raised as is.
    """
    done: list[tuple[list[int], T]] = []
    failed: dict[int, CaseError] = {}
    parts = [list(range(len(items)))] if items else []
    while parts:
        part = parts.pop()
        try:
            done.append((part, run([items[i] for i in part])))
        except CasesRefused as exc:  # the others of the part were judged
            done.append(([p for i, p in enumerate(part) if i not in exc.refused], exc.verdicts))
            failed.update((part[i], CaseError("as_of", why)) for i, why in exc.refused.items())
        except CalendarRangeError:
            raise
        except Exception as exc:
            if len(part) == 1:
                failed[part[0]] = CaseError("$", f"could not be checked: {shown_error(exc)}")
            else:
                parts += [part[len(part) // 2 :], part[: len(part) // 2]]
    return done, failed


def pending_outcomes(plan: KindPlan, positions: np.ndarray) -> np.ndarray:
    """(cases × rules) bool: the rule's outcome is pending."""
    tables = [np.array([status_of(o.code) == "pending" for o in rp.outcomes], bool) for rp in plan.rules]
    pending = np.zeros(positions.shape, bool)
    for r, table in enumerate(tables):
        pending[:, r] = table[positions[:, r]]
    return pending


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


def make_executor(name: ExecutorName, plans: dict[str, KindPlan]) -> Executor:
    if name == "durable":
        from engine.executors.durable import DurableExecutor

        return DurableExecutor(plans)
    if name == "columnar":
        from engine.executors.columnar import ColumnarExecutor

        return ColumnarExecutor(plans)
    raise ValueError(f"unknown engine {name!r}: use durable or columnar")


_NO_ROWS = np.zeros(0, np.int64)


@dataclass(frozen=True)
class MeasuredPart:
    """Part of a batch measured on one calendar: its rows (None: every row of the batch), the rows that
    cannot be judged as of the day (left out), and the measured batch of the others (None if none)."""

    rows: np.ndarray | None
    refused: np.ndarray
    measured: Measured | None
    calendar: WorkdayIndex


@dataclass(frozen=True)
class Setup:
    """What an engine was loaded from, by name: enough for a worker process to load the same one."""

    packs: tuple[str, ...] = ("ningbo-2020",)
    overlay: str | None = None


class Engine:
    """A rule pack, a calendar and an executor, ready to check cases."""

    def __init__(self, pack: RulePack, calendar: WorkdayIndex, executor: ExecutorName = "durable") -> None:
        self.pack = pack
        self.calendar = calendar
        self.setup = Setup()
        self.plans = {kind: plan_kind(pack, kind) for kind in KINDS}
        self.fields = {kind: referenced_fields(pack, kind) for kind in KINDS}
        self.executor = make_executor(executor, self.plans)
        self.builders = {
            kind: VerdictBuilder(self.plans[kind], pack.anchor(kind), pack.version, calendar.version)
            for kind in KINDS
        }
        self._local_builders: dict[tuple[str, str], VerdictBuilder] = {}
        # A case whose field value the pack maps to an overlay is measured on the calendar with it.
        self.case_calendars: dict[str, WorkdayIndex] = {}
        mapping = pack.case_overlays
        if mapping is not None:
            base = list(calendar.overlays)
            self.case_calendars = {
                value: load_calendar([*base, overlay]) for value, overlay in mapping.overlays.items()
            }
            for names in self.fields.values():
                names.append(mapping.field)

    def builder(self, kind: str, calendar: WorkdayIndex) -> VerdictBuilder:
        """The verdict builder of a kind on a calendar (each names its calendar's version)."""
        if calendar is self.calendar:
            return self.builders[kind]
        key = (kind, calendar.version)
        if key not in self._local_builders:
            anchor, ruleset = self.pack.anchor(kind), self.pack.version
            self._local_builders[key] = VerdictBuilder(self.plans[kind], anchor, ruleset, calendar.version)
        return self._local_builders[key]

    def calendars_of(self, batch: Batch) -> list[tuple[np.ndarray | None, WorkdayIndex]]:
        """The batch's rows by the calendar they are measured on: ``None`` for all rows when the pack maps
        no case to an overlay, else each calendar with its (ascending) rows."""
        if not self.case_calendars:
            return [(None, self.calendar)]
        field = self.pack.case_overlays.field  # type: ignore[union-attr]
        values = batch.columns[field]
        groups: list[tuple[np.ndarray | None, WorkdayIndex]] = []
        local = np.zeros(batch.n, bool)
        for value, calendar in self.case_calendars.items():
            rows = values == value
            if rows.any():
                groups.append((np.flatnonzero(rows), calendar))
                local |= rows
        if not local.all():
            groups.append((np.flatnonzero(~local), self.calendar))
        return groups

    @classmethod
    def load(
        cls,
        pack: str | Sequence[str] = "ningbo-2020",
        overlay: str | None = None,
        executor: ExecutorName = "durable",
    ) -> Engine:
        """The engine of the named pack(s) (several are in force together) on the calendar with the
        overlay; names are looked up in the data directory, then in what casecheck ships."""
        loaded = cls(load_packs([pack] if isinstance(pack, str) else pack), load_calendar(overlay), executor)
        loaded.setup = Setup(tuple([pack] if isinstance(pack, str) else pack), overlay)
        return loaded

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
        refused: dict[int, str] = {}
        for kind, positions, measured, calendar in self._measured(cases, as_of, refused):
            outcomes = self.executor.match(self.plans[kind], measured)
            for position, verdict in zip(
                positions, self.builder(kind, calendar).build(measured, outcomes, lang), strict=True
            ):
                verdicts[position] = verdict
        if refused:
            kept = [v for p, v in enumerate(verdicts) if p not in refused]
            raise CasesRefused(refused, kept, parse_as_of(as_of), self.calendar.covered)
        return verdicts

    def check_serialised(
        self, cases: Sequence[Case], as_of: str | date | None = None, lang: Lang = "zh"
    ) -> SerialisedVerdicts:
        """The verdicts of ``check_many`` as JSON bytes, with each case's verdict and statuses, in input
        order: for batches, which would otherwise build a dict per result only to serialise it."""
        # Object arrays, so that each kind's values are put in place by one fancy assignment.
        columns = {f.name: np.empty(len(cases), object) for f in fields(SerialisedVerdicts)}
        refused: dict[int, str] = {}
        for kind, positions, measured, calendar in self._measured(cases, as_of, refused):
            outcomes = self.executor.outcome_indices(self.plans[kind], measured)
            built = self.builder(kind, calendar).build_json(measured, outcomes, lang)
            for name, column in columns.items():
                column[positions] = np.fromiter(getattr(built, name), object, len(positions))
        if refused:
            kept = np.setdiff1d(np.arange(len(cases)), list(refused))
            columns = {name: column[kept] for name, column in columns.items()}
        verdicts = SerialisedVerdicts(**{name: column.tolist() for name, column in columns.items()})
        if refused:
            raise CasesRefused(refused, verdicts, parse_as_of(as_of), self.calendar.covered)
        return verdicts

    def _measured(
        self, cases: Sequence[Case], as_of: str | date | None, refused: dict[int, str]
    ) -> Iterator[tuple[str, list[int], Measured, WorkdayIndex]]:
        """Per kind and calendar: the input positions of its cases, their measured batch and the calendar
        they were measured on. Cases that cannot be judged go into ``refused`` instead."""
        day = parse_as_of(as_of)
        by_kind: dict[str, list[int]] = {}
        for position, case in enumerate(cases):
            by_kind.setdefault(case.kind, []).append(position)
        for kind, of_kind in by_kind.items():
            whole = Batch.from_cases(kind, [cases[p] for p in of_kind], self.fields[kind])
            for part in self.measured_parts(whole, day):
                if len(part.refused):
                    reason = refused_reason(day, part.calendar.covered)
                    refused.update((of_kind[row], reason) for row in part.refused.tolist())
                if part.measured is not None:
                    positions = of_kind if part.rows is None else [of_kind[row] for row in part.rows.tolist()]
                    yield kind, positions, part.measured, part.calendar

    def measured_parts(self, batch: Batch, as_of: date) -> list[MeasuredPart]:
        """The batch measured as of a day, in parts by the calendar its cases are measured on (the run's,
        or the overlay a case's field maps to); the cases that cannot be judged as of that day are left out
        of the measured batch and named in ``refused``."""
        parts = []
        for rows, calendar in self.calendars_of(batch):
            part = batch if rows is None else batch.take(rows)
            measured = measure_batch(self.pack, part, calendar, as_of)
            undecidable = self.undecidable(measured)
            if undecidable is None:
                parts.append(MeasuredPart(rows, _NO_ROWS, measured, calendar))
                continue
            every = np.arange(batch.n) if rows is None else rows
            kept = np.flatnonzero(~undecidable)
            remeasured = measure_batch(self.pack, part.take(kept), calendar, as_of) if len(kept) else None
            parts.append(MeasuredPart(every[kept], every[undecidable], remeasured, calendar))
        return parts

    def outcome_indices(self, measured: Measured) -> np.ndarray:
        """(cases × rules) outcome positions of a measured batch, by the engine's executor."""
        return self.executor.outcome_indices(self.plans[measured.batch.kind], measured)

    def undecidable(self, measured: Measured) -> np.ndarray | None:
        """The rows of a measured batch that cannot be judged (``Measured.undecidable``); None if none."""
        if all(m.beyond is None for m in measured.measures):
            return None
        plan = self.plans[measured.batch.kind]
        rows = measured.undecidable(pending_outcomes(plan, self.executor.outcome_indices(plan, measured)))
        return rows if rows.any() else None
