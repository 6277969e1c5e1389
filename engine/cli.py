"""The ``casecheck`` command line: check, scan, watch, serve, generate, schema and demo; the ``rules``
(list, show, validate, packs, diff, test) and ``calendar`` (is-workday, between, add, info, validate) groups.

Output meant for programs (verdicts) goes to stdout as JSON; problems go to stderr with the record's
line and JSON path, so a pipeline never mistakes an error report for a verdict.
"""

from __future__ import annotations

import codecs
import os
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.calendar import load_calendar, notice_paths, notices_in_force, overlay_names
from engine.cases import case_json_schema, shown_id, validate_case
from engine.domain import KINDS
from engine.errors import (
    CalendarDataError,
    CalendarRangeError,
    CasecheckError,
    InvalidCase,
    RecordError,
    RulePackError,
)
from engine.resources import ENV_DATA, local_data_dir, shipped_dir, use_data_dir, year_file
from engine.rules import AggregateRule, diff_packs, load_pack, load_pack_from, pack_folders
from engine.store import DEFAULT_STORE

if TYPE_CHECKING:
    from engine.cases import Case
    from engine.core import Engine

__all__ = ["app"]

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
LangOption = Annotated[str, typer.Option("--lang", help="Message language: zh or en.")]
ExecutorOption = Annotated[str, typer.Option("--executor", "--engine", help="Executor: durable or columnar.")]


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


def _read_input(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    if not path.is_file():
        fail(f"no such file: {source}")
    return path.read_bytes()


def _choice(value: str, allowed: tuple[str, ...], option: str) -> Any:
    if value not in allowed:
        fail(f"{option} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def _as_of(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--as-of: not a date: {value!r} (expected YYYY-MM-DD)")


def _report(errors: list[RecordError]) -> None:
    for e in sorted(errors, key=lambda e: e.line):
        who = f" ({e.case_id})" if e.case_id else ""
        err.print(f"line {e.line}{who}: {e.path}: {e.message}", markup=False, highlight=False)


def load_engine(
    name: Literal["durable", "columnar"], packs: list[str] | None = None, overlay: str | None = None
) -> Engine:
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
    data: bytes, file: str, as_of: date | None, lang: Literal["zh", "en"], engine: Engine
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


@app.command()
def check(
    source: Annotated[
        str, typer.Argument(help="A JSON file (one case, an array, or NDJSON), or - for stdin.")
    ] = "-",
    as_of: AsOf = None,
    lang: LangOption = "zh",
    executor: ExecutorOption = "durable",
    pack: PacksOption = None,
    overlay: OverlayOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Check cases; print one verdict (pretty on a terminal) or NDJSON. Exit 0 pass, 1 fail, 2 invalid."""
    chosen_lang = _choice(lang, ("zh", "en"), "--lang")
    chosen_executor = _choice(executor, ("durable", "columnar"), "--executor")
    day = _as_of(as_of)
    loaded = load_engine(chosen_executor, pack, overlay)
    try:
        verdicts, errors = check_records(_read_input(source), source, day, chosen_lang, loaded)
    except CalendarRangeError as exc:
        fail(f"--as-of: {exc}")
    _report(errors)
    if len(verdicts) == 1 and sys.stdout.isatty():
        sys.stdout.buffer.write(orjson.dumps(verdicts[0], option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.buffer.write(b"".join(orjson.dumps(v) + b"\n" for v in verdicts))
    sys.stdout.flush()
    if not verdicts:
        raise typer.Exit(EXIT_INVALID)
    raise typer.Exit(EXIT_FAIL if any(v["verdict"] == "fail" for v in verdicts) else EXIT_OK)


@app.command()
def watch(
    source: Annotated[
        str, typer.Argument(help="Open cases exported as JSON (one, an array, or NDJSON), or - for stdin.")
    ] = "-",
    as_of: AsOf = None,
    pack: PacksOption = None,
    overlay: OverlayOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The watch list and the cards due as of a day, for cases exported nightly: yellow (预警) once the
    days left reach a rule's warn_at, red (超时) once its deadline has passed. NDJSON (a "watch" line per
    open case, then a "card" line per card), or tables on a terminal. Exit 1 if a red card is due."""
    from engine.core import parse_as_of
    from engine.watch import ManualClock, StaleUpdate, Watcher, WatchStore, day_start

    day = parse_as_of(_as_of(as_of))
    engine = load_engine("columnar", pack, overlay)
    valid, errors = validated_records(_read_input(source), source)
    items = [(obj, case, None) for _, obj, case in valid]
    # A snapshot, not a history: a store of its own that lives as long as the command.
    store = WatchStore("sqlite:///:memory:")
    watcher = Watcher(engine, engine, store, None, ManualClock(day_start(day)))
    try:
        answers = watcher.update_many(items, None)
        entries = watcher.watch_list({})
    except CalendarRangeError as exc:
        fail(f"--as-of: {exc}")
    finally:
        store.close()
    cards = []
    for (line, _, case), answer in zip(valid, answers, strict=True):
        if isinstance(answer, dict):
            cards.extend(answer["cards"])
        elif not isinstance(answer, StaleUpdate):  # a case_id repeated later in the file replaces it
            errors.append(RecordError(source, line, case.case_id, "as_of", str(answer)))
    _report(errors)
    if not any(isinstance(answer, dict) for answer in answers):  # nothing could be judged
        raise typer.Exit(EXIT_INVALID)
    if sys.stdout.isatty():
        _watch_tables(day, entries, cards)
    else:
        lines_out = [{"type": "watch", **entry} for entry in entries] + [{"type": "card", **c} for c in cards]
        sys.stdout.buffer.write(b"".join(orjson.dumps(line) + b"\n" for line in lines_out))
        sys.stdout.flush()
    raise typer.Exit(EXIT_FAIL if any(card["level"] == "red" for card in cards) else EXIT_OK)


def _watch_tables(day: date, entries: list[dict[str, Any]], cards: list[dict[str, Any]]) -> None:
    colours = {"red": "red", "yellow": "yellow", "green": "green"}
    table = Table(title=f"open cases as of {day}: {len(entries)}")
    for column in ("case", "kind", "district", "nearest limit", "deadline", "left", "level"):
        table.add_column(column)
    for entry in sorted(entries, key=lambda e: (e["deadline"] or "9999", e["case_id"])):
        left = "—" if entry["left"] is None else f"{entry['left']} {entry['unit'].replace('_', ' ')}"
        level = entry["level"]
        table.add_row(
            entry["case_id"],
            entry["kind"],
            entry["district"] or "",
            entry["rule"] or "",
            entry["deadline"] or "",
            left,
            f"[{colours[level]}]{level}[/]",
        )
    out.print(table)
    due = Table(title=f"cards due: {len(cards)}")
    for column in ("card", "case", "rule", "deadline", "due at"):
        due.add_column(column)
    for card in cards:
        level = card["level"]
        due.add_row(
            f"[{colours[level]}]{level}[/]", card["case_id"], card["rule"], card["deadline"], card["due_at"]
        )
    out.print(due)


@rules_app.command("list")
def rules_list(pack: PackOption = DEFAULT_PACK, data_dir: DataDirOption = None) -> None:
    """Every rule of the pack with its kind, severity and effective date."""
    loaded = _pack_or_exit(pack)
    table = Table(title=f"{loaded.version} — {loaded.manifest.document} {loaded.manifest.title}")
    for column in ("id", "kind", "scope", "severity", "from", "title"):
        table.add_column(column)
    for rule in [*loaded.rules, *loaded.aggregates]:
        scope = "aggregate" if isinstance(rule, AggregateRule) else "per case"
        table.add_row(rule.id, rule.kind, scope, rule.severity, str(rule.effective_from), rule.title.zh)
    out.print(table)


@rules_app.command("show")
def rules_show(rule_id: str, pack: PackOption = DEFAULT_PACK, data_dir: DataDirOption = None) -> None:
    """One rule in full, with the clause it comes from."""
    loaded = _pack_or_exit(pack)
    rule = loaded.by_id.get(rule_id)
    if rule is None:
        err.print(f"[red]error:[/] no rule {rule_id!r} in {loaded.version}; see `casecheck rules list`")
        raise typer.Exit(EXIT_INVALID)
    out.print(f"[bold]{rule.id}[/]  {rule.title.zh} / {rule.title.en}")
    out.print(f"source: {rule.source.reference}")
    out.print(f"clause: {rule.source.clause}")
    out.print(orjson.dumps(rule.model_dump(mode="json", by_alias=True), option=orjson.OPT_INDENT_2).decode())


@rules_app.command("validate")
def rules_validate(path: Path) -> None:
    """Validate a pack folder; a broken file is named with its rule and field. Exit 2 when broken."""
    try:
        loaded = load_pack_from(path)
    except RulePackError as exc:
        problems = str(exc).splitlines()
        err.print(
            f"[red]invalid:[/] {len(problems)} problem{'s' if len(problems) > 1 else ''}", highlight=False
        )
        for problem in problems:
            err.print(problem, markup=False, highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    out.print(
        f"ok: {loaded.version}: {len(loaded.rules)} per-case rules, {len(loaded.aggregates)} aggregate rules"
    )


@rules_app.command("packs")
def rules_packs(data_dir: DataDirOption = None) -> None:
    """The packs found by name, where each comes from, and those a data-directory pack shadows."""
    local = local_data_dir()
    table = Table(title="rule packs (a name in the data directory wins over the shipped one)")
    for column in ("name", "version", "rules", "from", "folder"):
        table.add_column(column)
    shipped = shipped_dir("rules")
    for name, folder in pack_folders().items():
        origin = "data directory" if local is not None and folder.is_relative_to(local) else "shipped"
        if origin == "data directory" and (shipped / name / "pack.yaml").is_file():
            origin += " (replaces the shipped one)"
        try:
            loaded = load_pack(name)
            version, count = loaded.version, str(len(loaded.rules) + len(loaded.aggregates))
        except RulePackError as exc:
            version, count = f"invalid: {str(exc).splitlines()[0]}", "—"
        table.add_row(name, version, count, origin, str(folder))
    out.print(table)


def _pack_or_exit(name: str) -> Any:
    try:
        return load_pack(name)
    except RulePackError as exc:
        fail(str(exc))


@rules_app.command("diff")
def rules_diff(
    old: Annotated[str, typer.Argument(help="The pack in force: a name or folder.")],
    new: Annotated[str, typer.Argument(help="The proposed pack: a name or folder.")],
    data_dir: DataDirOption = None,
) -> None:
    """Rules added (+), removed (-) and changed (~: limit, conditions, measure, severity, dates, clause)."""
    before, after = _pack_or_exit(old), _pack_or_exit(new)
    lines = diff_packs(before, after)
    out.print(f"{before.version} → {after.version}: {len(lines)} rule(s) differ", highlight=False)
    for line in lines:
        out.print(line, markup=False, highlight=False)


@rules_app.command("test")
def rules_test(pack: PackOption = DEFAULT_PACK, data_dir: DataDirOption = None) -> None:
    """Run every example of the pack (its examples/ folder) through both executors. Exit 1 on a difference."""
    from engine.examples import run_examples

    loaded = _pack_or_exit(pack)
    try:
        runs = run_examples(loaded, load_calendar(), loaded.folder / "examples")
    except RulePackError as exc:
        for problem in str(exc).splitlines():
            err.print(f"[red]invalid:[/] {problem}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    table = Table(title=f"{loaded.version}: {len(runs)} examples")
    for column in ("rule", "example", "expected", "durable", "columnar", ""):
        table.add_column(column)
    for run in runs:
        mark = "ok" if run.ok else "[red]DIFFERS[/]"
        table.add_row(run.example.rule, run.example.name, run.expected, run.durable, run.columnar, mark)
    out.print(table)
    failed = [run for run in runs if not run.ok]
    for run in failed:
        err.print(
            f"{run.file}: {run.example.rule} / {run.example.name} (as_of {run.example.as_of}): expected "
            f"{run.expected}, durable {run.durable}, columnar {run.columnar}; case {orjson.dumps(run.case).decode()}",
            markup=False,
            highlight=False,
        )
    if failed:
        raise typer.Exit(EXIT_FAIL)


def _calendar_call(method: str, overlay: str | None, *args: Any) -> Any:
    """A calendar method, with the calendar (and its overlay) loaded inside, so that a bad overlay is a
    user error like a bad date."""
    try:
        return getattr(load_calendar(overlay), method)(*args)
    except (CasecheckError, OSError) as exc:
        fail(str(exc))


@calendar_app.command("is-workday")
def calendar_is_workday(day: str, overlay: OverlayOption = None, data_dir: DataDirOption = None) -> None:
    """Whether DAY is a working day (weekends, statutory holidays and make-up days considered)."""
    answer = _calendar_call("is_working_day", overlay, day)
    out.print(f"{day}: {'working day 工作日' if answer else 'day off 休息日'}")


@calendar_app.command("between")
def calendar_between(
    start: str, end: str, overlay: OverlayOption = None, data_dir: DataDirOption = None
) -> None:
    """Working days d with START < d ≤ END (the start day is not counted, 民法典 第201条)."""
    count = _calendar_call("working_days_between", overlay, start, end)
    out.print(f"{count} working days after {start} up to {end}")


@calendar_app.command("add")
def calendar_add(day: str, n: int, overlay: OverlayOption = None, data_dir: DataDirOption = None) -> None:
    """The N-th working day after DAY (a deadline of N working days)."""
    result = _calendar_call("add_working_days", overlay, day, n)
    out.print(f"{n} working days after {day}: {result}")


@calendar_app.command("info")
def calendar_info(data_dir: DataDirOption = None) -> None:
    """The calendar in force: covered years, version, where each year's file comes from, the overlays."""
    try:
        index = load_calendar()
    except CasecheckError as exc:
        fail(str(exc))
    local = local_data_dir()
    out.print(f"{index.version}: {index.first} – {index.last}", highlight=False)
    for path in notice_paths():
        origin = "data directory" if local is not None and path.is_relative_to(local) else "shipped"
        out.print(f"  {path.stem}: {origin} {path}", markup=False, highlight=False)
    overlays = overlay_names()
    out.print(f"overlays: {', '.join(f'{name} ({path})' for name, path in overlays.items()) or 'none'}")
    out.print(f"the next year's file: {year_file(index.last.year + 1)}", markup=False, highlight=False)


@calendar_app.command("validate")
def calendar_validate(
    file: Annotated[Path, typer.Argument(help="A year file (<year>.toml) or an overlay file.")],
    data_dir: DataDirOption = None,
) -> None:
    """Check a year or overlay file and show the days it flips against the calendar in force. Exit 2 if
    the file is invalid."""
    import numpy as np

    from engine.calendar import Overlay, build_index, changed_days, read_calendar_file

    if not file.is_file():
        fail(f"no such file: {file}")
    try:
        parsed = read_calendar_file(file)
        current = load_calendar()
        raw = file.read_bytes()
        if isinstance(parsed, Overlay):
            notices = notices_in_force()
            proposed = build_index(notices, (file.stem, parsed, raw))
        else:
            notices = [(n, b) for n, b in notices_in_force() if n.year != parsed.year]
            years = sorted([parsed.year, *(n.year for n, _ in notices)])
            if years != list(range(years[0], years[-1] + 1)):
                fail(
                    f"{file}: {parsed.year} would leave a gap: the calendar covers {current.covered[0]}–"
                    f"{current.covered[1]}, so the next year's file is {current.covered[1] + 1}.toml"
                )
            proposed = build_index([*notices, (parsed, raw)])
    except (CasecheckError, OSError) as exc:
        fail(str(exc))
    if isinstance(parsed, Overlay):
        out.print(f"ok: overlay {file.stem}: {parsed.description}", markup=False, highlight=False)
    else:
        source = " ".join(x for x in (parsed.notice, parsed.number, parsed.url) if x)
        out.print(f"ok: {parsed.year}: {source}", markup=False, highlight=False)
        if not current.first.year <= parsed.year <= current.last.year:
            year = np.arange(f"{parsed.year}-01-01", f"{parsed.year + 1}-01-01", dtype="datetime64[D]")
            out.print(
                f"adds {parsed.year}: {int(proposed.is_working_day(year).sum())} working days, {len(parsed.days_off())} announced days "
                f"off, {len(parsed.make_up_workdays())} make-up working days",
                highlight=False,
            )
    flips = changed_days(current, proposed)
    out.print(f"{len(flips)} day(s) change against {current.version}:", highlight=False)
    for day, working in flips:
        change = "day off → working day" if working else "working day → day off"
        out.print(f"  {day} {day:%a}: {change}", highlight=False)
    out.print(f"version with this file: {proposed.version}", highlight=False)


@app.command()
def schema(
    kind: Annotated[str | None, typer.Argument(help="A case kind; all kinds when left out.")] = None,
) -> None:
    """The JSON Schema of case records, for integrators."""
    if kind is not None:
        _choice(kind, KINDS, "KIND")
    sys.stdout.buffer.write(orjson.dumps(case_json_schema(kind), option=orjson.OPT_INDENT_2) + b"\n")


@app.command()
def demo(
    folder: Annotated[Path, typer.Argument(help="Folder of sample cases (*.ndjson).")] = Path(
        "cases/samples"
    ),
    as_of: AsOf = "2026-11-24",
) -> None:
    """Check the bundled sample cases and show their verdicts as a table."""
    files = sorted(folder.glob("*.ndjson"))
    if not files:
        err.print(f"[red]error:[/] no sample cases (*.ndjson) in {folder}")
        raise typer.Exit(EXIT_INVALID)
    table = Table(title=f"casecheck demo — {len(files)} sample files, as of {as_of}")
    for column in ("case", "kind", "verdict", "failing rules"):
        table.add_column(column)
    colours = {"pass": "green", "fail": "red", "warn": "yellow", "pending": "cyan"}
    tally: dict[str, int] = dict.fromkeys(colours, 0)
    engine = load_engine("durable")
    day = _as_of(as_of)
    for path in files:
        verdicts, errors = check_records(path.read_bytes(), str(path), day, "zh", engine)
        _report(errors)
        for verdict in verdicts:
            failing = ", ".join(r["rule"] for r in verdict["results"] if r["status"] == "fail")
            colour = colours[verdict["verdict"]]
            tally[verdict["verdict"]] += 1
            table.add_row(verdict["case_id"], verdict["kind"], f"[{colour}]{verdict['verdict']}[/]", failing)
    out.print(table)
    out.print("  ".join(f"[{colours[name]}]{name}[/]: {count}" for name, count in tally.items()))
    out.print(
        "Details of one case: casecheck check FILE --as-of DATE (NDJSON verdicts with reasons and clauses)."
    )


@app.command()
def scan(
    paths: Annotated[
        list[Path], typer.Argument(help="Files (.ndjson, .jsonl, .json, .csv, .parquet) or folders.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the outputs.")] = Path("out"),
    as_of: AsOf = None,
    period: Annotated[
        str, typer.Option("--period", help="Aggregate period: month, quarter or year.")
    ] = "month",
    by: Annotated[
        str | None, typer.Option("--by", help="Also group aggregates by district or department.")
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            "--engine",
            help="Executor: columnar or durable on this machine, or spark (columnar on a Spark cluster).",
        ),
    ] = "columnar",
    master: Annotated[
        str, typer.Option("--master", help="With --executor spark: local[*], spark://host:port or yarn.")
    ] = "local[*]",
    pack: PacksOption = None,
    overlay: OverlayOption = None,
    data_dir: DataDirOption = None,
    compare_pack: Annotated[
        list[str] | None,
        typer.Option(
            "--compare-pack",
            help="Also judge the cases under this pack (repeat for several) and report what changes.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes (default: one per CPU for durable scans of inputs over 16 MiB, else 1).",
        ),
    ] = None,
) -> None:
    """Check every case of PATHS; write verdicts/results Parquet, errors.jsonl, summary.json, report.html."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.reading import input_files
    from engine.report import write_report
    from engine.scan import Scanner

    chosen_period = _choice(period, ("month", "quarter", "year"), "--period")
    if by is not None:
        _choice(by, ("district", "department"), "--by")
    chosen_executor = _choice(executor, ("durable", "columnar", "spark"), "--executor")
    skipped: list[tuple[str, str]] = []
    try:
        files = input_files(paths, skipped)
    except (FileNotFoundError, CasecheckError) as exc:
        fail(str(exc))
    for file, why in skipped:
        err.print(f"skipped {file}: {why}", markup=False, highlight=False)
    if not files:
        fail(f"no input files to read in {', '.join(map(str, paths))}")
    if workers is None:
        # A columnar scan already spreads over the cores inside Polars, and handing chunks and their rows
        # between processes costs more than the idle share of a core (benchmarks/test_scan_bench.py); the
        # durable executor runs on one core, so its large scans take one worker per core.
        large = sum(path.stat().st_size for path in files) > 16 * 2**20
        workers = (os.cpu_count() or 1) if large and chosen_executor == "durable" else 1
    day = _as_of(as_of)
    _writable(out_dir)
    if chosen_executor == "spark":
        if compare_pack:
            fail("--compare-pack is for local scans (--executor columnar or durable)")
        _spark_scan(files, out_dir, day, chosen_period, by, master, pack, overlay)
        return
    loaded = load_engine(chosen_executor, pack, overlay)
    other = load_engine(chosen_executor, compare_pack, overlay) if compare_pack else None

    def scanned(engine: Engine, folder: Path, label: str) -> dict[str, Any]:
        scanner = Scanner(engine, folder, day, chosen_period, by, max(1, workers))
        columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, disable=not err.is_terminal, transient=True) as bar:
            task = bar.add_task("scan", total=None)
            return scanner.scan(files, lambda n: bar.advance(task, n), skipped)

    try:
        summary = scanned(loaded, out_dir, "scanning")
        if summary["input"] == 0:
            fail(f"no case records in {', '.join(map(str, files))} (the files are empty)")
        if other is not None:
            from engine.impact import pack_impact

            scanned(other, out_dir / "compared", f"scanning under {other.pack.version}")
            impact = pack_impact(out_dir, out_dir / "compared", loaded.pack.version, other.pack.version)
            summary["impact"] = impact
            (out_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    except CalendarRangeError as exc:
        fail(f"--as-of: {exc}")
    report = write_report(out_dir)
    _print_summary(summary, out_dir)
    out.print(f"report: {report}")
    if summary["verdicts"] == 0 and summary["errors"]:
        raise typer.Exit(EXIT_INVALID)


def _spark_scan(
    files: list[Path],
    out_dir: Path,
    day: date | None,
    period: Any,
    by: str | None,
    master: str,
    packs: list[str] | None,
    overlay: str | None,
) -> None:
    """The scan on Spark: the same outputs, summary and report as a local scan."""
    from engine.core import Setup, parse_as_of
    from engine.report import write_report

    try:
        from engine.errors import SparkInputError
        from engine.spark import read_cases, scan_dataframe, spark_session, write_scan
    except ImportError as exc:
        fail(f"--executor spark needs PySpark: pip install 'casecheck[spark]' ({exc})")
    load_engine("columnar", packs, overlay)  # a pack or overlay that cannot be loaded: one line, here
    setup = Setup(tuple(packs or [DEFAULT_PACK]), overlay)
    session = spark_session(master)
    try:
        scan = scan_dataframe(read_cases(session, files), parse_as_of(day), period, by, setup)
        write_scan(scan, out_dir)
        scan.release()
    except SparkInputError as exc:
        fail(str(exc))
    except CalendarRangeError as exc:
        fail(f"--as-of: {exc}")
    finally:
        session.stop()
    if scan.summary["input"] == 0:
        fail(f"no case records in {', '.join(map(str, files))} (the files are empty)")
    report = write_report(out_dir)
    _print_summary(scan.summary, out_dir)
    out.print(f"report: {report}")
    if scan.summary["verdicts"] == 0 and scan.summary["errors"]:
        raise typer.Exit(EXIT_INVALID)


def _writable(folder: Path) -> None:
    """Fail now, in one line, if the outputs cannot be written to ``folder`` (not after the whole scan)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        fail(f"--out {folder}: cannot write there ({exc.strerror or exc})")


def _print_summary(summary: dict[str, Any], out_dir: Path) -> None:
    """The scan's headline numbers, the rules with the most failures, and the aggregate groups that fail."""
    counts = summary["verdict_counts"]
    out.print(
        f"{summary['input']} cases read: {summary['verdicts']} checked, {summary['errors']} errors "
        f"(as of {summary['as_of']}, {summary['ruleset']}, {summary['calendar']})"
    )
    out.print("  ".join(f"{name}: {count}" for name, count in counts.items()))
    table = Table(title="per-case rules, most failures first")
    for column in ("rule", "pass", "fail", "pending", "exempt", "n/a", "compliance"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    rows = sorted(summary["rules"].items(), key=lambda item: -item[1].get("fail", 0))
    for rule_id, by_status in rows:
        judged = by_status.get("pass", 0) + by_status.get("fail", 0)
        rate = f"{by_status.get('pass', 0) / judged:.1%}" if judged else "—"
        table.add_row(
            rule_id,
            *(str(by_status.get(s, 0)) for s in ("pass", "fail", "pending", "exempt", "not_applicable")),
            rate,
        )
    out.print(table)
    failing = [a for a in summary["aggregates"] if a["status"] == "fail"]
    out.print(f"aggregate groups: {len(summary['aggregates'])}, failing: {len(failing)}")
    for entry in failing[:10]:
        group = f" {entry['group']}" if entry["group"] else ""
        out.print(
            f"  {entry['rule']} {entry['period']}{group}: {entry['value']} vs {entry['op']} {entry['limit']} (n={entry['n']})"
        )
    impact = summary.get("impact")
    if impact is not None:

        def moves(changes: list[dict[str, Any]]) -> str:
            return ", ".join(f"{c['from']}→{c['to']}: {c['n']}" for c in changes) or "none"

        out.print(
            f"under {impact['compared_ruleset']}: {impact['verdicts_changed']} of {impact['cases']} verdicts "
            f"change ({moves(impact['verdict_changes'])})",
            markup=False,
            highlight=False,
        )
        for rule_id, entry in list(impact["rules"].items())[:10]:
            out.print(
                f"  {rule_id}: {entry['changed']} ({moves(entry['changes'])})", markup=False, highlight=False
            )
    out.print(
        f"outputs in {out_dir}/: verdicts.parquet, results.parquet, errors.jsonl, summary.json, report.html"
    )


@app.command()
def generate(
    n: Annotated[int, typer.Option("--n", min=1, help="How many cases.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same cases.")] = 0,
    out_file: Annotated[Path, typer.Option("--out", help="Output file: .ndjson, .jsonl or .parquet.")] = Path(
        "cases.ndjson"
    ),
) -> None:
    """Synthetic cases of every kind (most compliant, some failing, boundaries, pauses, open cases)."""
    from engine.generate import generate_cases, write_cases

    if out_file.suffix not in (".ndjson", ".jsonl", ".parquet"):
        err.print("[red]error:[/] --out must end in .ndjson, .jsonl or .parquet")
        raise typer.Exit(EXIT_INVALID)
    write_cases(generate_cases(n, seed), out_file)
    out.print(f"{n} cases (seed {seed}) written to {out_file}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    store: Annotated[
        str, typer.Option(help="Verdict log: sqlite:///path (default) or postgresql://…")
    ] = DEFAULT_STORE,
    api_keys: Annotated[
        Path | None,
        typer.Option(
            "--api-keys",
            help="File of name:key lines (add ' auditor' to read every caller's checks); without it the service is open.",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per CPU).")] = None,
    pack: PacksOption = None,
    overlay: OverlayOption = None,
    data_dir: DataDirOption = None,
    webhook: Annotated[
        list[str] | None,
        typer.Option(help="POST each watch card to this URL (repeatable); retried until a 2xx."),
    ] = None,
) -> None:
    """Run the HTTP service (FastAPI + uvicorn): /v1/check, /v1/check/batch, /v1/rules, /docs, …"""
    from engine.api import load_api_keys
    from engine.api import serve as run_service

    if api_keys is not None:
        try:
            load_api_keys(api_keys)
        except OSError as exc:
            fail(f"--api-keys {api_keys}: {exc.strerror or exc}")
        except ValueError as exc:  # names the line that is not name:key
            fail(f"--api-keys: {exc}")
    load_engine("columnar", pack, overlay)  # a pack or overlay that cannot be loaded stops the start-up here
    for url in webhook or []:
        if not url.startswith(("http://", "https://")):
            fail(f"--webhook: {url!r} is not an http:// or https:// URL")
    run_service(
        host=host,
        port=port,
        store=store,
        api_keys=api_keys,
        workers=workers,
        packs=pack,
        overlay=overlay,
        webhooks=webhook or (),
    )
