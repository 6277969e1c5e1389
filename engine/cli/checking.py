"""Checking cases as given: ``check``, ``watch``, ``schema`` and ``demo``."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from engine.cases import case_json_schema
from engine.domain import KINDS
from engine.errors import (
    CalendarRangeError,
    RecordError,
)

if TYPE_CHECKING:
    pass


from engine.cli.common import (
    EXIT_FAIL,
    EXIT_INVALID,
    EXIT_OK,
    LANGS,
    AsOf,
    DataDirOption,
    ExecutorOption,
    LangOption,
    OverlayOption,
    PacksOption,
    app,
    as_of_day,
    check_records,
    choice,
    err,
    fail,
    load_engine,
    out,
    read_input,
    report_errors,
    validated_records,
)
from engine.domain import EXECUTORS

__all__ = ["check", "demo", "schema", "watch"]


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
    chosen_lang = choice(lang, LANGS, "--lang")
    chosen_executor = choice(executor, EXECUTORS, "--executor")
    day = as_of_day(as_of)
    loaded = load_engine(chosen_executor, pack, overlay)
    try:
        verdicts, errors = check_records(read_input(source), source, day, chosen_lang, loaded)
    except CalendarRangeError as exc:
        fail(f"--as-of: {exc}")
    report_errors(errors)
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

    day = parse_as_of(as_of_day(as_of))
    engine = load_engine("columnar", pack, overlay)
    valid, errors = validated_records(read_input(source), source)
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
    report_errors(errors)
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


@app.command()
def schema(
    kind: Annotated[str | None, typer.Argument(help="A case kind; all kinds when left out.")] = None,
) -> None:
    """The JSON Schema of case records, for integrators."""
    if kind is not None:
        choice(kind, KINDS, "KIND")
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
    day = as_of_day(as_of)
    for path in files:
        verdicts, errors = check_records(path.read_bytes(), str(path), day, "zh", engine)
        report_errors(errors)
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
