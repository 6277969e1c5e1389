"""Scanning history and making it: ``scan`` (here or on Spark) and ``generate``."""

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import orjson
import typer
from rich.table import Table

from engine.errors import (
    CalendarRangeError,
    CasecheckError,
)

if TYPE_CHECKING:
    from engine.core import Engine


from engine.cli.common import (
    DEFAULT_PACK,
    EXIT_INVALID,
    AsOf,
    DataDirOption,
    OverlayOption,
    PacksOption,
    app,
    as_of_day,
    choice,
    err,
    fail,
    load_engine,
    out,
)
from engine.domain import EXECUTORS, GroupBy, Period

PERIODS: tuple[Period, ...] = get_args(Period)
GROUPS: tuple[GroupBy, ...] = get_args(GroupBy)
SPARK = "spark"  # columnar, on a Spark cluster

__all__ = ["generate", "scan"]


@app.command()
def scan(
    paths: Annotated[
        list[Path], typer.Argument(help="Files (.ndjson, .jsonl, .json, .csv, .parquet) or folders.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the outputs.")] = Path("out"),
    as_of: AsOf = None,
    period: Annotated[
        str, typer.Option("--period", help=f"Aggregate period: {', '.join(PERIODS)}.")
    ] = "month",
    by: Annotated[
        str | None, typer.Option("--by", help=f"Also group aggregates by {' or '.join(GROUPS)}.")
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

    chosen_period = choice(period, PERIODS, "--period")
    if by is not None:
        choice(by, GROUPS, "--by")
    chosen_executor = choice(executor, (*EXECUTORS, SPARK), "--executor")
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
    day = as_of_day(as_of)
    _writable(out_dir)
    if chosen_executor == SPARK:
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
