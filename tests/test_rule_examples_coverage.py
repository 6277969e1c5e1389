"""Every per-case rule of the shipped pack has at least one example that `casecheck rules test` runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.packs import load_pack

CASECHECK = str(Path(sys.executable).parent / "casecheck")


def _rules_with_examples() -> set[str]:
    """The rule column of the `casecheck rules test` table (wide enough that no id is wrapped or cut)."""
    run = subprocess.run(
        [CASECHECK, "rules", "test"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"}
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line.split("│") for line in run.stdout.splitlines() if line.startswith("│")]
    return {cells[1].strip() for cells in rows if len(cells) > 2}


def test_every_per_case_rule_of_the_shipped_pack_has_an_example() -> None:
    pack = load_pack()
    per_case = {rule.id for rule in pack.rules}  # aggregate-only rules are in pack.aggregates
    assert per_case and not per_case & {rule.id for rule in pack.aggregates}
    covered = _rules_with_examples()
    assert sorted(per_case - covered) == []
    # Examples name per-case rules only (the loader refuses others), so nothing else shows up.
    assert covered <= per_case
