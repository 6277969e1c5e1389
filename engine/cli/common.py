"""What the commands share: the Typer apps, the consoles and exit codes, the common options, user errors
(one line, exit 2), and reading, validating and checking records with their lines."""

from __future__ import annotations

import codecs
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from engine.cases import shown_id, validate_case
from engine.domain import EXECUTORS, LANGS, ExecutorName, Lang
from engine.errors import (
    CalendarDataError,
    CalendarRangeError,
    InvalidCase,
    RecordError,
    RulePackError,
)
from engine.resources import ENV_DATA, use_data_dir

if TYPE_CHECKING:
    from engine.cases import Case
    from engine.core import Engine


__all__ = [
    "DEFAULT_PACK",
    "EXIT_FAIL",
    "EXIT_INVALID",
    "EXIT_OK",
    "AsOf",
    "DataDirOption",
    "ExecutorOption",
    "LangOption",
    "OverlayOption",
    "PackOption",
    "PacksOption",
    "app",
    "as_of_day",
    "calendar_app",
    "check_records",
    "choice",
    "err",
    "fail",
    "load_engine",
    "out",
    "read_input",
    "report_errors",
    "rules_app",
    "validated_records",
]


app = typer.Typer(help="Check case records against 甬政办发〔2020〕36号.", no_args_is_help=True)
rules_app = typer.Typer(help="The rule pack: list, show, validate, diff, test.", no_args_is_help=True)
calendar_app = typer.Typer(help="The Chinese working-day calendar.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
app.add_typer(calendar_app, name="calendar")

out = Console()
err = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2

AsOf = Annotated[
    str | None, typer.Option("--as-of", help="Judge open cases as of this date (default: today).")
]
DEFAULT_PACK = "ningbo-2020"
PackOption = Annotated[str, typer.Option("--pack", help="Pack name or folder.")]
LangOption = Annotated[str, typer.Option("--lang", help=f"Message language: {' or '.join(LANGS)}.")]
ExecutorOption = Annotated[
    str, typer.Option("--executor", "--engine", help=f"Executor: {' or '.join(EXECUTORS)}.")
]


def _use_data_dir(folder: Path | None) -> Path | None:
    if folder is not None:
        try:
            use_data_dir(folder)
        except FileNotFoundError as exc:
            fail(f"--data-dir: {exc}")
    return folder


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Your data directory (rules/<pack>/, calendars/cn/<year>.toml, calendars/overlays/), laid "
        f"over the shipped data; default ${ENV_DATA}.",
        callback=_use_data_dir,
        is_eager=True,
    ),
]
PacksOption = Annotated[
    list[str] | None,
    typer.Option("--pack", help="Rule pack name or folder; repeat it for packs in force together."),
]
OverlayOption = Annotated[
    str | None, typer.Option(help="A local calendar overlay: its name, or the path of a .toml file.")
]


def read_records(data: bytes, file: str) -> tuple[list[tuple[int, Any]], list[RecordError]]:
    """One JSON object, a JSON array, or NDJSON → (line, object) pairs, plus lines that are not JSON.

    Array items are numbered by position (1-based) since a pretty-printed array has no line per item.
    A UTF-8 byte order mark (Notepad and Excel write one) is skipped; input with no record is an error.
    """
    data = data.removeprefix(codecs.BOM_UTF8)
    stripped = data.lstrip()
    if not stripped:
        return [], [RecordError(file, 1, None, "$", "no case records: the input is empty")]
    if stripped.startswith(b"["):
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return [], [RecordError(file, 1, None, "$", f"invalid JSON: {exc}")]
        if not items:
            return [], [RecordError(file, 1, None, "$", "no case records: the JSON array is empty")]
        return list(enumerate(items, 1)), []
    try:
        return [(1, orjson.loads(data))], []
    except orjson.JSONDecodeError:
        pass
    records: list[tuple[int, Any]] = []
    errors: list[RecordError] = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((number, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            errors.append(RecordError(file, number, None, "$", f"invalid JSON: {exc}"))
    return records, errors


def fail(message: str) -> NoReturn:
    """A user error: one line on stderr and exit 2, never a traceback (nor exit 1, which means "fail")."""
    err.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(EXIT_INVALID)


def read_input(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    if not path.is_file():
        fail(f"no such file: {source}")
    return path.read_bytes()


def choice(value: str, allowed: tuple[str, ...], option: str) -> Any:
    if value not in allowed:
        fail(f"{option} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def as_of_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--as-of: not a date: {value!r} (expected YYYY-MM-DD)")


def report_errors(errors: list[RecordError]) -> None:
    for e in sorted(errors, key=lambda e: e.line):
        who = f" ({e.case_id})" if e.case_id else ""
        err.print(f"line {e.line}{who}: {e.path}: {e.message}", markup=False, highlight=False)


def load_engine(name: ExecutorName, packs: list[str] | None = None, overlay: str | None = None) -> Engine:
    """Imported here, not at the top: `casecheck calendar …` should not pay for durable_rules and Polars.
    A pack or overlay that cannot be loaded is a user error."""
    from engine.core import Engine

    try:
        return Engine.load(packs or DEFAULT_PACK, overlay, name)
    except (RulePackError, CalendarDataError) as exc:
        fail(str(exc))
    except CalendarRangeError as exc:
        fail(f"--overlay: {exc}")


def validated_records(data: bytes, file: str) -> tuple[list[tuple[int, Any, Case]], list[RecordError]]:
    """Each valid record of ``data`` (read from ``file``) as (line, object, case), and every problem of the
    others with line and path."""
    records, errors = read_records(data, file)
    valid = []
    for line, obj in records:
        try:
            valid.append((line, obj, validate_case(obj)))
        except InvalidCase as exc:
            case_id = shown_id(obj.get("case_id")) if isinstance(obj, dict) else None
            errors.extend(RecordError(file, line, case_id, e.path, e.message) for e in exc.errors)
    return valid, errors


def check_records(
    data: bytes, file: str, as_of: date | None, lang: Lang, engine: Engine
) -> tuple[list[dict[str, Any]], list[RecordError]]:
    """Validate every record, check the valid ones, and keep every problem with its line and path; a
    record that fails while being checked is reported as such and the others are still checked."""
    from engine.core import isolated

    valid, errors = validated_records(data, file)
    lines, cases = [line for line, _, _ in valid], [case for _, _, case in valid]
    done, failed = isolated(cases, lambda part: engine.check_many(part, as_of, lang))
    for position, error in failed.items():
        errors.append(RecordError(file, lines[position], cases[position].case_id, error.path, error.message))
    verdicts: list[dict[str, Any] | None] = [None] * len(cases)
    for positions, part in done:
        for position, verdict in zip(positions, part, strict=True):
            verdicts[position] = verdict
    return [v for v in verdicts if v is not None], errors
