"""Data its users maintain (issue 14): a data directory laid over the shipped data, `calendar validate`,
several packs in force together, `--pack`/`--overlay` on check, scan and serve, and per-case overlays.

The 2027 file here is a made-up test fixture (its 元旦 and 春节 dates are not the State Council's): what is
tested is that a year file dropped into a data directory is used, not what 2027 holds.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine import Engine
from engine.api import Settings, create_app
from engine.calendar import load_calendar
from engine.cases import validate_case
from engine.cli import app
from engine.errors import CalendarRangeError, RulePackError
from engine.packs import load_packs
from engine.resources import ENV_DATA
from engine.scan import Scanner
from tests.builders import water

ROOT = Path(__file__).parent.parent
runner = CliRunner()

YEAR_2027 = """\
year = 2027
notice = "国务院办公厅关于2027年部分节假日安排的通知"
number = "test fixture"

[[holiday]]
name = "元旦"
days_off = [2027-01-01, 2027-01-02, 2027-01-03]

[[holiday]]
name = "春节"
days_off = [2027-02-06, 2027-02-07, 2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11, 2027-02-12]
make_up_workdays = [2027-02-20]
"""
TYPHOON = 'description = "象山县台风停工"\nclosures = [2026-03-03]\n'


@pytest.fixture(autouse=True)
def no_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without a data directory, and what a test (or `--data-dir`) sets is undone."""
    monkeypatch.setenv(ENV_DATA, "")


def cli(*args: str, stdin: bytes | None = None) -> Any:
    return runner.invoke(app, list(args), input=stdin, env={"COLUMNS": "200"})


def data_dir(root: Path, year_2027: bool = False, overlay: bool = False) -> Path:
    (root / "calendars" / "cn").mkdir(parents=True)
    (root / "calendars" / "overlays").mkdir(parents=True)
    if year_2027:
        (root / "calendars" / "cn" / "2027.toml").write_text(YEAR_2027, encoding="utf-8")
    if overlay:
        (root / "calendars" / "overlays" / "xiangshan-typhoon.toml").write_text(TYPHOON, encoding="utf-8")
    return root


def copy_pack(folder: Path, name: str, **manifest: Any) -> Path:
    """The shipped pack under another name, with manifest entries changed."""
    shutil.copytree(ROOT / "rules" / "ningbo-2020", folder)
    body = yaml.safe_load((folder / "pack.yaml").read_text(encoding="utf-8"))
    (folder / "pack.yaml").write_text(
        yaml.safe_dump({**body, "name": name, **manifest}, allow_unicode=True), encoding="utf-8"
    )
    return folder


def one_rule_pack(folder: Path, rule_id: str) -> Path:
    """A pack with one advisory water rule (no document at all), the shipped manifest otherwise."""
    folder.mkdir(parents=True)
    body = yaml.safe_load((ROOT / "rules" / "ningbo-2020" / "pack.yaml").read_text(encoding="utf-8"))
    body["name"] = folder.name
    (folder / "pack.yaml").write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    rule = {
        "id": rule_id,
        "title": {"zh": "材料", "en": "Documents"},
        "source": {"document": "浙江省 (test)", "clause": "申请材料不超过1份"},
        "kind": "water_connection",
        "measure": {"type": "field", "field": "materials"},
        "unit": "documents",
        "require": {"op": "le", "limit": 0},
        "severity": "advisory",
        "effective_from": "2020-01-01",
    }
    (folder / "water.yaml").write_text(
        yaml.safe_dump({"area": "water", "rules": [rule]}, allow_unicode=True), encoding="utf-8"
    )
    return folder


# -- the data directory ------------------------------------------------------------------------------


def test_a_year_file_in_the_data_directory_adds_the_year_and_changes_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = load_calendar()
    with pytest.raises(CalendarRangeError, match=r"calendars/cn/2027\.toml in a data directory"):
        shipped.is_working_day("2027-02-20")
    monkeypatch.setenv(ENV_DATA, str(data_dir(tmp_path, year_2027=True)))
    local = load_calendar()
    assert local.covered == (2004, 2027)
    assert local.version.startswith("cn@2004-2027:") and local.version != shipped.version
    assert local.is_working_day("2027-02-20")  # a Saturday, a make-up working day of the fixture
    assert not local.is_working_day("2027-02-08")  # a Monday off
    # 2026-12-31 (Thu) → 2027-01-04 (Mon): Friday 1 January is off, then the weekend.
    assert local.add_working_days("2026-12-31", 1).isoformat() == "2027-01-04"
    # The message for the year after names the file in this data directory.
    with pytest.raises(CalendarRangeError, match=re.escape(str(tmp_path / "calendars/cn/2028.toml"))):
        local.is_working_day("2028-01-03")


def test_every_output_records_the_calendar_of_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DATA, str(data_dir(tmp_path, year_2027=True)))
    case = water(applied_at="2027-01-11T09:00:00+08:00", connected_at="2027-01-12T10:00:00+08:00")
    verdict = Engine.load().check(case)
    assert verdict.calendar == load_calendar().version and verdict.calendar.startswith("cn@2004-2027:")
    run = cli("check", "--as-of", "2027-03-01", "-", stdin=orjson.dumps(case))
    assert run.exit_code == 0, run.output
    assert orjson.loads(run.stdout)["calendar"].startswith("cn@2004-2027:")


def test_a_year_file_there_replaces_the_shipped_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = data_dir(tmp_path)
    shipped = (ROOT / "calendars" / "cn" / "2026.toml").read_text(encoding="utf-8")
    # The amended notice moves 2026-01-04 (Sunday) from make-up working day to a day off.
    amended = shipped.replace("make_up_workdays = [2026-01-04]\n", "", 1)
    assert amended != shipped
    (root / "calendars" / "cn" / "2026.toml").write_text(amended, encoding="utf-8")
    assert load_calendar().is_working_day("2026-01-04")
    monkeypatch.setenv(ENV_DATA, str(root))
    assert not load_calendar().is_working_day("2026-01-04")
    run = cli("calendar", "info")
    assert run.exit_code == 0
    assert re.search(r"2026: data directory .*2026\.toml", run.stdout)
    assert re.search(r"2025: shipped ", run.stdout)


def test_data_dir_option_on_the_command(tmp_path: Path) -> None:
    root = data_dir(tmp_path, year_2027=True)
    assert cli("calendar", "is-workday", "2027-02-20").exit_code == 2
    run = cli("calendar", "is-workday", "2027-02-20", "--data-dir", str(root))
    assert run.exit_code == 0 and "working day" in run.stdout
    missing = cli("calendar", "is-workday", "2026-03-02", "--data-dir", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2
    assert "--data-dir" in missing.output and "does not exist" in missing.output


# -- calendar validate --------------------------------------------------------------------------------


def test_validate_a_new_year_file_says_what_it_adds(tmp_path: Path) -> None:
    path = tmp_path / "2027.toml"
    path.write_text(YEAR_2027, encoding="utf-8")
    run = cli("calendar", "validate", str(path))
    assert run.exit_code == 0, run.output
    assert "ok: 2027: 国务院办公厅关于2027年部分节假日安排的通知 test fixture" in run.stdout
    # 365 days, 104 weekend days; off: 1 Jan (Fri) and 8–12 Feb (Mon–Fri); worked: Sat 20 Feb.
    assert "adds 2027: 256 working days, 10 announced days off, 1 make-up working days" in run.stdout
    assert "0 day(s) change" in run.stdout


def test_validate_an_overlay_lists_the_days_that_flip(tmp_path: Path) -> None:
    path = tmp_path / "typhoon.toml"
    path.write_text(TYPHOON + "extra_workdays = [2026-03-07]\n", encoding="utf-8")
    run = cli("calendar", "validate", str(path))
    assert run.exit_code == 0, run.output
    assert "2 day(s) change" in run.stdout
    assert "2026-03-03 Tue: working day → day off" in run.stdout
    assert "2026-03-07 Sat: day off → working day" in run.stdout


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        (
            "2027.toml",
            YEAR_2027.replace("make_up_workdays = [2027-02-20]", "make_up_workdays = [2027-02-20]")
            + '\n[[holiday]]\nname = "劳动节"\ndays_off = [2027-02-20]\n',
            "both off and make-up working days",
        ),
        (
            "2027.toml",
            YEAR_2027.replace("[2027-02-20]", "[2028-02-19]"),
            "2028-02-19 is outside the notice year 2027",
        ),
        ("2027.toml", YEAR_2027.replace('notice = "国务院', "# "), "notice: Field required"),
        ("2028.toml", YEAR_2027.replace("2027", "2028"), "would leave a gap"),
        ("x.toml", YEAR_2027, "must be named 2027.toml"),
        ("o.toml", 'description = "x"\nclosures = [2030-05-06]\n', "2030 is not covered"),
    ],
)
def test_validate_refuses_a_broken_file_in_one_line(
    tmp_path: Path, name: str, body: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    run = cli("calendar", "validate", str(path))
    assert run.exit_code == 2
    assert message in run.output
    assert "Traceback" not in run.output and len(run.output.strip().splitlines()) == 1


# -- packs ---------------------------------------------------------------------------------------------


def test_a_pack_in_the_data_directory_is_found_by_name_and_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = data_dir(tmp_path)
    one_rule_pack(root / "rules" / "zhejiang-test", "zj.water.docs")
    monkeypatch.setenv(ENV_DATA, str(root))
    run = cli("rules", "packs")
    assert run.exit_code == 0, run.output
    assert re.search(
        r"zhejiang-test\s+│\s+zhejiang-test@[0-9a-f]{12}\s+│\s+1\s+│\s+data directory", run.stdout
    )
    assert re.search(r"ningbo-2020\s+│\s+ningbo-2020@[0-9a-f]{12}\s+│\s+52\s+│\s+shipped", run.stdout)
    assert load_packs(["zhejiang-test"]).by_id.keys() == {"zj.water.docs"}


def test_several_packs_in_force_together(tmp_path: Path) -> None:
    extra = one_rule_pack(tmp_path / "zhejiang-test", "zj.water.docs")
    packs = ["ningbo-2020", str(extra)]
    for executor in ("durable", "columnar"):
        verdict = Engine.load(packs, executor=executor).check(water(materials=1), as_of="2026-06-01")  # type: ignore[arg-type]
        statuses = {r.rule: r.status for r in verdict.results}
        assert statuses["zj.water.docs"] == "fail" and statuses["water.no_external.2wd"] == "pass"
        assert re.fullmatch(r"ningbo-2020@[0-9a-f]{12}\+zhejiang-test@[0-9a-f]{12}", verdict.ruleset)
        assert verdict.verdict == "warn"  # ningbo-2020's rules pass; the extra one is advisory
    run = cli(
        "check", "--pack", "ningbo-2020", "--pack", str(extra), "-", stdin=orjson.dumps(water(materials=1))
    )
    assert run.exit_code == 0, run.output
    assert "+zhejiang-test@" in orjson.loads(run.stdout)["ruleset"]


def test_a_rule_id_in_two_packs_is_an_error_naming_both_files(tmp_path: Path) -> None:
    clash = one_rule_pack(tmp_path / "clash", "water.no_external.2wd")
    with pytest.raises(
        RulePackError,
        match=r"water\.no_external\.2wd is defined twice: in .*water\.yaml and in .*clash/water\.yaml",
    ):
        load_packs(["ningbo-2020", str(clash)])
    run = cli("check", "--pack", "ningbo-2020", "--pack", str(clash), "-", stdin=orjson.dumps(water()))
    assert run.exit_code == 2 and "defined twice" in run.output and "Traceback" not in run.output


def test_packs_that_anchor_a_kind_differently_are_refused(tmp_path: Path) -> None:
    other = copy_pack(
        tmp_path / "other",
        "other",
        anchors={
            **yaml.safe_load((ROOT / "rules/ningbo-2020/pack.yaml").read_text(encoding="utf-8"))["anchors"],
            "water_connection": "connected_at",
        },
    )
    for path in other.glob("*.yaml"):
        if path.name != "pack.yaml":
            path.unlink()
    with pytest.raises(RulePackError, match="anchor water_connection on different fields"):
        load_packs(["ningbo-2020", str(other)])


def test_unknown_pack_names_where_it_looked(tmp_path: Path) -> None:
    run = cli("check", "--pack", "no-such-pack", "-", stdin=orjson.dumps(water()))
    assert run.exit_code == 2
    assert "rule pack 'no-such-pack' not found" in run.output and "casecheck rules packs" in run.output


# -- overlays: per run and per case ----------------------------------------------------------------------


def test_overlay_option_on_check_moves_the_count(tmp_path: Path) -> None:
    overlay = tmp_path / "typhoon.toml"
    overlay.write_text(TYPHOON, encoding="utf-8")
    case = orjson.dumps(water(connected_at="2026-03-04T10:00:00+08:00"))  # applied Mon 2 March
    plain = orjson.loads(cli("check", "-", stdin=case).stdout)
    local = orjson.loads(cli("check", "--overlay", str(overlay), "-", stdin=case).stdout)
    value = {
        v["case_id"]: r["value"]
        for v in (plain,)
        for r in v["results"]
        if r["rule"] == "water.no_external.2wd"
    }
    assert value == {"W-1": 2}
    assert next(r["value"] for r in local["results"] if r["rule"] == "water.no_external.2wd") == 1
    assert "+typhoon:" in local["calendar"]
    bad = cli("check", "--overlay", "no-such-overlay", "-", stdin=case)
    assert bad.exit_code == 2 and "unknown calendar overlay 'no-such-overlay'" in bad.output


def district_setup(tmp_path: Path) -> Path:
    """A data directory whose ningbo-2020 pack maps 象山县 cases to the typhoon overlay."""
    root = data_dir(tmp_path / "data", overlay=True)
    copy_pack(
        root / "rules" / "ningbo-2020",
        "ningbo-2020",
        case_overlays={"field": "district", "overlays": {"象山县": "xiangshan-typhoon"}},
    )
    return root


def two_districts() -> list[dict[str, Any]]:
    late = {"connected_at": "2026-03-05T10:00:00+08:00"}  # 3 working days nationally, 2 with the closure
    return [
        water(case_id="XS-1", district="象山县", **late),
        water(case_id="HS-1", district="海曙区", **late),
    ]


@pytest.mark.parametrize("executor", ["durable", "columnar"])
def test_a_case_overlay_moves_only_that_districts_deadlines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.setenv(ENV_DATA, str(district_setup(tmp_path)))
    engine = Engine.load(executor=executor)  # type: ignore[arg-type]
    verdicts = engine.check_many([validate_case(c) for c in two_districts()], as_of="2026-06-01", lang="en")
    rule = {
        v["case_id"]: next(r for r in v["results"] if r["rule"] == "water.no_external.2wd") for v in verdicts
    }
    assert (rule["XS-1"]["status"], rule["XS-1"]["value"]) == ("pass", 2)
    assert (rule["HS-1"]["status"], rule["HS-1"]["value"]) == ("fail", 3)
    calendars = {v["case_id"]: v["calendar"] for v in verdicts}
    assert "+xiangshan-typhoon:" in calendars["XS-1"] and "+" not in calendars["HS-1"]


def test_a_case_overlay_in_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATA, str(district_setup(tmp_path)))
    source = tmp_path / "cases.ndjson"
    source.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in two_districts()))
    summary = Scanner(Engine.load(executor="columnar"), tmp_path / "out", "2026-06-01").scan([source])
    assert summary["verdict_counts"]["fail"] == 1 and summary["verdict_counts"]["pass"] == 1
    assert summary["rules"]["water.no_external.2wd"] == {"pass": 1, "fail": 1}


def test_a_case_overlay_field_that_no_kind_has_is_refused(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path / "p", "p", case_overlays={"field": "county", "overlays": {"象山县": "x"}})
    with pytest.raises(RulePackError, match=r"case_overlays\.field: 'county' is not a field of"):
        load_packs([str(pack)])


# -- the service ----------------------------------------------------------------------------------------


def test_healthz_and_verdicts_name_the_packs_calendar_and_overlay(tmp_path: Path) -> None:
    overlay = tmp_path / "typhoon.toml"
    overlay.write_text(TYPHOON, encoding="utf-8")
    extra = one_rule_pack(tmp_path / "zhejiang-test", "zj.water.docs")
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'v.db'}", packs=("ningbo-2020", str(extra)), overlay=str(overlay)
    )
    with TestClient(create_app(settings)) as client:
        health = client.get("/healthz").json()
        assert [name.split("@")[0] for name in health["packs"]] == ["ningbo-2020", "zhejiang-test"]
        assert health["overlay"] == str(overlay) and "+typhoon:" in health["calendar"]
        verdict = client.post("/v1/check", json=water(materials=2)).json()
        assert verdict["ruleset"] == health["ruleset"] == "+".join(health["packs"])
        assert verdict["calendar"] == health["calendar"]
        assert any(r["rule"] == "zj.water.docs" for r in verdict["results"])


@pytest.mark.parametrize("executor", ["durable", "columnar"])
def test_a_deadline_in_january_2027_needs_the_2027_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    case = water(applied_at="2026-12-31T09:00:00+08:00", connected_at=None)  # a Thursday, still open
    before = Engine.load(executor=executor).check(case, as_of="2026-12-31", lang="en")  # type: ignore[arg-type]
    result = next(r for r in before.results if r.rule == "water.no_external.2wd")
    assert result.status == "pending" and result.deadline is None
    assert "the deadline lies beyond the working-day calendar" in result.message
    monkeypatch.setenv(ENV_DATA, str(data_dir(tmp_path, year_2027=True)))
    after = Engine.load(executor=executor).check(case, as_of="2026-12-31", lang="en")  # type: ignore[arg-type]
    result = next(r for r in after.results if r.rule == "water.no_external.2wd")
    # 1 January is off and 2–3 January a weekend in the fixture: Monday 4th and Tuesday 5th are the two.
    assert result.status == "pending" and str(result.deadline) == "2027-01-05"


# -- what a change does: scan --compare-pack ---------------------------------------------------------


def test_scan_compare_pack_lists_the_verdicts_and_rules_that_change(tmp_path: Path) -> None:
    proposed = copy_pack(tmp_path / "draft", "ningbo-draft")
    water_rules = yaml.safe_load((proposed / "water.yaml").read_text(encoding="utf-8"))
    for rule in water_rules["rules"]:
        if rule["id"] == "water.no_external.2wd":
            rule["require"]["limit"] = 1  # a proposed 1-working-day standard
    water_rules["rules"] = [r for r in water_rules["rules"] if r["id"] != "water.steps"]  # and one dropped
    (proposed / "water.yaml").write_text(yaml.safe_dump(water_rules, allow_unicode=True), encoding="utf-8")
    source = tmp_path / "cases.ndjson"
    # Applied Monday 2 March 2026: connected after 1, 2 and 3 working days.
    cases = [
        water(case_id=f"W-{days}", connected_at=f"2026-03-0{2 + days}T10:00:00+08:00") for days in (1, 2, 3)
    ]
    source.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in cases))
    out = tmp_path / "out"
    run = cli(
        "scan", str(source), "--out", str(out), "--as-of", "2026-06-01", "--compare-pack", str(proposed)
    )
    assert run.exit_code == 0, run.output
    impact = orjson.loads((out / "summary.json").read_bytes())["impact"]
    assert impact["compared_ruleset"].startswith("ningbo-draft@") and impact["cases"] == 3
    assert impact["verdicts_changed"] == 1
    assert impact["verdict_changes"] == [{"from": "pass", "to": "fail", "n": 1}]
    assert impact["cases_changed"] == [
        {"case_id": "W-2", "kind": "water_connection", "from": "pass", "to": "fail"}
    ]
    assert impact["rules"]["water.no_external.2wd"] == {
        "changed": 1,
        "changes": [{"from": "pass", "to": "fail", "n": 1}],
        "cases": ["W-2"],
    }
    assert impact["rules"]["water.steps"]["changes"] == [{"from": "pass", "to": "absent", "n": 3}]
    assert set(impact["rules"]) == {"water.no_external.2wd", "water.steps"}
    assert "under ningbo-draft@" in run.stdout and "1 of 3 verdicts change" in run.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="impact"' in page and "W-2" in page
