"""One exception tree with one root, and the one record of a problem with a record.

Every error casecheck raises on purpose is a ``CasecheckError``: a caller (the CLI, the service) catches
the root and shows its message; anything else is a bug and keeps its traceback. The input errors are
also ``ValueError``s, so that pydantic turns one raised inside a validator into a validation error.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.resources import year_file

__all__ = [
    "CalendarDataError",
    "CalendarRangeError",
    "CaseError",
    "CasecheckError",
    "InputError",
    "InvalidCase",
    "InvalidDate",
    "RecordError",
    "RulePackError",
    "SparkInputError",
    "json_path",
]


class CasecheckError(Exception):
    """The root of every error casecheck raises on purpose; its message is meant for the user."""


class CalendarRangeError(CasecheckError, ValueError):
    """A date (or a computed deadline) lies in a year for which no State Council notice is on file.

    The calendar refuses to extrapolate: the make-up working days of a year are only known once the
    notice is published (usually in November of the year before).
    """

    def __init__(self, year: int, covered: tuple[int, int]) -> None:
        self.year = year
        self.covered = covered
        super().__init__(
            f"{year} is not covered by the working-day calendar (covered: {covered[0]}–{covered[1]}); "
            f"add the State Council's holiday notice for {year} as {year_file(year)}"
        )


class CalendarDataError(CasecheckError, ValueError):
    """A calendar data file (or overlay) is malformed; the message names the file and the field."""


class RulePackError(CasecheckError, ValueError):
    """A rule file that does not validate; the message names the file, the rule and the field."""


class InvalidDate(CasecheckError, ValueError):
    """A value given as a date (an argument, a query parameter) that is not one."""


class InputError(CasecheckError, ValueError):
    """An input file that cannot be read as cases at all (an unknown format, a gzipped Parquet file)."""


class SparkInputError(InputError):
    """The input cannot be scanned at all (a missing column, a file type Spark scans cannot read)."""


@dataclass(frozen=True, slots=True)
class CaseError:
    """One problem of a record: the JSON path (``pauses[1].end``; ``$`` for the record itself) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class RecordError:
    """A problem of one input record and where it is: the file (``-`` for standard input), the line (a
    JSON array's item: its position; a Parquet row: its number), the case_id when it has one, the JSON
    path and why. ``check``, ``watch``, ``scan`` and Spark scans report these; errors.jsonl holds them."""

    file: str
    line: int
    case_id: str | None
    path: str
    message: str


class InvalidCase(CasecheckError, ValueError):
    """A record that does not validate; ``errors`` lists every problem found, not just the first."""

    def __init__(self, errors: list[CaseError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))

    def items(self) -> list[dict[str, str]]:
        """Every problem as ``{"path", "message"}``: the error items of an HTTP answer."""
        return [{"path": e.path, "message": e.message} for e in self.errors]


def json_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """A pydantic location → its JSON path (``pauses[1].end``); ``$`` for the record itself."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "$"
