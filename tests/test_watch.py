"""The watch: yellow and red cards on the right days, once each, across restarts (issue 17).

Every moment below is worked out by hand from the State Council's 2026 notice: 国庆节 is 10-01 to 10-07,
with 10-10 (a Saturday) a make-up working day. The clock is a ``ManualClock``: nothing sleeps.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient

from engine import Engine
from engine.api import Settings, create_app
from engine.domain import SHANGHAI
from engine.errors import RulePackError
from engine.packs import load_pack_from
from engine.resources import shipped_dir
from engine.watch import ManualClock, StaleUpdate, Watcher, WatchStore
from tests.builders import property_registration, water

RULE = "water.no_external.2wd"


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def shanghai(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(SHANGHAI)


def open_water(**overrides: Any) -> dict[str, Any]:
    """A water case applied on 2026-09-30 with no end: working days 10-08 and 10-09 are its two."""
    fields = {"applied_at": "2026-09-30T09:00:00+08:00", "connected_at": None, "district": "海曙区"}
    return water(**{**fields, **overrides})


@pytest.fixture(scope="module")
def engines() -> tuple[Engine, Engine]:
    return Engine.load(executor="durable"), Engine.load(executor="columnar")


@pytest.fixture
def make_watcher(engines: tuple[Engine, Engine], tmp_path: Path) -> Iterator[Any]:
    opened: list[Watcher] = []

    def make(now: datetime, pack_engines: tuple[Engine, Engine] | None = None) -> Watcher:
        durable, columnar = pack_engines or engines
        watcher = Watcher(durable, columnar, WatchStore(str(tmp_path / "watch.db")), None, ManualClock(now))
        opened.append(watcher)
        return watcher

    yield make
    for watcher in opened:
        watcher.watch.close()


def sweep_at(watcher: Watcher, moment: datetime) -> list[tuple[str, str]]:
    watcher.clock.current = moment  # type: ignore[attr-defined]
    return [(card["level"], card["rule"]) for card in watcher.sweep()]


def test_two_working_day_rule_around_national_day(make_watcher: Any) -> None:
    watcher = make_watcher(at(9, 30, 10))
    answer = watcher.update(open_water())
    assert (answer["state"], answer["level"], answer["cards"]) == ("open", "green", [])
    # 1 working day left from 10-08 (10-01…10-07 are days off): yellow then, not during the holiday.
    assert shanghai(answer["next_card_at"]) == at(10, 8)
    assert sweep_at(watcher, at(10, 7, 23, 59)) == []
    assert sweep_at(watcher, at(10, 8)) == [("yellow", RULE)]
    assert sweep_at(watcher, at(10, 9, 23, 59)) == []
    # The deadline is 10-09; 10-10 is a make-up working day, and red lands at its start.
    assert sweep_at(watcher, at(10, 10)) == [("red", RULE)]
    cards = watcher.watch.cards()
    assert [(c["level"], shanghai(c["due_at"])) for c in cards] == [
        ("yellow", at(10, 8)),
        ("red", at(10, 10)),
    ]
    assert cards[0]["id"] == f"yellow:{RULE}:W-1"
    assert sweep_at(watcher, at(10, 20)) == []  # at most once


def test_calendar_day_rule_counts_holidays(make_watcher: Any) -> None:
    """property.same_day (0 calendar days): 1 day left is reached at once, red on 10-01, a holiday."""
    watcher = make_watcher(at(9, 30, 10))
    case = property_registration(applied_at="2026-09-30T09:00:00+08:00", completed_at=None)
    answer = watcher.update(case)
    assert [(c["level"], c["rule"]) for c in answer["cards"]] == [("yellow", "property.same_day")]
    assert shanghai(answer["next_card_at"]) == at(10, 1)
    assert sweep_at(watcher, at(10, 1)) == [("red", "property.same_day")]


def test_excludable_pause_moves_the_cards_other_does_not(make_watcher: Any) -> None:
    watcher = make_watcher(at(10, 8, 9))
    paused = open_water(case_id="W-P", pauses=[{"reason": "user_internal_works", "start": "2026-10-08"}])
    other = open_water(case_id="W-O", pauses=[{"reason": "other", "start": "2026-10-08"}])
    watcher.update(paused)
    watcher.update(other)
    # On 10-10 the clock of W-P has stood still since 10-08; W-O's ran on.
    raised = [(card["case_id"], card["level"]) for card in watcher.sweep()]
    watcher.clock.current = at(10, 10)
    raised += [(card["case_id"], card["level"]) for card in watcher.sweep()]
    assert ("W-O", "red") in raised
    assert ("W-P", "red") not in raised
    assert [entry["case_id"] for entry in watcher.watch_list({})] == ["W-P"]


def test_closed_before_deadline_no_red_and_no_second_red(make_watcher: Any) -> None:
    watcher = make_watcher(at(9, 30, 10))
    watcher.update(open_water(case_id="W-C"))
    watcher.update(open_water(case_id="W-L"))
    watcher.clock.current = at(10, 9, 15)
    closed = watcher.update(
        water(case_id="W-C", applied_at="2026-09-30T09:00:00+08:00", connected_at="2026-10-09T14:00:00+08:00")
    )
    assert closed["state"] == "closed"
    # W-L was last seen on 09-30: both its cards fell due since.
    assert sweep_at(watcher, at(10, 12)) == [("yellow", RULE), ("red", RULE)]
    levels = [(c["case_id"], c["level"]) for c in watcher.watch.cards()]
    assert ("W-C", "red") not in levels
    assert levels.count(("W-L", "red")) == 1
    # The late case is connected afterwards: still failed, still one red.
    watcher.clock.current = at(10, 13, 9)
    again = watcher.update(
        water(case_id="W-L", applied_at="2026-09-30T09:00:00+08:00", connected_at="2026-10-13T08:00:00+08:00")
    )
    assert again["cards"] == []
    assert [(c["case_id"], c["level"]) for c in watcher.watch.cards()].count(("W-L", "red")) == 1


def test_restart_raises_cards_due_while_down_once(make_watcher: Any) -> None:
    first = make_watcher(at(9, 30, 10))
    first.update(open_water())
    first.watch.close()
    # Down from 09-30 to 10-12: both cards fell due meanwhile.
    second = make_watcher(at(10, 12, 9, 30))
    raised = second.sweep()
    assert [(c["level"], shanghai(c["due_at"]), shanghai(c["raised_at"])) for c in raised] == [
        ("yellow", at(10, 8), at(10, 12, 9, 30)),
        ("red", at(10, 10), at(10, 12, 9, 30)),
    ]
    assert second.sweep() == []
    third = make_watcher(at(10, 12, 10))
    assert third.sweep() == []
    assert len(third.watch.cards()) == 2


def test_stale_update_changes_nothing(make_watcher: Any) -> None:
    watcher = make_watcher(at(9, 30, 10))
    watcher.update(open_water(), updated_at=at(9, 30, 10))
    before = watcher.watch_list({})
    with pytest.raises(StaleUpdate):
        watcher.update(open_water(district="江北区"), updated_at=at(9, 30, 9))
    assert watcher.watch_list({}) == before


def _pack_with(tmp_path: Path, change: dict[str, Any]) -> Path:
    folder = tmp_path / "pack"
    shutil.copytree(shipped_dir("rules") / "ningbo-2020", folder)
    path = folder / "water.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for rule in data["rules"]:
        rule.update(change.get(rule["id"], {}))
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return folder


def test_rule_warn_at_overrides_the_pack(make_watcher: Any, tmp_path: Path) -> None:
    pack = load_pack_from(_pack_with(tmp_path, {RULE: {"warn_at": 2}}))
    calendar = Engine.load().calendar
    watcher = make_watcher(
        at(9, 30, 10), (Engine(pack, calendar, "durable"), Engine(pack, calendar, "columnar"))
    )
    # 2 working days left on the day of application: yellow at once.
    assert [c["level"] for c in watcher.update(open_water())["cards"]] == ["yellow"]


@pytest.mark.parametrize(
    ("rule", "warn_at", "message"),
    [("water.steps", 1, "warn_at is for time limits only"), (RULE, -1, "greater than or equal to 0")],
)
def test_warn_at_is_validated(tmp_path: Path, rule: str, warn_at: int, message: str) -> None:
    with pytest.raises(RulePackError, match=message) as caught:
        load_pack_from(_pack_with(tmp_path, {rule: {"warn_at": warn_at}}))
    assert rule in str(caught.value)


# ---------------------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def http(tmp_path: Path) -> Iterator[tuple[TestClient, Watcher]]:
    app = create_app(Settings(store=f"sqlite:///{tmp_path}/verdicts.db"))
    watcher: Watcher = app.state.watcher
    watcher.clock = ManualClock(at(9, 30, 10))
    yield TestClient(app), watcher
    watcher.watch.close()
    app.state.service.store.close()


def test_put_409_422_watch_and_alerts(http: tuple[TestClient, Watcher]) -> None:
    client, watcher = http
    case = {**open_water(), "updated_at": "2026-09-30T10:00:00+08:00"}
    put = client.put("/v1/cases/W-1", json=case)
    assert put.status_code == 200, put.text
    assert put.json()["state"] == "open"
    stale = client.put(
        "/v1/cases/W-1", json={**case, "updated_at": "2026-09-30T09:00:00+08:00", "district": "江北区"}
    )
    assert stale.status_code == 409
    assert client.get("/v1/watch").json()["cases"][0]["district"] == "海曙区"
    bad = client.put("/v1/cases/W-1", json={**case, "pauses": [{"reason": "lunch", "start": "2026-10-08"}]})
    assert bad.status_code == 422
    assert [e["path"] for e in bad.json()["errors"]] == ["pauses[0].reason"]
    assert client.put("/v1/cases/W-2", json=case).json()["errors"][0]["path"] == "case_id"
    # The verdict log has the update too.
    assert len(client.get("/v1/checks/W-1").json()["checks"]) == 1

    many = client.post(
        "/v1/cases",
        content=orjson.dumps(open_water(case_id="W-2", district="江北区")) + b"\n{not json\n",
        headers={"content-type": "application/x-ndjson"},
    ).json()["results"]
    assert [r["ok"] for r in many] == [True, False]
    assert many[1]["line"] == 2

    watch = client.get("/v1/watch", params={"district": "江北区"}).json()["cases"]
    assert [(c["case_id"], c["deadline"], c["left"], c["level"]) for c in watch] == [
        ("W-2", "2026-10-09", 2, "green")
    ]

    watcher.clock.current = at(10, 10)  # type: ignore[attr-defined]
    watcher.sweep()
    alerts = client.get("/v1/alerts").json()
    for case_id in ("W-1", "W-2"):  # in order per case
        assert [a["level"] for a in alerts["alerts"] if a["case_id"] == case_id] == ["yellow", "red"]
    reds = client.get("/v1/alerts", params={"level": "red", "district": "江北区"}).json()["alerts"]
    assert [(a["case_id"], a["level"]) for a in reds] == [("W-2", "red")]
    after = client.get("/v1/alerts", params={"after": alerts["cursor"]}).json()
    assert (after["alerts"], after["cursor"]) == ([], alerts["cursor"])


# -- `casecheck watch FILE --as-of DATE`: a nightly export, no service ------------------------------------


def watch_cli(records: list[dict[str, Any]], as_of: str) -> Any:
    from typer.testing import CliRunner

    from engine.cli import app

    body = b"".join(orjson.dumps(record) + b"\n" for record in records)
    return CliRunner().invoke(app, ["watch", "-", "--as-of", as_of], input=body)


def test_watch_command_lists_open_cases_and_the_cards_due_that_day() -> None:
    records = [
        open_water(case_id="W-A"),  # deadline 10-09: yellow due 10-08 (1 working day left), red 10-10
        open_water(case_id="W-B", applied_at="2026-10-08T09:00:00+08:00"),  # 10-09 and 10-10: its two
        water(case_id="W-DONE"),  # connected: nothing to watch
        {"case_id": "W-BAD", "kind": "water_connection", "applied_at": "soon"},
    ]
    before = watch_cli(records, "2026-10-07")
    assert before.exit_code == 0, before.output
    lines = [orjson.loads(line) for line in before.stdout.splitlines()]
    assert [(x["type"], x["case_id"], x["level"]) for x in lines] == [
        ("watch", "W-A", "green"),
        ("watch", "W-B", "green"),
    ]
    assert "W-BAD" in before.stderr and "applied_at" in before.stderr
    yellow = [orjson.loads(line) for line in watch_cli(records, "2026-10-08").stdout.splitlines()]
    cards = [(x["id"], x["deadline"]) for x in yellow if x["type"] == "card"]
    assert cards == [(f"yellow:{RULE}:W-A", "2026-10-09")]
    assert {x["case_id"]: x["left"] for x in yellow if x["type"] == "watch"} == {"W-A": 1, "W-B": 2}
    # 10-10 is a make-up working day: W-A's deadline passed at its start (red); it is W-B's deadline.
    late = watch_cli(records, "2026-10-10")
    assert late.exit_code == 1  # a red card is due
    due = [orjson.loads(line) for line in late.stdout.splitlines() if '"card"' in line]
    assert sorted(x["id"] for x in due) == [f"red:{RULE}:W-A", f"yellow:{RULE}:W-B"]
    assert next(x for x in due if x["level"] == "red")["due_at"] == "2026-10-09T16:00:00+00:00"


def test_watch_command_with_nothing_to_judge_exits_2() -> None:
    run = watch_cli([{"case_id": "X", "kind": "water_connection"}], "2026-10-08")
    assert run.exit_code == 2
    assert "customer_type" in run.stderr
