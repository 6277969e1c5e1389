"""The ``casecheck`` command line: check, rules, calendar, schema and demo.

Output meant for programs (verdicts) goes to stdout as JSON; problems go to stderr with the record's
line and JSON path, so a pipeline never mistakes an error report for a verdict.
"""

from __future__ import annotations

import codecs
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.calendar import CalendarRangeError, load_calendar
from engine.cases import InvalidCase, case_json_schema, shown_id, validate_case
from engine.rules import KINDS, AggregateRule, RulePackError, diff_packs, load_pack, load_pack_from
from engine.store import DEFAULT_STORE

if TYPE_CHECKING:
    from engine.core import Engine

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
LangOption = Annotated[str, typer.Option("--lang", help="Message language: zh or en.")]
EngineOption = Annotated[str, typer.Option("--engine", help="Executor: durable or columnar.")]


@dataclass
class RecordError:
    """A record that could not be checked: where it was and what was wrong."""

    line: int
    case_id: str | None
    path: str
    message: str


def read_records(data: bytes) -> tuple[list[tuple[int, Any]], list[RecordError]]:
    """One JSON object, a JSON array, or NDJSON → (line, object) pairs, plus lines that are not JSON.

    Array items are numbered by position (1-based) since a pretty-printed array has no line per item.
    A UTF-8 byte order mark (Notepad and Excel write one) is skipped; input with no record is an error.
    """
    data = data.removeprefix(codecs.BOM_UTF8)
    stripped = data.lstrip()
    if not stripped:
        return [], [RecordError(1, None, "$", "no case records: the input is empty")]
    if stripped.startswith(b"["):
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return [], [RecordError(1, None, "$", f"invalid JSON: {exc}")]
        if not items:
            return [], [RecordError(1, None, "$", "no case records: the JSON array is empty")]
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
            errors.append(RecordError(number, None, "$", f"invalid JSON: {exc}"))
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


def load_engine(name: Literal["durable", "columnar"]) -> Engine:
    """Imported here, not at the top: `casecheck calendar …` should not pay for durable_rules and Polars."""
    from engine.core import Engine

    return Engine.load(engine=name)


def check_records(
    data: bytes, as_of: date | None, lang: Literal["zh", "en"], engine: Engine
) -> tuple[list[dict[str, Any]], list[RecordError]]:
    """Validate every record, check the valid ones, and keep every problem with its line and path; a
    record that fails while being checked is reported as such and the others are still checked."""
    from engine.core import isolated

    records, errors = read_records(data)
    cases, lines = [], []
    for line, obj in records:
        try:
            cases.append(validate_case(obj))
            lines.append(line)
        except InvalidCase as exc:
            case_id = shown_id(obj.get("case_id")) if isinstance(obj, dict) else None
            errors.extend(RecordError(line, case_id, e.path, e.message) for e in exc.errors)
    done, failed = isolated(cases, lambda part: engine.check_many(part, as_of, lang))
    for position, error in failed.items():
        errors.append(RecordError(lines[position], cases[position].case_id, error.path, error.message))
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
    engine: EngineOption = "durable",
) -> None:
    """Check cases; print one verdict (pretty on a terminal) or NDJSON. Exit 0 pass, 1 fail, 2 invalid."""
    chosen_lang = _choice(lang, ("zh", "en"), "--lang")
    chosen_engine = _choice(engine, ("durable", "columnar"), "--engine")
    day = _as_of(as_of)
    try:
        verdicts, errors = check_records(_read_input(source), day, chosen_lang, load_engine(chosen_engine))
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


@rules_app.command("list")
def rules_list(pack: Annotated[str, typer.Option(help="Pack name or folder.")] = "ningbo-2020") -> None:
    """Every rule of the pack with its kind, severity and effective date."""
    loaded = load_pack(pack)
    table = Table(title=f"{loaded.version} — {loaded.manifest.document} {loaded.manifest.title}")
    for column in ("id", "kind", "scope", "severity", "from", "title"):
        table.add_column(column)
    for rule in [*loaded.rules, *loaded.aggregates]:
        scope = "aggregate" if isinstance(rule, AggregateRule) else "per case"
        table.add_row(rule.id, rule.kind, scope, rule.severity, str(rule.effective_from), rule.title.zh)
    out.print(table)


@rules_app.command("show")
def rules_show(
    rule_id: str, pack: Annotated[str, typer.Option(help="Pack name or folder.")] = "ningbo-2020"
) -> None:
    """One rule in full, with the clause it comes from."""
    loaded = load_pack(pack)
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


def _pack_or_exit(name: str) -> Any:
    try:
        return load_pack(name)
    except RulePackError as exc:
        fail(str(exc))


@rules_app.command("diff")
def rules_diff(
    old: Annotated[str, typer.Argument(help="The pack in force: a name or folder.")],
    new: Annotated[str, typer.Argument(help="The proposed pack: a name or folder.")],
) -> None:
    """Rules added (+), removed (-) and changed (~: limit, conditions, measure, severity, dates, clause)."""
    before, after = _pack_or_exit(old), _pack_or_exit(new)
    lines = diff_packs(before, after)
    out.print(f"{before.version} → {after.version}: {len(lines)} rule(s) differ", highlight=False)
    for line in lines:
        out.print(line, markup=False, highlight=False)


@rules_app.command("test")
def rules_test(pack: Annotated[str, typer.Option(help="Pack name or folder.")] = "ningbo-2020") -> None:
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
    except (ValueError, OSError) as exc:  # CalendarRangeError and CalendarDataError are ValueErrors
        fail(str(exc))


OverlayOption = Annotated[
    str | None, typer.Option(help="A local overlay: its name, or the path of a .toml file.")
]


@calendar_app.command("is-workday")
def calendar_is_workday(day: str, overlay: OverlayOption = None) -> None:
    """Whether DAY is a working day (weekends, statutory holidays and make-up days considered)."""
    answer = _calendar_call("is_working_day", overlay, day)
    out.print(f"{day}: {'working day 工作日' if answer else 'day off 休息日'}")


@calendar_app.command("between")
def calendar_between(start: str, end: str, overlay: OverlayOption = None) -> None:
    """Working days d with START < d ≤ END (the start day is not counted, 民法典 第201条)."""
    count = _calendar_call("working_days_between", overlay, start, end)
    out.print(f"{count} working days after {start} up to {end}")


@calendar_app.command("add")
def calendar_add(day: str, n: int, overlay: OverlayOption = None) -> None:
    """The N-th working day after DAY (a deadline of N working days)."""
    result = _calendar_call("add_working_days", overlay, day, n)
    out.print(f"{n} working days after {day}: {result}")


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
        verdicts, errors = check_records(path.read_bytes(), day, "zh", engine)
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
    engine: EngineOption = "columnar",
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

    from engine.report import write_report
    from engine.scan import Scanner, input_files

    chosen_period = _choice(period, ("month", "quarter", "year"), "--period")
    if by is not None:
        _choice(by, ("district", "department"), "--by")
    chosen_engine = _choice(engine, ("durable", "columnar"), "--engine")
    skipped: list[tuple[str, str]] = []
    try:
        files = input_files(paths, skipped)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    for file, why in skipped:
        err.print(f"skipped {file}: {why}", markup=False, highlight=False)
    if not files:
        fail(f"no input files to read in {', '.join(map(str, paths))}")
    if workers is None:
        # A columnar scan already keeps every core busy inside Polars (200,000 cases on 2 cores: 4.6 s in
        # one process, 5.6 s with two workers); the durable executor runs on one core, and starting
        # workers costs a second or two, so they pay only for large durable scans.
        large = sum(path.stat().st_size for path in files) > 16 * 2**20
        workers = (os.cpu_count() or 1) if large and chosen_engine == "durable" else 1
    day = _as_of(as_of)
    _writable(out_dir)
    try:
        scanner = Scanner(load_engine(chosen_engine), out_dir, day, chosen_period, by, max(1, workers))
        columns = (TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, disable=not err.is_terminal, transient=True) as bar:
            task = bar.add_task("scan", total=None)
            summary = scanner.scan(files, lambda n: bar.advance(task, n), skipped)
    except CalendarRangeError as exc:
        fail(f"--as-of: {exc}")
    if summary["input"] == 0:
        fail(f"no case records in {', '.join(map(str, files))} (the files are empty)")
    report = write_report(out_dir)
    _print_summary(summary, out_dir)
    out.print(f"report: {report}")
    if summary["verdicts"] == 0 and summary["errors"]:
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
    run_service(host=host, port=port, store=store, api_keys=api_keys, workers=workers)
