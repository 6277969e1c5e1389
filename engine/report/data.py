"""Loading the scan outputs: everything the page shows, aggregated before anything is embedded.

The page is built only from ``summary.json``, ``verdicts.parquet``, ``results.parquet`` and
``errors.jsonl``; the Parquet files are read lazily with Polars and aggregated here (per period, per
district × rule, per histogram bin, and at most ``DRILL_ROWS`` failing cases per rule), so a scan of a
million cases still gives a page of a few MB. The full lists stay in ``results.parquet``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from engine.aggregates import PERIOD_MONTHS, period_label
from engine.domain import NO_GROUP, Period
from engine.packs import RulePack, load_pack, load_packs
from engine.report.words import OP_ZH, unit_name
from engine.rules import MonthsMeasure
from engine.verdicts import quantity

__all__ = [
    "DRILL_ROWS",
    "HIST_BINS",
    "MAX_ERRORS",
    "Histogram",
    "ReportData",
    "RuleRow",
    "failing_order",
    "load_report_data",
    "period_range",
    "scan_period",
]

DRILL_ROWS = 1_000  # failing cases per rule embedded in the page; the rest stay in results.parquet
MAX_ERRORS = 200  # input errors listed in the page; errors.jsonl has them all
HIST_BINS = 30


@dataclass
class RuleRow:
    rule: str
    title: str
    clause: str
    reference: str
    severity: str
    requirement: str
    counts: dict[str, int]

    @property
    def rate(self) -> float | None:
        """Compliance rate = pass ÷ (pass + fail): pending, exempt and not-applicable cases are not judged."""
        judged = self.counts.get("pass", 0) + self.counts.get("fail", 0)
        return self.counts.get("pass", 0) / judged if judged else None


@dataclass
class Histogram:
    rule: str
    title: str
    unit: str
    limit: float
    op: str  # "le": more is worse; "ge" (a minimum period, e.g. 公示期不少于20天): less is worse
    width: int
    counts: list[int]  # last bin is the overflow bin (value ≥ len(counts) - 1 bins × width)
    n: int
    over: int  # cases on the wrong side of the limit


@dataclass
class ReportData:
    summary: dict[str, Any]
    rules: list[RuleRow]
    period: Period  # the scan's --period: the compliance chart and the aggregates are per this period
    periodic: list[tuple[str, int, int]]  # (period label, pass, fail), every period from first to last
    heat: dict[tuple[str, str], int]  # (district, rule) → failing results
    histograms: list[Histogram]
    drill: dict[str, dict[str, Any]]  # rule → {"total": n, "rows": [[case_id, district, value, ...]]}
    errors: list[dict[str, Any]]
    pack: RulePack | None
    titles: dict[str, str] = field(default_factory=dict)


def _load_pack(summary: dict[str, Any]) -> RulePack | None:
    """The pack named in the summary; the report still renders (ids only) when it cannot be loaded."""
    names = [part.split("@", 1)[0] for part in str(summary.get("ruleset") or "ningbo-2020").split("+")]
    try:
        return load_packs(names)
    except Exception:  # a pack from another install: titles are nice to have, ids are enough
        try:
            return load_pack()
        except Exception:
            return None


def _requirement(rule: Any) -> str:
    require = getattr(rule, "require", None)
    if require is None:
        return ""
    limit = require.limit
    op = OP_ZH.get(require.op, require.op)
    if getattr(rule, "statistic", None) == "share" and isinstance(limit, int | float):
        return f"{op} {limit:.0%}"
    # A months rule is measured in days but its limit is in months (UNITS in rules.py).
    unit = (
        "months" if isinstance(getattr(rule, "measure", None), MonthsMeasure) else getattr(rule, "unit", None)
    )
    return f"{op} {quantity(limit, unit, 'zh')}"


def _rule_rows(summary: dict[str, Any], pack: RulePack | None) -> list[RuleRow]:
    """Per-rule counts from summary.json, worst first: lowest compliance rate, then most failures."""
    rows = []
    for rule_id, counts in summary.get("rules", {}).items():
        rule = pack.by_id.get(rule_id) if pack else None
        rows.append(
            RuleRow(
                rule=rule_id,
                title=rule.title.zh if rule else "",
                clause=rule.source.clause if rule else "",
                reference=rule.source.reference if rule else "",
                severity=getattr(rule, "severity", "") if rule else "",
                requirement=_requirement(rule) if rule else "",
                counts={k: int(v) for k, v in counts.items()},
            )
        )
    rows.sort(key=lambda r: (r.rate is None, r.rate if r.rate is not None else 0, -r.counts.get("fail", 0)))
    return rows


def _scan(out_dir: Path) -> pl.LazyFrame:
    """The results, each row carrying its case's district and anchor date: no join with the verdicts,
    which for a scan of millions would hold every case_id in memory at once."""
    path = out_dir / "results.parquet"
    source = path / "*.parquet" if path.is_dir() else path  # a Spark scan writes a folder of part files
    return pl.scan_parquet(source).with_columns(pl.col("district").fill_null(NO_GROUP))


def scan_period(summary: dict[str, Any]) -> Period:
    """The scan's --period: named in summary.json, else read off its aggregates' period labels (a
    summary written before it was named), else month (the scan's default)."""
    named = summary.get("period")
    if named in PERIOD_MONTHS:
        return named  # type: ignore[no-any-return]
    label = next((str(e["period"]) for e in summary.get("aggregates", [])), "")
    return "year" if label.isdigit() else "quarter" if "-Q" in label else "month"


def period_range(codes: list[int], period: Period) -> list[str]:
    """The labels of every period from the first code to the last, so that a period without a value is
    a gap on the axis rather than left out."""
    return [period_label(code, period) for code in range(min(codes), max(codes) + 1)] if codes else []


def _periodic_and_heat(
    results: pl.LazyFrame, period: Period
) -> tuple[list[tuple[str, int, int]], dict[tuple[str, str], int]]:
    """Pass/fail per anchor period and failures per district × rule, in one lazy pass over the results."""
    judged = results.filter(pl.col("status").is_in(["pass", "fail"])).select(
        "rule", "status", "district", "anchor_date"
    )
    anchor = pl.col("anchor_date")
    # The period codes of aggregates.period_codes, in Polars: months since 1970, per period length.
    code = ((anchor.dt.year().cast(pl.Int64) - 1970) * 12 + anchor.dt.month() - 1) // PERIOD_MONTHS[period]
    periodic_q = (
        judged.filter(anchor.is_not_null())
        .group_by(code.alias("code"))
        .agg(
            (pl.col("status") == "pass").sum().alias("pass"),
            (pl.col("status") == "fail").sum().alias("fail"),
        )
        .sort("code")
    )
    heat_q = judged.filter(pl.col("status") == "fail").group_by("district", "rule").len()
    periodic, heat = pl.collect_all([periodic_q, heat_q], engine="streaming")
    counts = {period_label(c, period): (int(p), int(f)) for c, p, f in periodic.iter_rows()}
    return (
        [(label, *counts.get(label, (0, 0))) for label in period_range(periodic["code"].to_list(), period)],
        {(d, r): int(n) for d, r, n in heat.iter_rows()},
    )


def _histograms(results: pl.LazyFrame, pack: RulePack | None) -> list[Histogram]:
    """Elapsed-time distributions of the working-day and calendar-day rules, binned in Polars.

    Bins are one day wide up to ~30 days and wider beyond; the range covers the 99th percentile but at
    most 3 × the limit + 10, with everything further out in one overflow bin, so a few absurd outliers
    (years-long cases in historical data) do not squash the part of the chart next to the limit.
    """
    if pack is None:
        return []
    limits: dict[str, tuple[float, str, str]] = {}
    for rule in pack.rules:
        kind = getattr(rule.measure, "type", None)
        if kind in ("working_days", "calendar_days") and isinstance(rule.require.limit, int | float):
            limits[rule.id] = (float(rule.require.limit), kind, rule.require.op)
    if not limits:
        return []
    closed = results.filter(
        pl.col("rule").is_in(list(limits)),
        pl.col("status").is_in(["pass", "fail"]),
        pl.col("value").is_not_null(),
    ).select("rule", "value")
    stats = (
        closed.group_by("rule")
        .agg(pl.col("value").quantile(0.99).alias("q99"), pl.len().alias("n"))
        .collect()
    )
    plan = []
    for rule_id, q99, n in stats.iter_rows():
        limit = limits[rule_id][0]
        high = max(min(math.ceil(q99 or 0), math.ceil(limit * 3) + 10), math.ceil(limit * 1.5), 10)
        width = max(1, math.ceil((high + 1) / HIST_BINS))
        plan.append({"rule": rule_id, "width": width, "bins": math.ceil((high + 1) / width), "n": n})
    if not plan:
        return []
    widths = pl.LazyFrame(
        plan, schema={"rule": pl.String, "width": pl.Int64, "bins": pl.Int64, "n": pl.Int64}
    )
    binned = (
        closed.join(widths, on="rule")
        .with_columns(
            pl.min_horizontal(
                (pl.col("value").clip(lower_bound=0) // pl.col("width")).cast(pl.Int64), "bins"
            ).alias("bin")
        )
        .group_by("rule", "bin")
        .len()
        .collect()
    )
    bounds = pl.LazyFrame(
        {
            "rule": list(limits),
            "limit": [v[0] for v in limits.values()],
            "minimum": [v[2] in ("ge", "gt") for v in limits.values()],
        }
    )
    over = (
        closed.join(bounds, on="rule")
        .filter(
            pl.when(pl.col("minimum"))
            .then(pl.col("value") < pl.col("limit"))
            .otherwise(pl.col("value") > pl.col("limit"))
        )
        .group_by("rule")
        .len()
        .collect()
    )
    over_by_rule = dict(over.iter_rows())
    counts: dict[str, list[int]] = {p["rule"]: [0] * (p["bins"] + 1) for p in plan}
    for rule_id, bin_, n in binned.iter_rows():
        counts[rule_id][bin_] = int(n)
    out = []
    for p in sorted(plan, key=lambda p: p["rule"]):
        rule = pack.by_id[p["rule"]]
        limit, kind, op = limits[p["rule"]]
        out.append(
            Histogram(
                rule=p["rule"],
                title=rule.title.zh,
                unit=kind,
                limit=limit,
                op=op,
                width=p["width"],
                counts=counts[p["rule"]],
                n=int(p["n"]),
                over=int(over_by_rule.get(p["rule"], 0)),
            )
        )
    return out


def _drill(results: pl.LazyFrame) -> dict[str, dict[str, Any]]:
    """The failing cases of every rule, worst (largest value) first, at most ``DRILL_ROWS`` each."""
    fails = results.filter(pl.col("status") == "fail")
    totals = dict(fails.group_by("rule").len().collect().iter_rows())
    top = (
        failing_order(fails)
        .group_by("rule", maintain_order=True)
        .head(DRILL_ROWS)
        .select(
            "rule",
            "case_id",
            "district",
            pl.coalesce(pl.col("value").cast(pl.String), pl.col("value_text")).alias("value"),
            "limit",
            "unit",
            pl.col("deadline").cast(pl.String),
            "excluded",
        )
        .collect()
    )
    # By rule id: group_by gives the rules in any order, and the report must not change between renders.
    drill: dict[str, dict[str, Any]] = {r: {"total": int(n), "rows": []} for r, n in sorted(totals.items())}
    for rule_id, *row in top.iter_rows():
        value = row[2]
        if value is not None and value.endswith(".0"):
            row[2] = value[:-2]
        row[4] = unit_name(row[4])
        drill[rule_id]["rows"].append(row)
    return drill


def failing_order(fails: pl.LazyFrame) -> pl.LazyFrame:
    """The order of the drill-down: per rule, largest value first, then case id (stable and testable)."""
    return fails.sort(["rule", "value", "case_id"], descending=[False, True, False], nulls_last=True)


def _errors(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / "errors.jsonl"
    if not path.exists():
        return []
    errors = []
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                errors.append(orjson.loads(line))
                if len(errors) >= MAX_ERRORS:
                    break
    return errors


def load_report_data(out_dir: Path) -> ReportData:
    """Reads and aggregates the scan outputs in ``out_dir``: everything the page needs, already small."""
    summary = orjson.loads((out_dir / "summary.json").read_bytes())
    pack = _load_pack(summary)
    results = _scan(out_dir)
    period = scan_period(summary)
    periodic, heat = _periodic_and_heat(results, period)
    titles = {rule.id: rule.title.zh for rule in pack.by_id.values()} if pack else {}
    return ReportData(
        summary=summary,
        rules=_rule_rows(summary, pack),
        period=period,
        periodic=periodic,
        heat=heat,
        histograms=_histograms(results, pack),
        drill=_drill(results),
        errors=_errors(out_dir),
        pack=pack,
        titles=titles,
    )
