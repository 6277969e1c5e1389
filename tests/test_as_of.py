"""The day open cases are judged on: past the calendar, before a case's start, before the calendar.

Expected counts are worked by hand from the 2026 State Council notice (no holiday or make-up day falls in
November or December 2026): the working days after 2026-12-24 up to 2026-12-31 are 12-25, 12-28, 12-29,
12-30 and 12-31; after 2026-11-02 up to 2026-12-31 there are 20 in November and 23 in December.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import polars as pl
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Engine
from engine.api import Settings, create_app
from engine.cases import validate_case
from engine.core import CasesRefused
from engine.errors import CalendarRangeError
from engine.reading import input_files
from engine.scan import Scanner
from tests.builders import construction, gas, loan, result, water

CASECHECK = Path(sys.executable).parent / "casecheck"
PAST = "2027-01-05"  # the shipped calendar ends on 2026-12-31

# Open since 2026-12-24: 5 working days by 12-31, over the 2-working-day limit whatever follows.
LATE_GAS = gas(case_id="G-late", applied_at="2026-12-24T09:00:00+08:00", connected_at=None)
# Open since 2026-12-30: 1 working day by 12-31, within the limit; what follows is not on the calendar.
FRESH_WATER = water(case_id="W-fresh", applied_at="2026-12-30T09:00:00+08:00", connected_at=None)
CLOSED_WATER = water(case_id="W-closed")


COLUMNAR = Engine.load(executor="columnar")


@pytest.fixture(scope="module", params=["durable", "columnar"])
def engine(request: pytest.FixtureRequest) -> Engine:
    return Engine.load(executor=request.param)


def test_a_fail_that_more_days_cannot_undo_stands_and_says_where_counting_stopped(engine: Engine) -> None:
    at_end = result(engine.check(LATE_GAS, as_of="2026-12-31", lang="en"), "gas.no_external.2wd")
    past = result(engine.check(LATE_GAS, as_of=PAST, lang="en"), "gas.no_external.2wd")
    assert (at_end.status, at_end.value, at_end.note) == ("fail", 5, None)
    assert (past.status, past.value, past.note) == ("fail", 5, "counted_to")
    assert past.deadline == date(2026, 12, 28)
    assert "counted up to 2026-12-31" in past.message and "at least" in past.message
    # Years past the calendar: no more capped count passed off as exact (was 62 working days).
    long_past = result(
        engine.check(water(applied_at="2026-11-02T09:00:00+08:00", connected_at=None), as_of="2030-01-01"),
        "water.no_external.2wd",
    )
    assert (long_past.status, long_past.value, long_past.note) == ("fail", 43, "counted_to")


def test_a_case_the_calendar_cannot_judge_is_refused_and_the_others_are_judged(engine: Engine) -> None:
    with pytest.raises(CalendarRangeError, match="2027 is not covered"):
        engine.check(FRESH_WATER, as_of=PAST)
    assert result(engine.check(FRESH_WATER, as_of="2026-12-31"), "water.no_external.2wd").value == 1
    with pytest.raises(CasesRefused) as refused:
        engine.check_many(
            [validate_case(CLOSED_WATER), validate_case(FRESH_WATER), validate_case(LATE_GAS)], PAST
        )
    assert list(refused.value.refused) == [1]
    assert "still open" in refused.value.refused[1]
    assert [v["case_id"] for v in refused.value.verdicts] == ["W-closed", "G-late"]
    assert [v["verdict"] for v in refused.value.verdicts] == ["pass", "fail"]


def test_calendar_days_need_no_calendar_to_count_past_it(engine: Engine) -> None:
    # 2026-01-05 → 2027-03-01: 365 days to 2027-01-05, then 26 + 28 + 1.
    counted = result(
        engine.check(construction(completion_accepted_at=None), as_of="2027-03-01"), "construction.80_days"
    )
    assert (counted.status, counted.value, counted.note) == ("fail", 420, None)


@pytest.mark.parametrize(
    ("case", "rule", "limit", "deadline"),
    [
        # Water applied Monday 2026-03-02: the 2nd working day after is Wednesday 03-04.
        (water(connected_at=None), "water.no_external.2wd", 2, date(2026, 3, 4)),
        # Construction coded 2026-01-05: 80 calendar days after is 2026-03-26.
        (construction(completion_accepted_at=None), "construction.80_days", 80, date(2026, 3, 26)),
    ],
)
def test_a_case_judged_before_its_start_has_not_started(
    engine: Engine, case: dict, rule: str, limit: int, deadline: date
) -> None:
    r = result(engine.check(case, as_of="2025-12-01", lang="en"), rule)
    assert (r.status, r.value, r.remaining, r.note) == ("pending", 0, limit, "not_started")
    assert r.deadline == deadline
    assert "not yet started as of 2025-12-01" in r.message


@settings(max_examples=60, deadline=None)
@given(st.dates(date(2004, 1, 1), date(2030, 12, 31)))
def test_elapsed_days_are_never_negative(as_of: date) -> None:
    engine = COLUMNAR
    cases = [
        validate_case(water(connected_at=None)),
        validate_case(construction(completion_accepted_at=None)),
    ]
    try:
        verdicts = engine.check_many(cases, as_of)
    except CasesRefused as exc:
        verdicts = exc.verdicts
    for verdict in verdicts:
        for r in verdict["results"]:
            assert r.get("value") is None or r["value"] >= 0, (as_of, r)


def test_an_as_of_before_the_calendar_is_refused(engine: Engine) -> None:
    with pytest.raises(CalendarRangeError, match="1999 is not covered"):
        engine.check(CLOSED_WATER, as_of="1999-01-01")


def test_kinds_without_per_case_rules_are_not_checked(engine: Engine) -> None:
    verdict = engine.check(loan())
    assert (verdict.verdict, verdict.results) == ("not_checked", [])


# --- The same through the command line, the scan and HTTP -------------------------------------------------


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(CASECHECK), *args], input=stdin, capture_output=True, timeout=120)


def ndjson(*records: dict) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def test_cli_check_reports_the_refused_case_and_prints_the_others() -> None:
    done = run("check", "-", "--as-of", PAST, stdin=ndjson(CLOSED_WATER, FRESH_WATER, loan()))
    verdicts = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [(v["case_id"], v["verdict"]) for v in verdicts] == [("W-closed", "pass"), ("L-1", "not_checked")]
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("line 2 (W-fresh): as_of: ")


def test_cli_as_of_before_the_calendar_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for command in (["check", "-"], ["scan", str(tmp_path / "in.ndjson"), "--out", str(tmp_path / "out")]):
        (tmp_path / "in.ndjson").write_bytes(ndjson(CLOSED_WATER))
        done = run(*command, "--as-of", "1999-01-01", stdin=ndjson(CLOSED_WATER))
        assert done.returncode == 2, done.stderr
        assert done.stderr.decode().strip().count("\n") == 0
        assert "1999 is not covered" in done.stderr.decode() and b"Traceback" not in done.stderr


def test_scan_keeps_the_refused_case_as_an_error(tmp_path: Path) -> None:
    source = tmp_path / "cases.ndjson"
    source.write_bytes(ndjson(CLOSED_WATER, FRESH_WATER, LATE_GAS, loan()))
    summary = Scanner(Engine.load(), tmp_path / "out", PAST).scan(input_files([source]))
    assert (summary["input"], summary["verdicts"], summary["errors"]) == (4, 3, 1)
    assert summary["verdict_counts"]["not_checked"] == 1
    (error,) = [orjson.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_bytes().splitlines()]
    assert (error["line"], error["case_id"], error["path"]) == (2, "W-fresh", "as_of")
    verdicts = pl.read_parquet(tmp_path / "out" / "verdicts.parquet").sort("line")
    assert verdicts["verdict"].to_list() == ["pass", "fail", "not_checked"]


def test_scan_results_of_a_case_not_started_are_zero(tmp_path: Path) -> None:
    source = tmp_path / "cases.ndjson"
    source.write_bytes(ndjson(water(connected_at=None)))
    Scanner(Engine.load(), tmp_path / "out", "2026-02-20").scan(input_files([source]))
    results = pl.read_parquet(tmp_path / "out" / "results.parquet")
    row = results.filter(pl.col("rule") == "water.no_external.2wd").row(0, named=True)
    assert (row["status"], row["value"]) == ("pending", 0.0)


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    work = tmp_path_factory.mktemp("as_of_api")
    with TestClient(create_app(Settings(store=f"sqlite:///{work}/verdicts.db"))) as client:
        yield client


def test_http_single_check_past_the_calendar_is_422_on_as_of(http: TestClient) -> None:
    answer = http.post("/v1/check", params={"as_of": PAST}, content=orjson.dumps(FRESH_WATER))
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["path"] == "query.as_of"
    kept = http.post("/v1/check", params={"as_of": PAST}, content=orjson.dumps(LATE_GAS))
    assert kept.status_code == 200
    assert result_of(kept.json(), "gas.no_external.2wd")["note"] == "counted_to"
    assert http.post("/v1/check", content=orjson.dumps(loan())).json()["verdict"] == "not_checked"


def result_of(verdict: dict, rule: str) -> dict:
    return next(r for r in verdict["results"] if r["rule"] == rule)


def test_http_batch_refuses_only_the_case_it_cannot_judge(http: TestClient) -> None:
    body = orjson.dumps([CLOSED_WATER, FRESH_WATER, LATE_GAS])
    answer = http.post("/v1/check/batch", params={"as_of": PAST}, content=body)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["ok"] for r in results] == [True, False, True]
    assert results[1]["case_id"] == "W-fresh" and results[1]["errors"][0]["path"] == "query.as_of"
    assert answer.json()["checked"] == 2
