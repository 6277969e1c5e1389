"""What the service does, apart from HTTP: check cases with both executors and log every answered check.

- Single checks run the durable executor on the event loop thread: one check costs less than a hop to a
  thread pool, and durable_rules keeps per-process state that is best not shared between threads.
- Batches (up to 10,000 cases) run the columnar executor in a worker thread so that they do not stall
  the single checks being answered meanwhile; one batch at a time per process (``batch_threads``), as
  batches running in several threads only take turns on the GIL, and switching between them every few
  milliseconds costs each batch CPU.
- A check is answered only after its record is committed to the verdict log (``engine.store``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import anyio
import orjson

from engine.api.errors import ApiError, json_problem
from engine.api.settings import KeyHolder, Settings, load_api_keys
from engine.cases import shown_id, validate_case
from engine.core import Engine, isolated, parse_as_of
from engine.domain import Lang
from engine.errors import CalendarRangeError, InvalidCase
from engine.rules import AggregateRule, Rule
from engine.store import CheckRecord, CheckRows, Store, canonical_sha256, open_store
from engine.verdicts import SerialisedVerdicts

__all__ = ["Service", "batch_answer", "rule_summary"]


@dataclass
class Service:
    """Per-process state: both engines, the store and the keys."""

    settings: Settings
    durable: Engine
    columnar: Engine
    store: Store
    keys: dict[str, KeyHolder] | None
    batch_threads: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))

    @classmethod
    def load(cls, settings: Settings) -> Service:
        """Both engines of the settings' packs, the store opened, the keys read."""
        return cls(
            settings=settings,
            durable=Engine.load(settings.packs, settings.overlay, "durable"),
            columnar=Engine.load(settings.packs, settings.overlay, "columnar"),
            store=open_store(settings.store),
            keys=load_api_keys(settings.api_keys) if settings.api_keys else None,
        )

    def check_one(self, obj: Any, as_of: date | None, lang: Lang, caller: str | None) -> dict[str, Any]:
        """Validate, check with the durable executor, commit the record, return the verdict dict."""
        try:
            case = validate_case(obj)
        except InvalidCase as exc:
            raise ApiError(422, "invalid case", exc.items()) from None
        try:
            verdict = self.durable.check_many([case], as_of, lang)[0]
        except CalendarRangeError as exc:
            raise ApiError(
                422, "as_of outside the calendar", [{"path": "query.as_of", "message": str(exc)}]
            ) from None
        self.store.record([CheckRecord.from_verdict(verdict, canonical_sha256(obj), caller)])
        return verdict

    def check_batch(
        self, body: bytes, ndjson: bool, as_of: date | None, lang: Lang, caller: str | None
    ) -> bytes:
        """One result per record in input order; runs in a worker thread, one batch at a time per process
        (``batch_threads``; see the module docstring)."""
        items: list[tuple[Any, dict[str, Any] | None]] = []  # (parsed record, or None with its error)
        if not ndjson:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise ApiError(422, "invalid JSON", [json_problem(exc)]) from None
            if not isinstance(parsed, list):
                raise ApiError(
                    422, "invalid batch", [{"path": "$", "message": "must be a JSON array or NDJSON"}]
                )
            items = [(obj, None) for obj in parsed]
        else:
            for line_number, line in enumerate(body.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    items.append((orjson.loads(line), None))
                except orjson.JSONDecodeError as exc:
                    items.append((None, {"line": line_number, **json_problem(exc)}))
        if len(items) > self.settings.max_batch_cases:
            raise ApiError(
                413, f"{len(items)} cases exceed the limit of {self.settings.max_batch_cases} per batch"
            )

        # Each refused item is serialised as it is made; the verdicts come serialised from the engine.
        refused: list[bytes | None] = [None] * len(items)
        valid: list[Any] = []
        positions: list[int] = []
        seen: dict[str, int] = {}
        for index, (obj, parse_error) in enumerate(items):
            if parse_error is not None:
                line = parse_error.pop("line")
                refused[index] = orjson.dumps(
                    {"index": index, "ok": False, "line": line, "errors": [parse_error]}
                )
                continue
            case_id = obj.get("case_id") if isinstance(obj, dict) else None
            # A repeated case_id is reported together with the record's own defects, if any.
            errors = []
            if isinstance(case_id, str):
                if case_id in seen:
                    message = (
                        f"duplicate case_id: already at index {seen[case_id]} (must be unique in a batch)"
                    )
                    errors.append({"path": "case_id", "message": message})
                else:
                    seen[case_id] = index
            try:
                case = validate_case(obj)
            except InvalidCase as exc:
                errors += exc.items()
            if errors:
                refused[index] = _refused(index, case_id, errors)
                continue
            valid.append(case)
            positions.append(index)

        try:
            day = parse_as_of(as_of)
            done, failed = isolated(valid, partial(self.columnar.check_serialised, as_of=day, lang=lang))
        except CalendarRangeError as exc:
            raise ApiError(
                422, "as_of outside the calendar", [{"path": "query.as_of", "message": str(exc)}]
            ) from None
        for at, error in failed.items():
            path = "query.as_of" if error.path == "as_of" else error.path  # as_of is a query parameter
            refused[positions[at]] = _refused(
                positions[at], valid[at].case_id, [{"path": path, "message": error.message}]
            )
        verdicts = done[0][1] if len(done) == 1 else _in_order(done)
        kept = [at for at in range(len(valid)) if at not in failed]
        valid, positions = [valid[at] for at in kept], [positions[at] for at in kept]
        self.store.record_rows(
            CheckRows(
                case_id=[case.case_id for case in valid],
                case_sha256=[canonical_sha256(items[index][0]) for index in positions],
                verdict=verdicts.verdict,
                statuses=verdicts.statuses,
                as_of=day.isoformat(),
                ruleset=self.columnar.pack.version,
                calendar=self.columnar.calendar.version,
                caller=caller,
                checked_at=datetime.now(UTC),
            )
        )
        return batch_answer(refused, verdicts)


def _refused(index: int, case_id: Any, errors: list[dict[str, str]]) -> bytes:
    """One refused item of a batch answer, serialised (the case_id cut if it is not a plausible one)."""
    return orjson.dumps({"index": index, "ok": False, "case_id": shown_id(case_id), "errors": errors})


def _in_order(parts: list[tuple[list[int], SerialisedVerdicts]]) -> SerialisedVerdicts:
    """The verdicts of the parts ``isolated`` checked, joined in input order."""
    rows = sorted(
        ((position, part, row) for positions, part in parts for row, position in enumerate(positions)),
        key=lambda entry: entry[0],
    )
    return SerialisedVerdicts(
        *([getattr(part, f.name)[row] for _, part, row in rows] for f in fields(SerialisedVerdicts))
    )


def batch_answer(refused: list[bytes | None], verdicts: SerialisedVerdicts) -> bytes:
    """The batch answer, byte for byte ``orjson.dumps`` of {count, checked, invalid, results}: the
    refused items, and the checked ones (None in ``refused``) from their verdicts' pieces in order.

    Every piece goes into one list and is copied once, by the final join: wrapping each verdict first
    and joining the items after would copy the megabytes of a 10,000-case answer three times.
    """
    checked = len(verdicts.head)
    counts = orjson.dumps({"count": len(refused), "checked": checked, "invalid": len(refused) - checked})
    pieces = [counts[:-1] + b',"results":[']
    add = pieces.extend
    verdict = iter(zip(verdicts.head, verdicts.rest, strict=True))
    for index, item in enumerate(refused):
        if item is None:
            head, rest = next(verdict)
            add((b'{"index":%d,"ok":true,"verdict":' % index, head, rest, b"},"))
        else:
            add((item, b","))
    if len(pieces) > 1:
        pieces[-1] = pieces[-1][:-1]  # no comma after the last item
    pieces.append(b"]}")
    return b"".join(pieces)


def rule_summary(rule: Rule | AggregateRule) -> dict[str, Any]:
    """A rule as /v1/rules lists it (``schemas.RuleSummary``)."""
    return {
        "id": rule.id,
        "kind": rule.kind,
        "aggregate": isinstance(rule, AggregateRule),
        "severity": rule.severity,
        "title": rule.title.model_dump(),
        "source": rule.source.reference,
        "effective_from": rule.effective_from.isoformat(),
    }
