"""Watching open cases: a yellow card (预警) before a time limit, a red card (超时) once it has passed.

The executors still decide every verdict; the watch only decides when to look again. Each update of a
case is judged as of now, kept as the case's current state, and gives each pending time limit the moment
of its next card, on the working-day calendar in Asia/Shanghai:

- yellow at the start of the first day on which the days left (working or calendar days, as the rule
  counts) reach the rule's ``warn_at`` (the pack's default unless the rule sets its own);
- red at the start of the first day after the deadline.

The earliest of those moments is stored with the case in an indexed column (``next_due``), so a sweep
reads only the rows that are due, and after a restart every card that fell due while the service was down
is raised, with its due time and the time it was raised. A sweep judges the due cases again (columnar
executor) and raises a card only if the verdict bears it out: a pause that stops the clock has moved the
deadline, so the card is simply scheduled anew. Each card is raised at most once per (case, rule, level);
its id is stable, ``level:rule:case_id``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, Protocol

import orjson

from engine.cases import Case, validate_case
from engine.core import CasesRefused, Engine
from engine.domain import SHANGHAI
from engine.errors import CalendarRangeError, CasecheckError, CaseError, InvalidCase
from engine.rules import Rule
from engine.store import CheckRecord, Store, canonical_sha256

__all__ = [
    "Clock",
    "ManualClock",
    "StaleUpdate",
    "SystemClock",
    "Undecidable",
    "WatchStore",
    "Watcher",
    "day_start",
    "to_micros",
]

Level = Literal["yellow", "red"]
# A case's level on the watch list: red once a red card is raised, yellow once a yellow one is.
CaseLevel = Literal["green", "yellow", "red"]
SWEEP_ROWS = 10_000  # cases judged per sweep step: one columnar batch


class Clock(Protocol):
    """Where the watch reads the time: the system's, or one a test sets (no sleeping in tests)."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class ManualClock:
    """A clock that stands still until it is set."""

    current: datetime

    def now(self) -> datetime:
        return self.current


def day_start(day: date) -> datetime:
    """00:00 of a day in Asia/Shanghai: when a card that falls due on that day is due."""
    return datetime.combine(day, time(), SHANGHAI)


def _local_day(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def to_micros(moment: datetime) -> int:
    """A moment as integer microseconds since the epoch: what the indexed columns compare."""
    return int(moment.timestamp() * 1_000_000)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class Undecidable(CasecheckError, ValueError):
    """A case that cannot be judged as of today (the calendar does not reach its deadline)."""


class StaleUpdate(CasecheckError):
    """An update older than the stored state of its case (answered 409; nothing changes)."""

    def __init__(self, case_id: str, updated_at: datetime, stored: datetime) -> None:
        super().__init__(
            f"case {case_id}: updated_at {_iso(updated_at)} is older than the stored state ({_iso(stored)})"
        )


# ---------------------------------------------------------------------------------------------------------
# The store: the watch tables next to the verdict log
# ---------------------------------------------------------------------------------------------------------

_CASE_COLUMNS = (
    "case_id, kind, district, updated_at, state, level, record, verdict, clock, raised, "
    "rule, deadline, unit, remaining, next_due"
)
QUEUE_LOOKBACK = 1000  # cards re-examined when queueing webhook deliveries (see ``claim_deliveries``)
_CARD_COLUMNS = "id, case_id, rule, level, kind, district, deadline, due_at, raised_at"


@dataclass(frozen=True, slots=True)
class CaseState:
    """One case as the watch keeps it."""

    case_id: str
    kind: str
    district: str | None
    updated_at: int  # microseconds since the epoch
    state: Literal["open", "closed"]
    level: CaseLevel
    record: bytes  # the case's record as last put (JSON)
    verdict: bytes  # its verdict as of that update or the last sweep (JSON)
    clock: bytes  # JSON: per pending time limit, its deadline and card moments
    raised: bytes  # JSON: the "rule/level" of every card raised for the case
    rule: str | None  # the pending time limit with the nearest deadline
    deadline: str | None
    unit: str | None
    remaining: int | None
    next_due: int | None  # microseconds since the epoch of the next card; None when closed


class WatchStore:
    """The watch's two tables, ``watch_cases`` (one row per case, ``next_due`` indexed) and
    ``watch_cards`` (one row per card, ``seq`` the alerts cursor), in SQLite or PostgreSQL.

    The SQL is written once in the dialect both understand (``ON CONFLICT``, partial indexes); only the
    placeholder and the identity column differ.
    """

    def __init__(self, url: str) -> None:
        self._lock = threading.Lock()
        if url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self._db: Any = psycopg.connect(url, autocommit=True)
            self._mark, serial, self._begin = "%s", "BIGSERIAL PRIMARY KEY", "BEGIN"
        else:
            path = url.split("sqlite:///", 1)[1].split("?")[0] if url.startswith("sqlite://") else url
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 30000")
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._mark, serial, self._begin = "?", "INTEGER PRIMARY KEY AUTOINCREMENT", "BEGIN IMMEDIATE"
        with self.writing() as db:
            db.execute(
                """CREATE TABLE IF NOT EXISTS watch_cases (
                    case_id TEXT PRIMARY KEY, kind TEXT NOT NULL, district TEXT,
                    updated_at BIGINT NOT NULL, state TEXT NOT NULL, level TEXT NOT NULL,
                    record TEXT NOT NULL, verdict TEXT NOT NULL, clock TEXT NOT NULL, raised TEXT NOT NULL,
                    rule TEXT, deadline TEXT, unit TEXT, remaining INTEGER, next_due BIGINT
                )"""
            )
            # Only open cases have a next card: the sweep's query reads this index and nothing else.
            db.execute(
                "CREATE INDEX IF NOT EXISTS watch_cases_due ON watch_cases (next_due) "
                "WHERE next_due IS NOT NULL"
            )
            db.execute(
                f"""CREATE TABLE IF NOT EXISTS watch_cards (
                    seq {serial}, id TEXT NOT NULL UNIQUE, case_id TEXT NOT NULL, rule TEXT NOT NULL,
                    level TEXT NOT NULL, kind TEXT NOT NULL, district TEXT, deadline TEXT,
                    due_at TEXT NOT NULL, raised_at TEXT NOT NULL
                )"""
            )

            # One row per (webhook, card): its attempts, when to try again, and a lease that keeps two
            # workers from sending the same card at once.
            db.execute(
                """CREATE TABLE IF NOT EXISTS watch_deliveries (
                    url TEXT NOT NULL, seq BIGINT NOT NULL, case_id TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0, next_attempt BIGINT NOT NULL DEFAULT 0,
                    lease_until BIGINT, delivered_at TEXT, last_error TEXT, PRIMARY KEY (url, seq)
                )"""
            )
            db.execute(
                "CREATE INDEX IF NOT EXISTS watch_deliveries_open ON watch_deliveries (url, case_id, seq) "
                "WHERE delivered_at IS NULL"
            )

    def _sql(self, text: str) -> str:
        return text.replace("?", self._mark)

    # -- webhook deliveries ------------------------------------------------------------------------------

    def claim_deliveries(self, url: str, now: int, lease: int, limit: int) -> list[dict[str, Any]]:
        """Queue the cards not yet queued for ``url``, then lease (until ``now + lease``) the due ones that
        are their case's oldest undelivered card, oldest first: a case's cards go out in order."""
        with self.writing() as db:
            # From a little before the newest queued card: a PostgreSQL sequence number can commit after a
            # higher one, and the conflict clause skips what is queued already.
            db.execute(
                self._sql(
                    "INSERT INTO watch_deliveries (url, seq, case_id) SELECT ?, seq, case_id FROM watch_cards "
                    "WHERE seq > COALESCE((SELECT MAX(seq) FROM watch_deliveries WHERE url = ?), 0) - ? "
                    "ON CONFLICT (url, seq) DO NOTHING"
                ),
                (url, url, QUEUE_LOOKBACK),
            )
            rows = db.execute(
                self._sql(
                    f"SELECT d.attempts, c.seq, {', '.join('c.' + n for n in _CARD_COLUMNS.split(', '))} "
                    "FROM watch_deliveries d JOIN watch_cards c ON c.seq = d.seq "
                    "WHERE d.url = ? AND d.delivered_at IS NULL AND d.next_attempt <= ? "
                    "AND (d.lease_until IS NULL OR d.lease_until < ?) "
                    "AND NOT EXISTS (SELECT 1 FROM watch_deliveries e WHERE e.url = d.url "
                    "AND e.case_id = d.case_id AND e.seq < d.seq AND e.delivered_at IS NULL) "
                    "ORDER BY d.seq LIMIT ?"
                ),
                (url, now, now, limit),
            ).fetchall()
            names = ["attempts", "seq", *_CARD_COLUMNS.split(", ")]
            claimed = [dict(zip(names, row, strict=True)) for row in rows]
            db.cursor().executemany(
                self._sql("UPDATE watch_deliveries SET lease_until = ? WHERE url = ? AND seq = ?"),
                [(now + lease, url, card["seq"]) for card in claimed],
            )
        return claimed

    def delivered(self, url: str, seq: int, at: str) -> None:
        with self.writing() as db:
            db.execute(
                self._sql(
                    "UPDATE watch_deliveries SET delivered_at = ?, lease_until = NULL, "
                    "attempts = attempts + 1 WHERE url = ? AND seq = ?"
                ),
                (at, url, seq),
            )

    def retry_later(self, url: str, seq: int, next_attempt: int, error: str) -> None:
        with self.writing() as db:
            db.execute(
                self._sql(
                    "UPDATE watch_deliveries SET attempts = attempts + 1, next_attempt = ?, lease_until = NULL, "
                    "last_error = ? WHERE url = ? AND seq = ?"
                ),
                (next_attempt, error[:500], url, seq),
            )

    @contextmanager
    def writing(self) -> Iterator[Any]:
        """The connection inside one transaction, committed on leaving (rolled back on an error)."""
        with self._lock:
            self._db.execute(self._begin)
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, db: Any, case_id: str) -> CaseState | None:
        row = db.execute(
            self._sql(f"SELECT {_CASE_COLUMNS} FROM watch_cases WHERE case_id = ?"), (case_id,)
        ).fetchone()
        return None if row is None else CaseState(*row)

    def due(self, db: Any, now: int, limit: int) -> list[CaseState]:
        rows = db.execute(
            self._sql(
                f"SELECT {_CASE_COLUMNS} FROM watch_cases WHERE next_due IS NOT NULL AND next_due <= ? "
                "ORDER BY next_due LIMIT ?"
            ),
            (now, limit),
        ).fetchall()
        return [CaseState(*row) for row in rows]

    def put(self, db: Any, states: Sequence[CaseState]) -> None:
        names = _CASE_COLUMNS.split(", ")
        updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
        db.cursor().executemany(
            self._sql(
                f"INSERT INTO watch_cases ({_CASE_COLUMNS}) VALUES ({', '.join('?' * len(names))}) "
                f"ON CONFLICT (case_id) DO UPDATE SET {updates}"
            ),
            [
                tuple(v.decode() if isinstance(v, bytes) else v for v in (getattr(s, name) for name in names))
                for s in states
            ],
        )

    def add_cards(self, db: Any, cards: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert the cards not raised before; the new ones come back with their ``seq``."""
        added = []
        for card in cards:
            row = db.execute(
                self._sql(
                    f"INSERT INTO watch_cards ({_CARD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING RETURNING seq"
                ),
                tuple(card[name] for name in _CARD_COLUMNS.split(", ")),
            ).fetchone()
            if row is not None:
                added.append({"seq": row[0], **card})
        return added

    def cards(
        self, after: int = 0, limit: int = 1000, filters: dict[str, str | None] | None = None
    ) -> list[dict[str, Any]]:
        """Cards with ``seq`` > after, oldest first, optionally only of a level, district or kind."""
        where, params = ["seq > ?"], [after]
        for name, value in (filters or {}).items():
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        with self._lock:
            rows = self._db.execute(
                self._sql(
                    f"SELECT seq, {_CARD_COLUMNS} FROM watch_cards WHERE {' AND '.join(where)} "
                    "ORDER BY seq LIMIT ?"
                ),
                (*params, limit),
            ).fetchall()
        names = ["seq", *_CARD_COLUMNS.split(", ")]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def open_cases(self, filters: dict[str, str | None]) -> list[CaseState]:
        where, params = ["state = 'open'"], []
        for name, value in filters.items():
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        with self._lock:
            rows = self._db.execute(
                self._sql(
                    f"SELECT {_CASE_COLUMNS} FROM watch_cases WHERE {' AND '.join(where)} "
                    "ORDER BY deadline, case_id"
                ),
                params,
            ).fetchall()
        return [CaseState(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ---------------------------------------------------------------------------------------------------------
# Judging: the cards a verdict bears out, and the moment of the next one
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Judged:
    """What one judgement of a case gives the watch."""

    state: CaseState
    cards: list[dict[str, Any]] = field(default_factory=list)


class Watcher:
    """Takes case updates, keeps their state and clock, and raises the cards as they fall due."""

    def __init__(
        self,
        durable: Engine,
        columnar: Engine,
        watch: WatchStore,
        log: Store | None,
        clock: Clock | None = None,
    ) -> None:
        self.durable = durable
        self.columnar = columnar
        self.watch = watch
        self.log = log
        self.clock: Clock = clock or SystemClock()
        self.pack = durable.pack
        self.calendar = durable.calendar
        # A sweep and an update of the same case must not interleave: one judges, then writes.
        self._lock = threading.Lock()

    # -- updates in ---------------------------------------------------------------------------------------

    def update(
        self,
        obj: Any,
        caller: str | None = None,
        updated_at: datetime | None = None,
        case: Case | None = None,
    ) -> dict[str, Any]:
        """Validate (unless ``case`` is the validated ``obj``), judge as of now (durable executor), log,
        and keep one case's record as its state.

        Raises ``InvalidCase`` (422), ``StaleUpdate`` (409), ``CasesRefused`` or ``CalendarRangeError``.
        """
        case = case or validate_case(obj)
        return self._update([(obj, case, updated_at)], caller, self.durable)[0]

    def update_many(
        self, items: Sequence[tuple[Any, Case, datetime | None]], caller: str | None
    ) -> list[Any]:
        """Validated cases judged together (columnar executor); per item its answer or its ``StaleUpdate``
        / refusal, so that one stale or undecidable case never stops the others."""
        return self._update(items, caller, self.columnar, per_item=True)

    def _update(
        self,
        items: Sequence[tuple[Any, Case, datetime | None]],
        caller: str | None,
        engine: Engine,
        per_item: bool = False,
    ) -> list[Any]:
        now = self.clock.now()
        today = _local_day(now)
        answers: list[Any] = [None] * len(items)
        with self._lock, self.watch.writing() as db:
            fresh: list[int] = []
            stamps: dict[int, int] = {}
            for index, (_, case, updated_at) in enumerate(items):
                stamp = to_micros(updated_at or now)
                stored = self.watch.get(db, case.case_id)
                if stored is not None and stamp < stored.updated_at:
                    stale = StaleUpdate(
                        case.case_id, updated_at or now, datetime.fromtimestamp(stored.updated_at / 1e6, UTC)
                    )
                    if not per_item:
                        raise stale
                    answers[index] = stale
                    continue
                stamps[index] = stamp
                fresh.append(index)
            cases = [items[i][1] for i in fresh]
            try:
                verdicts: list[dict[str, Any] | None] = list(engine.check_many(cases, today))
            except CasesRefused as exc:
                if not per_item:
                    raise
                kept = iter(exc.verdicts)
                verdicts = [None if p in exc.refused else next(kept) for p in range(len(cases))]
                for p, reason in exc.refused.items():
                    answers[fresh[p]] = Undecidable(reason)
            states, records = [], []
            for p, index in enumerate(fresh):
                verdict = verdicts[p]
                if verdict is None:
                    continue
                obj, case, _ = items[index]
                stored = self.watch.get(db, case.case_id)
                judged = self._judge(case, obj, verdict, stored, stamps[index], now)
                states.append(judged.state)
                judged.cards = self.watch.add_cards(db, judged.cards)
                records.append(CheckRecord.from_verdict(verdict, canonical_sha256(obj), caller, now))
                answers[index] = self._answer(judged, verdict)
            self.watch.put(db, states)
        # After the watch's commit: in SQLite both share one file, whose write lock the watch held.
        if self.log is not None:
            self.log.record(records)
        return answers

    def _answer(self, judged: Judged, verdict: dict[str, Any]) -> dict[str, Any]:
        state = judged.state
        return {
            "case_id": state.case_id,
            "state": state.state,
            "level": state.level,
            "next_card_at": _iso(datetime.fromtimestamp(state.next_due / 1e6, UTC))
            if state.next_due is not None
            else None,
            "verdict": verdict,
            "cards": judged.cards,
        }

    # -- the clock ----------------------------------------------------------------------------------------

    def _card_days(self, rule: Rule, deadline: date) -> tuple[date, date]:
        """The days a pending rule's yellow and red cards fall due, from its deadline."""
        warn_at = self.pack.warn_at(rule)
        if rule.unit == "working_days":
            try:
                yellow = self.calendar.add_working_days(deadline, -warn_at)
            except CalendarRangeError:
                yellow = deadline
        else:
            yellow = deadline - timedelta(days=warn_at)
        return yellow, deadline + timedelta(days=1)

    def _judge(
        self,
        case: Case,
        obj: Any,
        verdict: dict[str, Any],
        stored: CaseState | None,
        updated_at: int,
        now: datetime,
    ) -> Judged:
        """The case's new state and the cards its verdict bears out as of ``now``."""
        today = _local_day(now)
        raised: set[str] = set(orjson.loads(stored.raised)) if stored is not None else set()
        watched = {entry["rule"] for entry in orjson.loads(stored.clock)} if stored is not None else set()
        cards: list[dict[str, Any]] = []
        clock: list[dict[str, Any]] = []
        pending = False
        due_days: list[date] = []

        def raise_card(rule: Rule, level: Level, due_day: date, deadline: date) -> None:
            if f"{rule.id}/{level}" in raised:
                return
            raised.add(f"{rule.id}/{level}")
            cards.append(
                {
                    "id": f"{level}:{rule.id}:{case.case_id}",
                    "case_id": case.case_id,
                    "rule": rule.id,
                    "level": level,
                    "kind": case.kind,
                    "district": case.district,
                    "deadline": deadline.isoformat(),
                    "due_at": _iso(min(day_start(due_day), now)),
                    "raised_at": _iso(now),
                }
            )

        for result in verdict["results"]:
            status = result["status"]
            pending = pending or status == "pending"
            rule = self.pack.by_id[result["rule"]]
            deadline = result.get("deadline")
            if not isinstance(rule, Rule) or not rule.timed or deadline is None:
                continue
            deadline = date.fromisoformat(deadline) if isinstance(deadline, str) else deadline
            yellow_day, red_day = self._card_days(rule, deadline)
            if status == "fail":
                # A card that fell due while nobody looked (the service was down) is still raised.
                if rule.id in watched and yellow_day <= today:
                    raise_card(rule, "yellow", yellow_day, deadline)
                raise_card(rule, "red", red_day, deadline)
            elif status == "pending":
                remaining = result.get("remaining")
                if remaining is not None and remaining <= self.pack.warn_at(rule):
                    raise_card(rule, "yellow", yellow_day, deadline)
                for level, day in (("yellow", yellow_day), ("red", red_day)):
                    if f"{rule.id}/{level}" not in raised:
                        # Not borne out yet (a running pause moved the deadline): look again tomorrow.
                        due_days.append(max(day, today + timedelta(days=1)))
                clock.append(
                    {
                        "rule": rule.id,
                        "deadline": deadline.isoformat(),
                        "unit": rule.unit,
                        "remaining": remaining,
                        "yellow_at": _iso(day_start(yellow_day)),
                        "red_at": _iso(day_start(red_day)),
                    }
                )
        nearest = min(clock, key=lambda entry: entry["deadline"], default=None)
        levels = {key.rsplit("/", 1)[1] for key in raised}
        level: CaseLevel = "red" if "red" in levels else "yellow" if "yellow" in levels else "green"
        state = CaseState(
            case_id=case.case_id,
            kind=case.kind,
            district=case.district,
            updated_at=updated_at,
            state="open" if pending else "closed",
            level=level,
            record=orjson.dumps(obj),
            verdict=orjson.dumps(verdict),
            clock=orjson.dumps(clock),
            raised=orjson.dumps(sorted(raised)),
            rule=nearest["rule"] if nearest else None,
            deadline=nearest["deadline"] if nearest else None,
            unit=nearest["unit"] if nearest else None,
            remaining=nearest["remaining"] if nearest else None,
            next_due=to_micros(day_start(min(due_days))) if pending and due_days else None,
        )
        return Judged(state, cards)

    # -- sweeps -------------------------------------------------------------------------------------------

    def sweep(self, rows: int = SWEEP_ROWS) -> list[dict[str, Any]]:
        """Judge every case whose next card is due (columnar executor, ``rows`` at a time) and raise the
        cards borne out; the new cards, in the order raised."""
        raised: list[dict[str, Any]] = []
        while True:
            now = self.clock.now()
            with self._lock, self.watch.writing() as db:
                due = self.watch.due(db, to_micros(now), rows)
                if not due:
                    return raised
                states, added = self._sweep_rows(db, due, now)
                self.watch.put(db, states)
            raised.extend(added)
            if len(due) < rows:
                return raised

    def _sweep_rows(
        self, db: Any, due: list[CaseState], now: datetime
    ) -> tuple[list[CaseState], list[dict[str, Any]]]:
        today = _local_day(now)
        objs = [orjson.loads(state.record) for state in due]
        cases = [validate_case(obj) for obj in objs]
        try:
            verdicts: list[dict[str, Any] | None] = list(self.columnar.check_many(cases, today))
        except CasesRefused as exc:
            kept = iter(exc.verdicts)
            verdicts = [None if p in exc.refused else next(kept) for p in range(len(cases))]
        states: list[CaseState] = []
        added: list[dict[str, Any]] = []
        for state, case, obj, verdict in zip(due, cases, objs, verdicts, strict=True):
            if verdict is None:
                # Past the calendar: the case cannot be judged until the calendar is extended.
                states.append(_replace_due(state, None))
                continue
            judged = self._judge(case, obj, verdict, state, state.updated_at, now)
            states.append(judged.state)
            added.extend(self.watch.add_cards(db, judged.cards))
        return states, added

    # -- reading ------------------------------------------------------------------------------------------

    def watch_list(self, filters: dict[str, str | None]) -> list[dict[str, Any]]:
        """The open cases with their nearest deadline, the days left as of today, and their level."""
        today = _local_day(self.clock.now())
        entries = []
        for state in self.watch.open_cases(filters):
            left = None
            if state.deadline is not None:
                deadline = date.fromisoformat(state.deadline)
                if state.unit == "working_days":
                    try:
                        left = self.calendar.working_days_between(today, deadline)
                    except CalendarRangeError:
                        left = state.remaining
                else:
                    left = (deadline - today).days
            entries.append(
                {
                    "case_id": state.case_id,
                    "kind": state.kind,
                    "district": state.district,
                    "rule": state.rule,
                    "deadline": state.deadline,
                    "unit": state.unit,
                    "left": left,
                    "level": state.level,
                }
            )
        return entries


def _replace_due(state: CaseState, next_due: int | None) -> CaseState:
    values = {name: getattr(state, name) for name in CaseState.__slots__}  # type: ignore[attr-defined]
    values["next_due"] = next_due
    return CaseState(**values)


def parse_updated_at(value: Any) -> datetime:
    """``updated_at`` as an aware moment (a time without an offset is read in Asia/Shanghai)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidCase([CaseError("updated_at", f"not an ISO 8601 time: {value!r}")]) from None
    else:
        raise InvalidCase([CaseError("updated_at", "must be an ISO 8601 time string")])
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)
