"""Packs their users write: rules that end (effective_until, replaced_by), in a folder outside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import water

from engine import Engine
from engine.calendar import load_calendar
from engine.rules import RulePackError, load_pack_from

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
