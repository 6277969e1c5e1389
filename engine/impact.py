"""The impact of a proposed pack: the same cases scanned under the pack in force and under the other one,
compared verdict by verdict and rule by rule (``casecheck scan … --compare-pack OTHER``).

Both scans are ordinary scans (the compared one writes to ``compared/`` inside the output folder), so the
comparison reads their Parquet outputs and nothing is judged twice in a different way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["ABSENT", "CASES_LISTED", "pack_impact"]

CASES_LISTED = 1000  # per rule and for the verdicts: the first cases that change, by case_id
ABSENT = "absent"  # the status of a rule that one of the packs does not have


def pack_impact(out: Path, compared: Path, ruleset: str, compared_ruleset: str) -> dict[str, Any]:
    """What changes from the scan in ``out`` to the scan in ``compared``: verdicts (from → to, with the
    cases) and, per rule, its statuses (from → to, with the cases). Only cases judged in both count."""
    verdicts = (
        pl.scan_parquet(out / "verdicts.parquet")
        .select("case_id", "kind", "verdict")
        .join(
            pl.scan_parquet(compared / "verdicts.parquet").select("case_id", pl.col("verdict").alias("to")),
            on="case_id",
            how="inner",
        )
        .rename({"verdict": "from"})
    )
    both = verdicts.select("case_id")
    results = (
        pl.scan_parquet(out / "results.parquet")
        .select("case_id", "rule", pl.col("status").alias("from"))
        .join(
            pl.scan_parquet(compared / "results.parquet").select(
                "case_id", "rule", pl.col("status").alias("to")
            ),
            on=["case_id", "rule"],
            how="full",
            coalesce=True,
        )
        .join(both, on="case_id", how="semi")
        .with_columns(pl.col("from").fill_null(ABSENT), pl.col("to").fill_null(ABSENT))
    )
    changed_verdicts = verdicts.filter(pl.col("from") != pl.col("to")).collect()
    changed_results = results.filter(pl.col("from") != pl.col("to")).collect()
    rules: dict[str, Any] = {}
    for (rule,), group in changed_results.sort("rule", "case_id").group_by("rule", maintain_order=True):
        rules[str(rule)] = {
            "changed": group.height,
            "changes": _changes(group),
            "cases": group["case_id"].head(CASES_LISTED).to_list(),
        }
    ordered = changed_verdicts.sort("case_id")
    return {
        "ruleset": ruleset,
        "compared_ruleset": compared_ruleset,
        "cases": both.select(pl.len()).collect().item(),
        "verdicts_changed": changed_verdicts.height,
        "verdict_changes": _changes(changed_verdicts),
        "cases_changed": ordered.head(CASES_LISTED).select("case_id", "kind", "from", "to").to_dicts(),
        "rules": dict(sorted(rules.items(), key=lambda item: -item[1]["changed"])),
    }


def _changes(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """How many went from each status (or verdict) to each other, most first."""
    counts = frame.group_by("from", "to").len("n").sort(["n", "from", "to"], descending=[True, False, False])
    return counts.to_dicts()
