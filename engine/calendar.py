"""The national working-day calendar of China, from the State Council's annual holiday notices.

Why this module exists: every time limit in the Ningbo plan is counted in working days, and the Chinese
working week is not "Monday to Friday": statutory holidays are off, and some Saturdays and Sundays are
make-up working days (调休上班). The only authority is the yearly notice of the General Office of the
State Council (国务院办公厅关于XXXX年部分节假日安排的通知) plus the occasional amending notice (the
extension of the 2020 Spring Festival). Those notices are kept as data in ``calendars/cn/<year>.toml``;
nothing is computed from lunar rules, and a date outside the covered years is an error, never a guess.

Two views of the same data:

* :class:`WorkdayIndex`: precomputed NumPy arrays (like exchange_calendars' sessions) so that the batch
  scanner can count working days for millions of intervals with two array gathers.
* :class:`ChinaStateCouncilCalendar`: a workalendar calendar class, so code written against workalendar's
  API (``is_working_day``, ``add_working_days``, ``get_working_days_delta``, ``holidays``) gets the same
  answers.
"""

from __future__ import annotations

import hashlib
import tomllib
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal, TypeVar, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from workalendar.core import ChineseNewYearCalendar, cleaned_date

from engine.domain import SHANGHAI
from engine.errors import CalendarDataError, CalendarRangeError, InvalidDate
from engine.resources import data_dirs

__all__ = [
    "ChinaStateCouncilCalendar",
    "Decision",
    "NoticeFile",
    "Overlay",
    "WorkdayIndex",
    "build_index",
    "changed_days",
    "load_calendar",
    "load_notices",
    "notice_paths",
    "notices_in_force",
    "overlay_names",
    "read_calendar_file",
    "to_local_date",
]

DateLike = date | datetime | str | np.datetime64
DateArray = np.ndarray


# --------------------------------------------------------------------------------------------------
# Data files: pydantic models, so that a broken file fails naming the file and the field.
# --------------------------------------------------------------------------------------------------

HolidayName = Literal[
    "元旦",
    "春节",
    "清明节",
    "劳动节",
    "端午节",
    "中秋节",
    "国庆节",
    "中秋节、国庆节",
    "国庆节、中秋节",
    "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Holiday(_Strict):
    """One announced block: every day off of it (weekends inside included) and its make-up working days."""

    name: HolidayName
    days_off: Annotated[list[date], Field(min_length=1)]
    make_up_workdays: list[date] = []

    @model_validator(mode="after")
    def _check_block(self) -> Holiday:
        days = self.days_off
        if any((b - a).days != 1 for a, b in pairwise(days)):
            raise ValueError(f"days_off of {self.name} must be consecutive days in order, got {days}")
        weekdays = [d for d in self.make_up_workdays if d.weekday() < 5]
        if weekdays:
            raise ValueError(f"make_up_workdays of {self.name} must be Saturdays or Sundays, got {weekdays}")
        if set(days) & set(self.make_up_workdays):
            raise ValueError(f"{self.name}: a day cannot be both off and a make-up working day")
        return self


class Amendment(_Strict):
    """A later notice that changed the year's arrangement (e.g. 国办发明电〔2020〕1号)."""

    notice: str
    number: str | None = None
    url: Annotated[str, Field(pattern=r"^https://www\.gov\.cn/")] | None = None
    summary: str


class Decision(_Strict):
    """A day on which a test oracle disagrees with the notice, with the reason the notice wins."""

    date: date
    oracle: Literal["holidays", "chinese_calendar"]
    notice_says: Literal["workday", "day_off"]
    reason: Annotated[str, Field(min_length=20)]


class NoticeFile(_Strict):
    """``calendars/cn/<year>.toml``: one State Council notice year."""

    year: int
    notice: str
    number: str | None = None
    url: Annotated[str, Field(pattern=r"^https://www\.gov\.cn/")] | None = None
    amendment: list[Amendment] = []
    holiday: Annotated[list[Holiday], Field(min_length=1)]
    decision: list[Decision] = []

    @model_validator(mode="after")
    def _check_year(self) -> NoticeFile:
        if str(self.year) not in self.notice:
            raise ValueError(f"notice title {self.notice!r} does not name the year {self.year}")
        for block in self.holiday:
            for day in [*block.days_off, *block.make_up_workdays]:
                # A notice may reach back into late December of the year before (2011-12-31 for 2012).
                if not (day.year == self.year or (day.year == self.year - 1 and day.month == 12)):
                    raise ValueError(f"{block.name}: {day} is outside the notice year {self.year}")
        both = set(self.days_off()) & self.make_up_workdays()
        if both:
            raise ValueError(f"days both off and make-up working days: {sorted(both)}")
        return self

    def days_off(self) -> dict[date, str]:
        """Each announced day off with the name of its block (what workalendar's ``holidays`` lists)."""
        return {day: block.name for block in self.holiday for day in block.days_off}

    def make_up_workdays(self) -> set[date]:
        """The weekend days worked (调休上班), which override the weekend rule."""
        return {day for block in self.holiday for day in block.make_up_workdays}


class Overlay(_Strict):
    """``calendars/overlays/<name>.toml``: local deviations such as a utility's typhoon closure."""

    description: str
    closures: list[date] = []
    extra_workdays: list[date] = []

    @model_validator(mode="after")
    def _check_disjoint(self) -> Overlay:
        both = set(self.closures) & set(self.extra_workdays)
        if both:
            raise ValueError(f"days both closed and extra workdays: {sorted(both)}")
        return self


_Model = TypeVar("_Model", bound=BaseModel)


def _read_model(path: Path, model: type[_Model]) -> tuple[_Model, bytes]:
    raw = path.read_bytes()
    try:
        return model.model_validate(tomllib.loads(raw.decode("utf-8"))), raw
    except tomllib.TOMLDecodeError as exc:
        raise CalendarDataError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}" for err in exc.errors()
        )
        raise CalendarDataError(f"{path}: {problems}") from None


def notice_paths() -> tuple[Path, ...]:
    """Each year's file: the data directory's where it has one, else the shipped one."""
    by_name: dict[str, Path] = {}
    for folder in reversed(data_dirs("calendars")):
        by_name.update((path.name, path) for path in (folder / "cn").glob("*.toml"))
    return tuple(by_name[name] for name in sorted(by_name))


def load_notices() -> tuple[NoticeFile, ...]:
    """All notice files in force, validated, in year order; the covered years must be contiguous."""
    return tuple(notice for notice, _ in notices_in_force())


def notices_in_force() -> tuple[tuple[NoticeFile, bytes], ...]:
    """Each notice file in force with its bytes (what the calendar's version hashes)."""
    return _load_notices(notice_paths())


@lru_cache(maxsize=8)
def _load_notices(paths: tuple[Path, ...]) -> tuple[tuple[NoticeFile, bytes], ...]:
    notices: list[tuple[NoticeFile, bytes]] = []
    for path in paths:
        notice, raw = _read_model(path, NoticeFile)
        if path.stem != str(notice.year):
            raise CalendarDataError(f"{path}: year = {notice.year} does not match the file name")
        notices.append((notice, raw))
    if not notices:
        raise CalendarDataError(
            f"no calendar data in {' or '.join(str(d / 'cn') for d in data_dirs('calendars'))}"
        )
    years = [n.year for n, _ in notices]
    if years != list(range(years[0], years[-1] + 1)):
        missing = sorted(set(range(years[0], years[-1] + 1)) - set(years))
        raise CalendarDataError(f"calendars/cn has gaps: no file for {missing}")
    return tuple(notices)


# --------------------------------------------------------------------------------------------------
# Inputs: dates, datetimes, ISO strings → local (Asia/Shanghai) dates.
# --------------------------------------------------------------------------------------------------


def to_local_date(value: DateLike) -> date:
    """The Asia/Shanghai calendar date of a date, datetime, ISO 8601 string or ``datetime64`` scalar.

    Aware datetimes (and strings with an offset or ``Z``) are converted to UTC+8 first; naive ones are
    already local, as the spec says.
    """
    if type(value) is date:
        return value
    if isinstance(value, datetime):
        return value.astimezone(SHANGHAI).date() if value.tzinfo is not None else value.date()
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) <= 10:
                return date.fromisoformat(text)
            return to_local_date(datetime.fromisoformat(text))
        except ValueError as exc:
            raise InvalidDate(
                f"invalid ISO 8601 date or timestamp {value!r}: {exc} "
                "(expected e.g. 2026-03-02 or 2026-03-02T09:30:00+08:00)"
            ) from None
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise InvalidDate("NaT is not a date")
        return value.astype("datetime64[D]").item()
    raise TypeError(f"expected a date, datetime, ISO 8601 string or datetime64, got {type(value).__name__}")


# --------------------------------------------------------------------------------------------------
# The index.
# --------------------------------------------------------------------------------------------------


class WorkdayIndex:
    """Every day of the covered years as arrays: ``is_work[i]`` and ``cum[i]`` (working days up to day i).

    Position ``i`` is ``date - first`` in days. Elapsed working days are ``cum[end] - cum[start]``, the
    n-th working day after ``d`` is a binary search in ``cum``: both O(1)/O(log n), scalar or vectorized.
    Instances are immutable (the arrays are read-only) because :func:`load_calendar` shares them.
    """

    def __init__(
        self,
        first: date,
        is_work: np.ndarray,
        days_off: dict[date, str],
        version: str,
    ) -> None:
        self.first = first
        self.last = first + timedelta(days=len(is_work) - 1)
        self.is_work = is_work
        self.is_work.flags.writeable = False
        self.cum = np.cumsum(is_work, dtype=np.int32)
        self.cum.flags.writeable = False
        self.version = version
        # The overlay files laid over the notices (their paths), so a case's own overlay can be added.
        self.overlays: tuple[str, ...] = ()
        self.days_off = days_off
        self._n = len(is_work)
        self._first_ord = first.toordinal()
        self._first_np = np.datetime64(first, "D")
        self._first_epoch = int(self._first_np.astype(np.int64))
        # Python lists for the scalar path: indexing a list is several times cheaper than a NumPy scalar.
        self._is_work_list: list[bool] = is_work.tolist()
        self._cum_list: list[int] = self.cum.tolist()

    @property
    def covered(self) -> tuple[int, int]:
        """First and last covered year, for error messages that say what is on file."""
        return (self.first.year, self.last.year)

    def __repr__(self) -> str:
        return f"WorkdayIndex({self.version!r}, {self.first.isoformat()}..{self.last.isoformat()})"

    # -- positions ---------------------------------------------------------------------------------

    def _pos(self, value: DateLike) -> int:
        day = value if type(value) is date else to_local_date(value)
        pos = day.toordinal() - self._first_ord
        if 0 <= pos < self._n:
            return pos
        raise CalendarRangeError(day.year, self.covered)

    def day_offsets(self, days: DateArray | Iterable[DateLike]) -> np.ndarray:
        """Day offsets into ``is_work``/``cum`` for an array of dates (``datetime64`` or convertible)."""
        try:
            arr = np.asarray(days, dtype="datetime64[D]")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cannot read the dates as datetime64[D]: {exc}") from None
        nat = np.isnat(arr)
        if nat.any():
            raise ValueError(f"NaT at index {int(np.argmax(nat))} is not a date")
        pos = arr.astype(np.int64) - self._first_epoch
        bad = (pos < 0) | (pos >= self._n)
        if bad.any():
            offending = arr[bad].flat[0].item()
            raise CalendarRangeError(offending.year, self.covered)
        return pos

    def _date_at(self, pos: int) -> date:
        return date.fromordinal(self._first_ord + pos)

    def _beyond(self, forward: bool) -> CalendarRangeError:
        year = self.last.year + 1 if forward else self.first.year - 1
        return CalendarRangeError(year, self.covered)

    # -- queries -----------------------------------------------------------------------------------

    @overload
    def is_working_day(self, day: DateLike) -> bool: ...
    @overload
    def is_working_day(self, day: np.ndarray) -> np.ndarray: ...
    def is_working_day(self, day: DateLike | np.ndarray) -> bool | np.ndarray:
        """Weekday not in a holiday block, or a make-up working day."""
        if isinstance(day, np.ndarray):
            return self.is_work[self.day_offsets(day)]
        return self._is_work_list[self._pos(day)]

    @overload
    def working_days_between(self, start: DateLike, end: DateLike) -> int: ...
    @overload
    def working_days_between(
        self, start: DateLike | np.ndarray, end: DateLike | np.ndarray
    ) -> int | np.ndarray: ...
    def working_days_between(
        self, start: DateLike | np.ndarray, end: DateLike | np.ndarray
    ) -> int | np.ndarray:
        """Working days d with date(start) < d ≤ date(end); negative (−count of (end, start]) if end < start.

        The start day is not counted (民法典 第201条), so same-day completion is 0.
        """
        if isinstance(start, np.ndarray) or isinstance(end, np.ndarray):
            ps = self.day_offsets(start) if isinstance(start, np.ndarray) else self._pos(start)
            pe = self.day_offsets(end) if isinstance(end, np.ndarray) else self._pos(end)
            return self.cum[pe].astype(np.int64) - self.cum[ps]
        return self._cum_list[self._pos(end)] - self._cum_list[self._pos(start)]

    @overload
    def add_working_days(self, day: DateLike, n: int) -> date: ...
    @overload
    def add_working_days(self, day: DateLike | np.ndarray, n: int | np.ndarray) -> date | np.ndarray: ...
    def add_working_days(self, day: DateLike | np.ndarray, n: int | np.ndarray) -> date | np.ndarray:
        """The n-th working day after date(day) (before it if n < 0); n = 0 returns the day itself.

        Same semantics as workalendar's ``add_working_days``: the start day never counts, so the deadline
        of an N-working-day limit is ``add_working_days(start, N)``.
        """
        if isinstance(day, np.ndarray) or isinstance(n, np.ndarray):
            return self._add_vectorized(day, n)
        pos = self._pos(day)
        n = int(n)
        if n == 0:
            return self._date_at(pos)
        cum = self._cum_list
        if n > 0:
            target = cum[pos] + n
        else:
            # The working days strictly before pos number cum[pos] - is_work[pos]; go back |n| of them.
            target = cum[pos] - self._is_work_list[pos] + n + 1
            if target < 1:
                raise self._beyond(forward=False)
        found = bisect_left(cum, target)
        if found >= self._n:
            raise self._beyond(forward=True)
        return self._date_at(found)

    def _add_vectorized(self, day: DateLike | np.ndarray, n: int | np.ndarray) -> np.ndarray:
        pos = self.day_offsets(day) if isinstance(day, np.ndarray) else np.int64(self._pos(day))
        steps = np.asarray(n, dtype=np.int64)
        pos, steps = np.broadcast_arrays(pos, steps)
        back = self.cum[pos] - self.is_work[pos] + steps + 1
        target = np.where(steps > 0, self.cum[pos] + steps, back)
        if ((steps < 0) & (target < 1)).any():
            raise self._beyond(forward=False)
        found = np.searchsorted(self.cum, target, side="left")
        found = np.where(steps == 0, pos, found)
        if (found >= self._n).any():
            raise self._beyond(forward=True)
        return self._first_np + found

    @overload
    def roll_forward(self, day: DateLike) -> date: ...
    @overload
    def roll_forward(self, day: np.ndarray) -> np.ndarray: ...
    def roll_forward(self, day: DateLike | np.ndarray) -> date | np.ndarray:
        """The day itself if it is a working day, else the next one (民法典 第203条 rest-day extension)."""
        if isinstance(day, np.ndarray):
            pos = self.day_offsets(day)
            found = np.searchsorted(self.cum, self.cum[pos] - self.is_work[pos] + 1, side="left")
            if (found >= self._n).any():
                raise self._beyond(forward=True)
            return self._first_np + found
        pos = self._pos(day)
        if self._is_work_list[pos]:
            return self._date_at(pos)
        return self.add_working_days(self._date_at(pos), 1)

    def days_off_in_year(self, year: int) -> list[tuple[date, str]]:
        """The announced days off (and overlay closures) falling in a calendar year, with their names."""
        if not self.first.year <= year <= self.last.year:
            raise CalendarRangeError(year, self.covered)
        return sorted((d, name) for d, name in self.days_off.items() if d.year == year)


# --------------------------------------------------------------------------------------------------
# Loading, with overlays.
# --------------------------------------------------------------------------------------------------


def overlay_names() -> dict[str, Path]:
    """The overlays found by name: the data directory's, then the shipped ones (a name there wins)."""
    found: dict[str, Path] = {}
    for folder in reversed(data_dirs("calendars")):
        found.update((path.stem, path) for path in sorted((folder / "overlays").glob("*.toml")))
    return found


def _overlay_path(overlay: str) -> Path:
    candidate = Path(overlay)
    if candidate.suffix == ".toml":  # a path, relative to the working directory or absolute
        if not candidate.is_file():
            raise CalendarDataError(f"calendar overlay file {candidate} does not exist")
        return candidate.resolve()
    found = overlay_names()
    if overlay not in found:
        folders = " or ".join(str(folder / "overlays") for folder in data_dirs("calendars"))
        listing = ", ".join(sorted(found)) or "none"
        raise CalendarDataError(
            f"unknown calendar overlay {overlay!r}; available overlays in {folders}: {listing} "
            "(or pass the path of a .toml file)"
        )
    return found[overlay]


def load_calendar(overlay: str | Sequence[str] | None = None) -> WorkdayIndex:
    """The national working-day index from the notice files in force (the data directory's over the
    shipped ones), optionally with local overlays (each by name or .toml path), laid on in order."""
    names = [] if overlay is None else [overlay] if isinstance(overlay, str) else list(overlay)
    return _load_calendar(notice_paths(), tuple(_overlay_path(name) for name in dict.fromkeys(names)))


@lru_cache(maxsize=64)
def _load_calendar(paths: tuple[Path, ...], overlays: tuple[Path, ...]) -> WorkdayIndex:
    local = [(path.stem, *_read_model(path, Overlay)) for path in overlays]
    index = build_index(_load_notices(paths), *local)  # type: ignore[arg-type]
    index.overlays = tuple(str(path) for path in overlays)
    return index


def build_index(
    notices: Iterable[tuple[NoticeFile, bytes]], *overlays: tuple[str, Overlay, bytes]
) -> WorkdayIndex:
    """The index of contiguous notice years (each with its file's bytes, which the version hashes), with
    overlays (each its name, content and bytes) laid over them in order."""
    notices = sorted(notices, key=lambda item: item[0].year)
    first = date(notices[0][0].year, 1, 1)
    last = date(notices[-1][0].year, 12, 31)
    n = (last - first).days + 1
    is_work = (np.arange(n) + first.weekday()) % 7 < 5
    days_off: dict[date, str] = {}
    make_up: set[date] = set()
    digest = hashlib.sha256()
    for notice, raw in notices:
        days_off.update(notice.days_off())
        make_up |= notice.make_up_workdays()
        digest.update(raw)

    def put(day: date, working: bool) -> None:
        pos = (day - first).days
        if 0 <= pos < n:  # a December day of the year before the first covered year is not indexed
            is_work[pos] = working

    for day in days_off:
        put(day, False)
    for day in make_up:
        put(day, True)
    for notice, _ in notices:
        for decision in notice.decision:
            said = "workday" if is_work[(decision.date - first).days] else "day_off"
            if said != decision.notice_says:
                raise CalendarDataError(
                    f"calendars/cn/{notice.year}.toml: decision on {decision.date} says "
                    f"{decision.notice_says} but the file's own data make it a {said}"
                )
    name = ""
    for overlay_name, local, raw in overlays:
        name += f"+{overlay_name}"
        digest.update(raw)
        outside = [d for d in [*local.closures, *local.extra_workdays] if not first <= d <= last]
        if outside:
            raise CalendarRangeError(outside[0].year, (first.year, last.year))
        for day in local.closures:
            put(day, False)
            days_off[day] = local.description
        for day in local.extra_workdays:
            put(day, True)
            days_off.pop(day, None)
    version = f"cn@{first.year}-{last.year}{name}:{digest.hexdigest()[:12]}"
    return WorkdayIndex(first, is_work, days_off, version)


def read_calendar_file(path: Path) -> NoticeFile | Overlay:
    """A year file (it has ``year``) or an overlay, validated; ``CalendarDataError`` names the file and
    the field."""
    try:
        body = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CalendarDataError(f"{path}: cannot be read as TOML: {exc}") from None
    model: type[NoticeFile | Overlay] = NoticeFile if "year" in body else Overlay
    parsed, _ = _read_model(path, model)
    if isinstance(parsed, NoticeFile) and path.stem != str(parsed.year):
        raise CalendarDataError(f"{path}: year = {parsed.year}, so the file must be named {parsed.year}.toml")
    return parsed


def changed_days(before: WorkdayIndex, after: WorkdayIndex) -> list[tuple[date, bool]]:
    """The days both calendars cover whose working status differs, with the status ``after`` gives."""
    first, last = max(before.first, after.first), min(before.last, after.last)
    span = (last - first).days + 1
    if span <= 0:
        return []
    b = before.is_work[before._pos(first) :][:span]
    a = after.is_work[after._pos(first) :][:span]
    return [(first + timedelta(days=int(i)), bool(a[i])) for i in np.flatnonzero(a != b)]


# --------------------------------------------------------------------------------------------------
# workalendar.
# --------------------------------------------------------------------------------------------------


class ChinaStateCouncilCalendar(ChineseNewYearCalendar):
    """workalendar's China, fed from ``calendars/cn`` instead of workalendar's built-in 2018–2023 tables.

    It derives from ``ChineseNewYearCalendar`` (the base of ``workalendar.asia.China``) rather than from
    ``China`` itself because ``China`` bakes its own tables into ``__init__`` and ``get_variable_days``
    (including 1 February 2020 as a working day, which the extension notice cancelled), warns on every
    year, and replaces the caller's ``extra_working_days`` by its make-up days instead of adding to them.

    Mapping to :class:`WorkdayIndex`: ``get_working_days_delta(a, b)`` counts working days in (min, max],
    unsigned, so ``index.working_days_between(a, b) == sign(b - a) * cal.get_working_days_delta(a, b)``;
    ``add_working_days`` has the same semantics in both.
    """

    def __init__(self, overlay: str | None = None) -> None:
        super().__init__()
        self.index = load_calendar(overlay)

    def get_calendar_holidays(self, year: int) -> list[tuple[date, str]]:
        """Every announced day off in ``year`` (weekends inside a block included), from the notices."""
        return self.index.days_off_in_year(year)

    def is_working_day(
        self,
        day: date | datetime,
        extra_working_days: Iterable[date | datetime] | None = None,
        extra_holidays: Iterable[date | datetime] | None = None,
    ) -> bool:
        """workalendar's precedence (extra working days, then extra holidays), then the notices."""
        day = cleaned_date(day)
        if extra_working_days and day in {cleaned_date(d) for d in extra_working_days}:
            return True
        if extra_holidays and day in {cleaned_date(d) for d in extra_holidays}:
            return False
        return self.index.is_working_day(day)
