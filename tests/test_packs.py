"""Packs their users write: rules that end (effective_until, replaced_by), in a folder outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine import Engine
from engine.calendar import load_calendar
from engine.cases import validate_case
from engine.errors import RulePackError
from engine.packs import load_pack_from
from tests.builders import water

CASECHECK = str(Path(sys.executable).parent / "casecheck")
SOURCE = {"task": 29, "clause": "申请材料不超过1份"}


def _rule(rule_id: str, limit: int, **dates: str) -> dict:
    return {
        "id": rule_id,
        "title": {"zh": "材料", "en": "Documents"},
        "source": SOURCE,
        "kind": "water_connection",
        "measure": {"type": "field", "field": "materials"},
        "unit": "documents",
        "require": {"op": "le", "limit": limit},
        "severity": "mandatory",
        **dates,
    }


def write_pack(folder: Path, rules: list[dict]) -> Path:
    """A pack folder with the ningbo-2020 manifest (name changed) and the given rules in one file."""
    folder.mkdir(parents=True)
    manifest = yaml.safe_load((Path(__file__).parent.parent / "rules/ningbo-2020/pack.yaml").read_text())
    manifest["name"] = folder.name
    (folder / "pack.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True))
    (folder / "water.yaml").write_text(yaml.safe_dump({"area": "water", "rules": rules}, allow_unicode=True))
    return folder


ENDING = [
    _rule(
        "water.docs",
        2,
        effective_from="2020-07-01",
        effective_until="2025-12-31",
        replaced_by="water.docs_v2",
    ),
    _rule("water.docs_v2", 1, effective_from="2026-01-01"),
]


@pytest.mark.parametrize("engine", ["durable", "columnar"])
def test_a_rule_past_its_last_day_is_not_applicable_naming_the_date_and_its_successor(
    tmp_path: Path, engine: str
) -> None:
    checker = Engine(load_pack_from(write_pack(tmp_path / "ending", ENDING)), load_calendar(), engine)  # type: ignore[arg-type]
    after = {r.rule: r for r in checker.check(water(materials=2), as_of="2026-06-01", lang="en").results}
    assert after["water.docs"].status == "not_applicable"
    assert "2025-12-31" in after["water.docs"].reason and "water.docs_v2" in after["water.docs"].reason
    assert after["water.docs_v2"].status == "fail"
    # 2025-12-31 is the last day it applies: a case anchored that day is still judged by it.
    last_day = water(
        materials=2, applied_at="2025-12-31T09:00:00+08:00", connected_at="2026-01-05T10:00:00+08:00"
    )
    on = {r.rule: r.status for r in checker.check(last_day, as_of="2026-06-01").results}
    assert on == {"water.docs": "pass", "water.docs_v2": "not_applicable"}


def test_an_end_before_the_start_or_an_unknown_successor_is_refused(tmp_path: Path) -> None:
    backwards = _rule("water.docs", 2, effective_from="2021-01-01", effective_until="2020-12-31")
    with pytest.raises(RulePackError, match=r"water\.yaml: rule water\.docs: .*effective_until 2020-12-31"):
        load_pack_from(write_pack(tmp_path / "backwards", [backwards]))
    orphan = _rule(
        "water.docs", 2, effective_from="2020-07-01", effective_until="2025-12-31", replaced_by="water.gone"
    )
    with pytest.raises(
        RulePackError, match=r"water\.yaml: rule water\.docs: replaced_by: no rule 'water\.gone'"
    ):
        load_pack_from(write_pack(tmp_path / "orphan", [orphan]))


def test_rules_diff_names_each_added_removed_and_changed_rule_once(tmp_path: Path) -> None:
    old = write_pack(tmp_path / "old", ENDING)
    changed = dict(ENDING[1], require={"op": "le", "limit": 0}, severity="advisory")
    added = _rule("water.docs_v3", 0, effective_from="2027-01-01")
    new = write_pack(tmp_path / "new", [changed, added])
    run = subprocess.run(
        [CASECHECK, "rules", "diff", str(old), str(new)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()[1:]
    assert sorted(lines) == [
        "+ water.docs_v3: Documents",
        "- water.docs: Documents",
        "~ water.docs_v2: limit le 1 → le 0; severity mandatory → advisory",
    ]


def test_rules_diff_of_a_missing_pack_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run = subprocess.run(
        [CASECHECK, "rules", "diff", "ningbo-2020", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "nowhere" in run.stderr and "Traceback" not in run.stderr


def test_every_example_of_the_ningbo_pack_gets_its_status_from_both_executors() -> None:
    # `make test` runs the pack's own examples through this test.
    run = subprocess.run(
        [CASECHECK, "rules", "test"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"}
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "DIFFERS" not in run.stdout and "water.over150.approval_10wd" in run.stdout


def _examples(folder: Path, examples: list[dict]) -> None:
    (folder / "examples").mkdir()
    base = {"water_connection": water()}
    (folder / "examples/base.yaml").write_text(yaml.safe_dump({"base": base}))
    (folder / "examples/water.yaml").write_text(yaml.safe_dump({"examples": examples}))


def test_a_pack_in_a_temporary_folder_is_checked_and_tested_without_touching_the_checkout(
    tmp_path: Path,
) -> None:
    checkout = Path(__file__).parent.parent
    before = subprocess.run(
        ["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True
    ).stdout
    folder = write_pack(tmp_path / "local-2026", ENDING)
    ended = {"rule": "water.docs", "fields": {"materials": 2}, "as_of": "2026-06-01"}
    _examples(
        folder,
        [
            {**ended, "name": "after its last day", "expect": "not_applicable"},
            {**ended, "rule": "water.docs_v2", "name": "2 documents", "expect": "fail", "value": 2},
            {**ended, "name": "wrongly expected", "expect": "pass"},
        ],
    )
    run = subprocess.run(
        [CASECHECK, "rules", "test", "--pack", str(folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )
    # The wrong expectation is the one difference: exit 1, naming the case and both executors' answers.
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1
    assert (
        "wrongly expected" in run.stderr and "durable not_applicable, columnar not_applicable" in run.stderr
    )
    assert '"materials":2' in run.stderr
    after = subprocess.run(
        ["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True
    ).stdout
    assert after == before


def test_a_broken_example_names_file_example_and_field(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "broken", ENDING)
    _examples(
        folder,
        [
            {"rule": "water.nope", "name": "x", "as_of": "2026-06-01", "expect": "pass"},
            {"rule": "water.docs", "name": "y", "as_of": "2026-06-01", "expect": "passed"},
        ],
    )
    run = subprocess.run([CASECHECK, "rules", "test", "--pack", str(folder)], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "water.yaml: examples[1].expect:" in run.stderr


def test_a_thousand_rules_on_one_kind_pass_through_the_durable_executor_as_through_the_columnar(
    tmp_path: Path,
) -> None:
    # One ruleset of this size is refused (error 107) and its facts would carry over 1,000 keys.
    limits = [_rule(f"water.generated{i}", i % 4, effective_from="2020-07-01") for i in range(1000)]
    pack = load_pack_from(write_pack(tmp_path / "large", limits))
    cases = [water(case_id=f"W-{n}", materials=n) for n in range(5)]
    durable = Engine(pack, load_calendar(), "durable").check_many(
        [validate_case(c) for c in cases], "2026-11-24"
    )
    columnar = Engine(pack, load_calendar(), "columnar").check_many(
        [validate_case(c) for c in cases], "2026-11-24"
    )
    assert durable == columnar
    # materials 2 passes the limits 2 and 3 and fails 0 and 1: half of the thousand rules.
    assert sum(r["status"] == "pass" for r in durable[2]["results"]) == 500
