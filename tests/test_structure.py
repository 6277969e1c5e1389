"""The package's shape: no import cycle among engine modules, every module declares its public names,
and the public API of the package and its error tree stay what they are."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import engine
from engine import errors

ENGINE = Path(engine.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(ENGINE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every engine module the file imports, at its top or inside a function (a lazy import is still an
    edge of the graph)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {name for name in names if name in MODULES}
    return found


def test_no_import_cycle_among_engine_modules() -> None:
    graph = {name: _imports(path) - {name} for name, path in MODULES.items()}
    # A package importing its own submodules is not a cycle of the layers.
    graph = {name: {dep for dep in deps if not dep.startswith(f"{name}.")} for name, deps in graph.items()}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                cycles.append([*trail[trail.index(dep) :], dep] if dep in trail else [name, dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_every_module_declares_its_public_names() -> None:
    for name in MODULES:
        module = importlib.import_module(name)
        declared = getattr(module, "__all__", None)
        assert declared is not None, f"{name} has no __all__"
        # A package may declare its submodules, which are attributes only once imported.
        missing = [n for n in declared if not hasattr(module, n) and f"{name}.{n}" not in MODULES]
        assert missing == [], f"{name}.__all__ names what it does not define: {missing}"


def test_the_package_public_api() -> None:
    assert engine.__all__ == ["Engine"]
    assert engine.Engine.__module__ == "engine.core"
    assert errors.__all__ == [
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


def test_every_error_casecheck_raises_on_purpose_has_one_root() -> None:
    from engine.core import CasesRefused
    from engine.watch import StaleUpdate, Undecidable

    for error in (
        errors.CalendarDataError,
        errors.CalendarRangeError,
        errors.InputError,
        errors.InvalidCase,
        errors.InvalidDate,
        errors.RulePackError,
        errors.SparkInputError,
        CasesRefused,
        StaleUpdate,
        Undecidable,
    ):
        assert issubclass(error, errors.CasecheckError), error


def test_json_paths_of_pydantic_locations() -> None:
    assert errors.json_path(()) == "$"
    assert errors.json_path(("pauses", 1, "end")) == "pauses[1].end"
    assert errors.json_path((0, "case_id")) == "[0].case_id"
