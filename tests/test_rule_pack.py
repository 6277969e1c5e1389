"""The rule pack loads, matches RULES.md's shape, and a broken file is named with its rule and field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.errors import RulePackError
from engine.packs import load_pack, load_pack_from
from engine.resources import shipped_dir

CASECHECK = str(Path(sys.executable).parent / "casecheck")
PACK = shipped_dir("rules") / "ningbo-2020"


def test_pack_has_every_rule_of_rules_md() -> None:
    pack = load_pack()
    assert len(pack.rules) == 39
    assert len(pack.aggregates) == 13
    assert pack.version.startswith("ningbo-2020@")
    assert pack.by_id["water.within150.7wd"].require.limit == 7
    assert pack.by_id["procurement.bond_cap_5pct"].require.limit == 0.05


def test_every_clause_is_quoted_from_the_document() -> None:
    seed = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_5953c194e2a9352a.txt"
    if not seed.exists():
        pytest.skip(f"the source document is not beside the checkout ({seed})")
    text = seed.read_text(encoding="utf-8")
    pack = load_pack()
    unquoted = [
        r.id for r in [*pack.rules, *pack.aggregates] if r.source.clause.split("（正文")[0] not in text
    ]
    assert unquoted == []


def _broken_copy(tmp_path: Path, mutate: callable) -> Path:  # type: ignore[valid-type]
    folder = tmp_path / "pack"
    shutil.copytree(PACK, folder)
    water = folder / "water.yaml"
    data = yaml.safe_load(water.read_text(encoding="utf-8"))
    mutate(data["rules"])
    water.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return folder


def test_broken_rule_names_file_rule_and_field(tmp_path: Path) -> None:
    def mutate(rules: list[dict]) -> None:
        rules[2]["require"]["op"] = "at_most"

    folder = _broken_copy(tmp_path, mutate)
    with pytest.raises(RulePackError) as info:
        load_pack_from(folder)
    message = str(info.value)
    assert "water.yaml" in message
    assert "water.no_external.2wd" in message
    assert "require.op" in message


def test_a_field_the_kind_lacks_is_refused_and_every_problem_is_listed(tmp_path: Path) -> None:
    """A typo in a field made the rule not_applicable to every case, and `rules validate` said ok."""

    def mutate(rules: list[dict]) -> None:
        rules[0]["measure"]["field"] = "stepz"  # water.steps
        rules[2]["when"]["all"][0]["field"] = "approval.mod"  # a sub-record's field, misspelt
        rules[3]["require"]["op"] = "at_most"  # and a problem of another sort

    folder = _broken_copy(tmp_path, mutate)
    with pytest.raises(RulePackError) as info:
        load_pack_from(folder)
    lines = str(info.value).splitlines()
    assert len(lines) == 3, lines
    assert any("rule water.steps: 'stepz' is not a field of water_connection" in line for line in lines)
    assert any("'approval.mod' is not a field of approval" in line for line in lines)
    assert any("require.op" in line for line in lines)
    assert all(line.startswith(str(folder / "water.yaml")) for line in lines)
    done = subprocess.run([CASECHECK, "rules", "validate", str(folder)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "stepz" in done.stderr and "approval.mod" in done.stderr and "Traceback" not in done.stderr


def test_duplicate_rule_id_is_refused(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path, lambda rules: rules.append(dict(rules[0])))
    with pytest.raises(RulePackError, match=r"water\.steps: id already defined"):
        load_pack_from(folder)


def test_rules_validate_cli(tmp_path: Path) -> None:
    ok = subprocess.run([CASECHECK, "rules", "validate", str(PACK)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "39 per-case rules, 13 aggregate rules" in ok.stdout

    def mutate(rules: list[dict]) -> None:
        del rules[0]["effective_from"]

    broken = subprocess.run(
        [CASECHECK, "rules", "validate", str(_broken_copy(tmp_path, mutate))], capture_output=True, text=True
    )
    assert broken.returncode == 2
    assert "water.steps" in broken.stderr and "effective_from" in broken.stderr


def test_rules_show_prints_the_clause() -> None:
    shown = subprocess.run(
        [CASECHECK, "rules", "show", "water.within150.7wd"], capture_output=True, text=True
    )
    assert shown.returncode == 0
    assert "管线长度在150米内的" in shown.stdout
    missing = subprocess.run([CASECHECK, "rules", "show", "no.such.rule"], capture_output=True, text=True)
    assert missing.returncode == 2


def test_calendar_cli() -> None:
    between = subprocess.run(
        [CASECHECK, "calendar", "between", "2020-01-23", "2020-02-04"], capture_output=True, text=True
    )
    assert between.returncode == 0 and between.stdout.startswith("2 working days")
    saturday = subprocess.run(
        [CASECHECK, "calendar", "is-workday", "2026-02-14"], capture_output=True, text=True
    )
    assert "working day" in saturday.stdout
    beyond = subprocess.run([CASECHECK, "calendar", "add", "2027-01-04", "3"], capture_output=True, text=True)
    assert beyond.returncode == 2 and "2027" in beyond.stderr
    bad = subprocess.run([CASECHECK, "calendar", "is-workday", "2026-02-30"], capture_output=True, text=True)
    assert bad.returncode == 2


def test_schema_cli() -> None:
    import json

    schema = subprocess.run([CASECHECK, "schema", "water_connection"], capture_output=True, text=True)
    assert schema.returncode == 0
    assert "external_works_m" in json.loads(schema.stdout)["properties"]
