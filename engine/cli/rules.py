"""The ``rules`` commands: list, show, validate, packs, diff, test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from engine.calendar import load_calendar
from engine.errors import (
    RulePackError,
)
from engine.packs import diff_packs, load_pack, load_pack_from, pack_folders
from engine.resources import local_data_dir, shipped_dir
from engine.rules import AggregateRule

if TYPE_CHECKING:
    pass


from engine.cli.common import (
    DEFAULT_PACK,
    EXIT_FAIL,
    EXIT_INVALID,
    DataDirOption,
    PackOption,
    err,
    fail,
    out,
    rules_app,
)

__all__ = ["rules_diff", "rules_list", "rules_packs", "rules_show", "rules_test", "rules_validate"]


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
