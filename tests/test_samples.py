"""The hand-made sample cases in cases/samples/ against their hand-worked expectations.

Every ``cases/expected/<kind>.json`` was worked out by hand from SPEC.md and RULES.md (not copied from the
engine); each case carries a ``why`` saying what it exercises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from engine import Engine
from engine.domain import KINDS
from engine.packs import load_pack
from tests.builders import PER_CASE_RULES

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "cases" / "samples"
# Beside the samples, not among them: a scan of cases/samples/ reads every .json file there as cases.
EXPECTED_FILES = sorted((ROOT / "cases" / "expected").glob("*.json"))
STATUSES = {"pass", "fail", "pending", "exempt", "not_applicable"}
VERDICTS = {"pass", "warn", "pending", "fail", "not_checked"}


@cache
def engine() -> Engine:
    return Engine.load()


def kind_of(expected_file: Path) -> str:
    return expected_file.stem


RULES_MD = PER_CASE_RULES


def per_case_rules(kind: str) -> set[str]:
    return RULES_MD[kind]


def load_cases(kind: str) -> dict[str, dict]:
    lines = (SAMPLES / f"{kind}.ndjson").read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    by_id = {case["case_id"]: case for case in cases}
    assert len(by_id) == len(cases), f"{kind}: duplicate case_id"
    return by_id


def load_expected(expected_file: Path) -> dict:
    return json.loads(expected_file.read_text(encoding="utf-8"))


def sample_params() -> list:
    params = []
    for expected_file in EXPECTED_FILES:
        expected = load_expected(expected_file)
        for case_id in expected["cases"]:
            params.append(pytest.param(expected_file, case_id, id=f"{kind_of(expected_file)}:{case_id}"))
    return params


def test_every_kind_has_samples() -> None:
    assert {kind_of(f) for f in EXPECTED_FILES} == set(KINDS)
    for kind in KINDS:
        assert (SAMPLES / f"{kind}.ndjson").is_file()


def test_pack_matches_rules_md() -> None:
    """The per-case rules the samples are written against are those the shipped pack holds."""
    pack = load_pack("ningbo-2020")
    assert {kind: {rule.id for rule in pack.by_kind[kind]} for kind in KINDS} == RULES_MD


@pytest.mark.parametrize("expected_file", EXPECTED_FILES, ids=kind_of)
def test_sample_file_is_consistent(expected_file: Path) -> None:
    """Cases and expectations pair up one to one, and every case lists every per-case rule of its kind."""
    kind = kind_of(expected_file)
    expected = load_expected(expected_file)
    cases = load_cases(kind)
    assert set(cases) == set(expected["cases"])
    rules = per_case_rules(kind)
    for case_id, exp in expected["cases"].items():
        assert cases[case_id]["kind"] == kind
        assert exp["verdict"] in VERDICTS
        assert exp.get("why"), f"{case_id}: missing why"
        assert set(exp["rules"]) == rules, f"{case_id}: rules listed differ from the kind's per-case rules"
        assert set(exp["rules"].values()) <= STATUSES
        assert set(exp.get("values", {})) <= rules


@pytest.mark.parametrize("expected_file", EXPECTED_FILES, ids=kind_of)
def test_samples_exercise_every_rule(expected_file: Path) -> None:
    """Each per-case rule of the kind is applicable (status other than not_applicable) in some sample."""
    expected = load_expected(expected_file)
    exercised = {
        rule
        for exp in expected["cases"].values()
        for rule, status in exp["rules"].items()
        if status != "not_applicable"
    }
    missing = per_case_rules(kind_of(expected_file)) - exercised
    assert not missing, f"rules never exercised: {sorted(missing)}"


@pytest.mark.parametrize(("expected_file", "case_id"), sample_params())
def test_sample_case(expected_file: Path, case_id: str) -> None:
    expected = load_expected(expected_file)
    exp = expected["cases"][case_id]
    case = load_cases(kind_of(expected_file))[case_id]
    verdict = engine().check(case, as_of=expected["as_of"])

    assert str(verdict.as_of) == expected["as_of"]
    results = {result.rule: result for result in verdict.results}
    got_statuses = {rule: result.status for rule, result in results.items()}
    assert got_statuses == exp["rules"], exp["why"]
    for rule, value in exp.get("values", {}).items():
        assert results[rule].value == value, f"{rule}: value {results[rule].value} != {value} ({exp['why']})"
    assert verdict.verdict == exp["verdict"], exp["why"]


def test_cli_mixed_with_errors() -> None:
    """Broken lines are reported with line number and JSON path; the rest are checked; exit is 0/1."""
    casecheck = Path(sys.executable).parent / "casecheck"
    proc = subprocess.run(
        [str(casecheck), "check", str(SAMPLES / "mixed_with_errors.ndjson"), "--as-of", "2026-11-24"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    verdicts = [json.loads(line) for line in lines]
    assert [v["case_id"] for v in verdicts] == ["W-2026-0901", "P-2026-0903", "R-2026-0905"]
    assert all(v["as_of"] == "2026-11-24" for v in verdicts)
    assert "line 2" in proc.stderr
    assert "line 4" in proc.stderr
    assert "external_works_m" in proc.stderr
    # P-2026-0903: low voltage, no external works, Mon 03-02 → Fri 03-06 = 4 WD > 3 → a mandatory failure.
    assert [v["verdict"] for v in verdicts] == ["pass", "fail", "pass"]
    expected_code = 1 if any(v["verdict"] == "fail" for v in verdicts) else 0
    assert proc.returncode == expected_code, proc.stderr
