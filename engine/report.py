"""The audit report: one self-contained HTML page built from the outputs of ``casecheck scan``.

Auditors open the report on machines without network access and mail it around, so everything is
inline: CSS, a few lines of JS (table sorting, drill-down) and the charts, which are SVG drawn here in
Python rather than by a JS chart library. The page is built only from ``summary.json``,
``verdicts.parquet``, ``results.parquet`` and ``errors.jsonl``; the Parquet files are read lazily with
Polars and aggregated *before* anything is embedded (per month, per district × rule, per histogram bin,
and at most ``DRILL_ROWS`` failing cases per rule), so a scan of a million cases still gives a page of a
few MB that opens in well under two seconds. The full lists stay in ``results.parquet``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from engine.aggregates import PERIOD_MONTHS, Period, period_code, period_label
from engine.domain import NO_GROUP, SHANGHAI
from engine.impact import ABSENT
from engine.rules import MonthsMeasure, RulePack, load_pack, load_packs
from engine.verdicts import CASE_VERDICTS, UNITS, quantity

__all__ = [
    "CSS",
    "DRILL_ROWS",
    "HIST_BINS",
    "JS",
    "MAX_ERRORS",
    "MAX_HEAT_COLUMNS",
    "MAX_LINES",
    "OP_ZH",
    "PALETTE",
    "PERIOD_ZH",
    "SEVERITY_ZH",
    "STATUS_ZH",
    "VERDICT_COLORS",
    "Histogram",
    "ReportData",
    "RuleRow",
    "Series",
    "failing_order",
    "heatmap",
    "histogram",
    "line_chart",
    "load_report_data",
    "period_range",
    "render_html",
    "scan_period",
    "unit_name",
    "verdict_bar",
    "write_report",
]

DRILL_ROWS = 1_000  # failing cases per rule embedded in the page; the rest stay in results.parquet
MAX_ERRORS = 200  # input errors listed in the page; errors.jsonl has them all
MAX_LINES = 12  # group lines per aggregate chart; more would be unreadable
MAX_HEAT_COLUMNS = 30  # districts in the heatmap, the ones with most violations
HIST_BINS = 30

STATUS_ZH = {
    "pass": "通过",
    "fail": "不合格",
    "pending": "待定",
    "exempt": "豁免",
    "not_applicable": "不适用",
    "warn": "警示",
    "not_checked": "未逐案检查",
    "insufficient_data": "样本不足",
}
VERDICT_COLORS = {
    "pass": "#2e8b57",
    "warn": "#e0a100",
    "pending": "#5b8def",
    "fail": "#d64545",
    "not_checked": "#9aa0a6",
}
PERIOD_ZH: dict[Period, tuple[str, str]] = {  # (the section's adjective, the period's noun)
    "month": ("月度", "月份"),
    "quarter": ("季度", "季度"),
    "year": ("年度", "年份"),
}
SEVERITY_ZH = {"mandatory": "强制", "advisory": "建议"}
OP_ZH = {"le": "≤", "lt": "<", "ge": "≥", "gt": ">", "eq": "=", "ne": "≠"}
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
    "#ad494a",
    "#637939",
]


# ---------------------------------------------------------------------------------------------------
# Data: everything the page shows, aggregated from the scan outputs before it is embedded.


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


def unit_name(unit: str | None) -> str:
    """A unit's word alone (a column, an axis): the verdicts' own words, so both say the same."""
    words = UNITS["zh"].get(unit or "")
    return unit or "" if words is None else words.name


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
    if named in PERIOD_ZH:
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
    drill: dict[str, dict[str, Any]] = {r: {"total": int(n), "rows": []} for r, n in totals.items()}
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


# ---------------------------------------------------------------------------------------------------
# SVG charts, drawn here so the page needs no chart library and works offline.


def _fmt(value: float, share: bool = False) -> str:
    if share:
        return f"{value:.1%}"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.2f}"


def _nice_max(value: float) -> float:
    """A round upper bound for an axis (1, 2, 2.5, 5 × 10^k), so tick labels are readable numbers."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


@dataclass
class Series:
    label: str
    color: str
    points: list[tuple[int, float, str, str]]  # (x index, y, tooltip, state: "", "fail" or "insufficient")
    width: float = 1.5


def line_chart(
    name: str,
    x_labels: list[str],
    series: list[Series],
    *,
    y_max: float,
    y_min: float = 0.0,
    share: bool = False,
    limit: float | None = None,
    limit_label: str = "",
    width: int = 880,
    height: int = 280,
) -> str:
    """A line chart over periods: one polyline per series, a dashed limit line, red rings on failures."""
    left, right, top, bottom = 56, 16, 14, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(x_labels), 1)

    def x(i: float) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - (min(max(v, y_min), y_max) - y_min) / (y_max - y_min))

    parts = [
        f'<svg class="chart line" data-chart="{escape(name)}" data-series="{len(series)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
    ]
    for k in range(5):
        v = y_min + (y_max - y_min) * k / 4
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_fmt(v, share)}</text>'
        )
    step = max(1, math.ceil(n / 12))
    for i in range(0, len(x_labels), step):
        parts.append(
            f'<text class="tick" x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{escape(x_labels[i])}</text>"
        )
    if limit is not None:
        parts.append(
            f'<line class="limit" x1="{left}" x2="{width - right}" y1="{y(limit):.1f}" y2="{y(limit):.1f}"/>'
            f'<text class="limit-label" x="{left + 4}" y="{y(limit) - 5:.1f}">'
            f"{escape(limit_label)}</text>"
        )
    for s in series:
        parts.append(f'<g class="s" data-label="{escape(s.label)}">')
        for run in _runs(s.points):
            if len(run) > 1:
                coords = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, _, _ in run)
                parts.append(
                    f'<polyline class="series" points="{coords}" stroke="{s.color}" stroke-width="{s.width}"/>'
                )
        for i, v, tip, state in s.points:
            cls = f"pt {state}".strip()
            radius = 3.5 if state == "fail" else 2
            parts.append(
                f'<circle class="{cls}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="{radius}" fill="{s.color}" stroke="{s.color}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        parts.append("</g>")
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/></svg>'
    )
    return "".join(parts)


def _runs(points: list[tuple[int, float, str, str]]) -> list[list[tuple[int, float, str, str]]]:
    """The points split where a period has no value: a line joins neighbouring periods only."""
    runs: list[list[tuple[int, float, str, str]]] = []
    for point in sorted(points):
        if runs and point[0] == runs[-1][-1][0] + 1:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def heatmap(rules: list[str], districts: list[str], counts: dict[tuple[str, str], int], titles: dict) -> str:
    """Violations by rule (rows) × district (columns): colour by count, the count written in the cell."""
    cell_w, cell_h, left, top = 58, 22, 250, 70
    width, height = left + cell_w * len(districts) + 10, top + cell_h * len(rules) + 10
    peak = max(counts.values(), default=1) or 1
    parts = [
        f'<svg class="chart heatmap" data-chart="heatmap" data-rows="{len(rules)}" '
        f'data-cols="{len(districts)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
    ]
    for j, district in enumerate(districts):
        cx = left + cell_w * j + cell_w / 2
        parts.append(
            f'<text class="tick" transform="translate({cx:.1f},{top - 8}) rotate(-35)">{escape(district)}</text>'
        )
    for i, rule in enumerate(rules):
        cy = top + cell_h * i
        parts.append(
            f'<text class="tick mono" x="{left - 6}" y="{cy + 15}" text-anchor="end">'
            f"<title>{escape(titles.get(rule, ''))}</title>{escape(rule)}</text>"
        )
        for j, district in enumerate(districts):
            n = counts.get((district, rule), 0)
            share = math.sqrt(n / peak) if n else 0.0  # sqrt: small counts stay visible next to big ones
            fill = f"rgba(214,69,69,{0.08 + 0.92 * share:.3f})" if n else "#f4f5f7"
            text_fill = "#fff" if share > 0.6 else "#333"
            parts.append(
                f'<g class="cell" data-n="{n}"><rect x="{left + cell_w * j}" y="{cy}" width="{cell_w - 2}" '
                f'height="{cell_h - 2}" fill="{fill}"><title>{escape(rule)} · {escape(district)}: {n} 件不合格'
                f"</title></rect>"
                + (
                    f'<text x="{left + cell_w * j + cell_w / 2 - 1}" y="{cy + 15}" text-anchor="middle" '
                    f'fill="{text_fill}" class="cell-n">{n}</text>'
                    if n
                    else ""
                )
                + "</g>"
            )
    parts.append("</svg>")
    return "".join(parts)


def histogram(h: Histogram, width: int = 420, height: int = 200) -> str:
    """One rule's elapsed-time distribution: bins over the limit in red, the limit as a dashed line."""
    left, right, top, bottom = 44, 10, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    bins = len(h.counts)
    peak = _nice_max(max(h.counts, default=1))
    bar_w = plot_w / bins
    unit = unit_name(h.unit)
    parts = [
        f'<svg class="chart hist" data-chart="hist" data-rule="{escape(h.rule)}" data-n="{h.n}" '
        f'viewBox="0 0 {width} {height}" width="100%" height="{height}">'
    ]
    for k in range(3):
        v = peak * k / 2
        yy = top + plot_h * (1 - v / peak)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}"/>'
            f'<text class="tick" x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end">{_fmt(v)}</text>'
        )
    for b, n in enumerate(h.counts):
        start = b * h.width
        overflow = b == bins - 1
        label = (
            f"≥{start}" if overflow else (f"{start}" if h.width == 1 else f"{start}–{start + h.width - 1}")
        )
        bar_h = plot_h * n / peak
        wrong = start + h.width - 1 < h.limit if h.op in ("ge", "gt") else start > h.limit
        cls = "bar over" if wrong else "bar"
        parts.append(
            f'<rect class="{cls}" x="{left + b * bar_w + 0.5:.1f}" y="{top + plot_h - bar_h:.1f}" '
            f'width="{max(bar_w - 1, 0.5):.1f}" height="{bar_h:.1f}"><title>{label} {unit}: {n} 件</title></rect>'
        )
    step = max(1, math.ceil(bins / 6))
    for b in range(0, bins, step):
        parts.append(
            f'<text class="tick" x="{left + b * bar_w + bar_w / 2:.1f}" y="{height - bottom + 14}" '
            f'text-anchor="middle">{b * h.width}</text>'
        )
    # The line sits between the last passing value and the first failing one.
    edge = h.limit if h.op in ("ge", "gt") else h.limit + 1
    lx = left + bar_w * min(edge / h.width, bins)
    parts.append(
        f'<line class="limit" x1="{lx:.1f}" x2="{lx:.1f}" y1="{top - 6}" y2="{top + plot_h}"/>'
        f'<text class="limit-label" x="{lx + 3:.1f}" y="{top - 9}">限值 {OP_ZH.get(h.op, h.op)} {_fmt(h.limit)} {unit}</text>'
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
        f'<text class="tick" x="{width - right}" y="{height - 4}" text-anchor="end">{unit}</text></svg>'
    )
    return "".join(parts)


def verdict_bar(counts: dict[str, int], width: int = 880, height: int = 26) -> str:
    """The verdicts of all cases as one stacked bar: the share of failing cases at a glance."""
    total = sum(counts.values()) or 1
    parts = [
        f'<svg class="chart" data-chart="verdicts" viewBox="0 0 {width} {height}" width="100%" '
        f'height="{height}" preserveAspectRatio="none">'
    ]
    x = 0.0
    for verdict in CASE_VERDICTS:
        n = counts.get(verdict, 0)
        w = width * n / total
        if n:
            parts.append(
                f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" fill="{VERDICT_COLORS[verdict]}">'
                f"<title>{STATUS_ZH[verdict]}: {n:,} ({n / total:.1%})</title></rect>"
            )
        x += w
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------
# Page sections.


def _overview(data: ReportData) -> str:
    s = data.summary
    counts = s.get("verdict_counts", {})
    verdicts = int(s.get("verdicts", 0))
    cards = [
        ("扫描案件", f"{int(s.get('input', 0)):,}", "input"),
        ("已判定", f"{verdicts:,}", "verdicts"),
        ("输入错误", f"{int(s.get('errors', 0)):,}", "errors"),
    ]
    for verdict in CASE_VERDICTS:
        n = int(counts.get(verdict, 0))
        share = f"{n / verdicts:.1%}" if verdicts else "–"
        cards.append((f"{STATUS_ZH[verdict]}", f"{n:,}<small> {share}</small>", verdict))
    card_html = "".join(
        f'<div class="card {key}" data-key="{key}"><div class="label">{label}</div>'
        f'<div class="num">{value}</div></div>'
        for label, value, key in cards
    )
    meta = [
        ("判定基准日 (as_of)", s.get("as_of", "")),
        ("规则集", s.get("ruleset", "")),
        ("工作日历", s.get("calendar", "")),
        ("执行器", s.get("engine", "")),
    ]
    if data.pack is not None:
        meta.insert(0, ("依据", f"{data.pack.manifest.document} 《{data.pack.manifest.title}》"))
    meta_html = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in meta)
    legend = "".join(
        f'<span class="key"><i style="background:{VERDICT_COLORS[v]}"></i>{STATUS_ZH[v]}</span>'
        for v in CASE_VERDICTS
    )
    return (
        '<section id="overview"><h2>概览</h2>'
        f'<div class="cards">{card_html}</div>'
        f'<div class="vbar">{verdict_bar(counts)}<div class="legend">{legend}</div></div>'
        f'<dl class="meta">{meta_html}</dl>'
        '<p class="note">案件判定: 任一强制性规则不合格为“不合格”; 仅建议性规则不合格为“警示”; '
        "有待定规则为“待定”; 其余为“通过”。输入数 = 已判定 + 输入错误。</p></section>"
    )


def _rules_table(data: ReportData) -> str:
    head = [
        ("rule", "规则 ID", "text"),
        ("title", "规则 (悬停或展开查看条文)", "text"),
        ("severity", "类别", "text"),
        ("pass", "通过", "num"),
        ("fail", "不合格", "num"),
        ("pending", "待定", "num"),
        ("exempt", "豁免", "num"),
        ("not_applicable", "不适用", "num"),
        ("rate", "合规率", "num"),
    ]
    ths = "".join(f'<th data-type="{t}" title="点击排序">{escape(label)}</th>' for _, label, t in head)
    rows = []
    for r in data.rules:
        rate = r.rate
        rate_html = (
            f'<div class="rate"><span class="rbar"><i style="width:{rate * 100:.1f}%"></i></span>{rate:.1%}</div>'
            if rate is not None
            else "–"
        )
        clause = escape(r.clause)
        detail = (
            f"<details><summary>{escape(r.title or r.rule)}</summary>"
            f'<blockquote>{clause}</blockquote><div class="ref">{escape(r.reference)}'
            f"{' · 标准 ' + escape(r.requirement) if r.requirement else ''}</div></details>"
        )
        cells = [
            f'<td class="mono" data-v="{escape(r.rule)}"><a href="#drill" data-rule="{escape(r.rule)}" '
            f'class="to-drill">{escape(r.rule)}</a></td>',
            f'<td data-v="{escape(r.title)}" title="{clause}">{detail}</td>',
            f'<td data-v="{escape(r.severity)}">{SEVERITY_ZH.get(r.severity, escape(r.severity))}</td>',
        ]
        for status in ("pass", "fail", "pending", "exempt", "not_applicable"):
            n = r.counts.get(status, 0)
            cls = ' class="bad"' if status == "fail" and n else ""
            cells.append(f'<td data-v="{n}"{cls}>{n:,}</td>')
        cells.append(f'<td data-v="{rate if rate is not None else 2}">{rate_html}</td>')
        rows.append(f'<tr data-rule="{escape(r.rule)}">{"".join(cells)}</tr>')
    return (
        '<section id="rules"><h2>按规则 <small>最差的在前; 点击表头排序</small></h2>'
        '<table id="rules-table" class="sortable"><thead><tr>'
        f"{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">合规率 = 通过 ÷ (通过 + 不合格); 待定、豁免、不适用不计入。'
        "点击规则 ID 查看不合格案件明细。</p></section>"
    )


def _periodic_section(data: ReportData) -> str:
    adjective, noun = PERIOD_ZH[data.period]
    if not data.periodic:
        return f'<section id="periodic"><h2>{adjective}合规率</h2><p class="empty">没有已判定的规则结果。</p></section>'
    labels = [label for label, _, _ in data.periodic]
    points = []
    for i, (label, passed, failed) in enumerate(data.periodic):
        judged = passed + failed
        if judged:
            rate = passed / judged
            points.append((i, rate, f"{label}: 合规率 {rate:.1%} (通过 {passed:,}, 不合格 {failed:,})", ""))
    low = min((p[1] for p in points), default=0.0)
    # Zoom in on the band where the rates are: 0–100 % would flatten every change into a line at the top.
    y_floor = max(0.0, math.floor(low * 10) / 10 - 0.1)
    chart = line_chart(
        f"compliance-{data.period}",
        labels,
        [Series("合规率", "#1f77b4", points, 2.2)],
        y_max=1.0,
        y_min=y_floor,
        share=True,
    )
    return (
        f'<section id="periodic"><h2>{adjective}合规率 <small>按案件基准日所在{noun}; 规则结果中 通过 ÷ '
        f"(通过 + 不合格); 没有已判定结果的{noun}线条断开</small></h2>{chart}</section>"
    )


def _heat_section(data: ReportData) -> str:
    if not data.heat:
        return (
            '<section id="heatmap"><h2>违规热力图</h2><p class="empty">没有不合格的规则结果。</p></section>'
        )
    by_district: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    for (district, rule), n in data.heat.items():
        by_district[district] = by_district.get(district, 0) + n
        by_rule[rule] = by_rule.get(rule, 0) + n
    districts = sorted(by_district, key=lambda d: (-by_district[d], d))[:MAX_HEAT_COLUMNS]
    rules = sorted(by_rule, key=lambda r: (-by_rule[r], r))
    note = (
        f'<p class="note">只显示不合格最多的 {MAX_HEAT_COLUMNS} 个区县 (共 {len(by_district)} 个)。</p>'
        if len(by_district) > MAX_HEAT_COLUMNS
        else ""
    )
    return (
        '<section id="heatmap"><h2>违规热力图 <small>区县 × 规则, 不合格件数</small></h2>'
        f'<div class="scroll">{heatmap(rules, districts, data.heat, data.titles)}</div>{note}</section>'
    )


def _hist_section(data: ReportData) -> str:
    if not data.histograms:
        return ""
    figures = []
    for h in data.histograms:
        share = f"{h.over / h.n:.1%}" if h.n else "–"
        figures.append(
            f'<figure><figcaption><span class="mono">{escape(h.rule)}</span> {escape(h.title)}'
            f"<br><small>n = {h.n:,}; 超限 {h.over:,} ({share})</small></figcaption>{histogram(h)}</figure>"
        )
    return (
        '<section id="histograms"><h2>用时分布 <small>已办结案件的用时 (工作日或自然日), 虚线为限值, '
        f'红色为超限</small></h2><div class="grid">{"".join(figures)}</div></section>'
    )


def _aggregate_section(data: ReportData) -> str:
    aggregates = data.summary.get("aggregates", [])
    if not aggregates:
        return '<section id="aggregates"><h2>聚合指标</h2><p class="empty">本次扫描没有聚合规则的结果。</p></section>'
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for entry in aggregates:
        by_rule.setdefault(entry["rule"], []).append(entry)
    blocks = []
    for rule_id in sorted(by_rule, key=lambda r: (-sum(e["status"] == "fail" for e in by_rule[r]), r)):
        blocks.append(_aggregate_block(rule_id, by_rule[rule_id], data))
    by = next((e.get("by") for e in aggregates if e.get("by")), None)
    how = f"每个{ {'district': '区县', 'department': '部门'}.get(by, by) }一条线" if by else "全部案件一条线"
    return (
        f'<section id="aggregates"><h2>聚合指标 <small>按期间 ({how}); 虚线为目标值, 红圈为未达标; '
        f"少于最低样本数的期间为“样本不足”, 画为空心点; 没有数值的期间线条断开; 只有样本不足期间的分组不画, "
        f"在图例下列出</small></h2>{''.join(blocks)}</section>"
    )


def _aggregate_block(rule_id: str, entries: list[dict[str, Any]], data: ReportData) -> str:
    rule = data.pack.by_id.get(rule_id) if data.pack else None
    first = entries[0]
    share = first.get("statistic") == "share"
    limit = float(first["limit"])
    op = OP_ZH.get(first.get("op", ""), first.get("op", ""))
    unit = unit_name(getattr(getattr(rule, "measure", None), "type", None))
    periods = period_range([period_code(e["period"], data.period) for e in entries], data.period)
    index = {p: i for i, p in enumerate(periods)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        groups.setdefault(e.get("group") or (NO_GROUP if e.get("by") else "全部"), []).append(e)
    # A group with no period of enough cases has nothing to judge: it is named under the legend, not drawn.
    insufficient = sorted(g for g in groups if all(e["status"] == "insufficient_data" for e in groups[g]))
    ranked = sorted(
        (g for g in groups if g not in insufficient), key=lambda g: (-sum(e["n"] for e in groups[g]), g)
    )
    shown = sorted(ranked[:MAX_LINES])
    series = []
    values = [limit]
    for k, group in enumerate(shown):
        points = []
        for e in sorted(groups[group], key=lambda e: e["period"]):
            if e.get("value") is None:
                continue
            value = float(e["value"])
            values.append(value)
            status = STATUS_ZH.get(e["status"], e["status"])
            tip = f"{group} {e['period']}: {_fmt(value, share)} {unit} (n={e['n']}, {status})"
            state = {"fail": "fail", "insufficient_data": "insufficient"}.get(e["status"], "")
            points.append((index[e["period"]], value, tip, state))
        series.append(Series(group, PALETTE[k % len(PALETTE)], points))
    y_max = 1.0 if share else 4 * _nice_max(max(values) * 1.05 / 4)  # four round ticks
    # Shares sit near their target (80 %, 95 %): zoom in on that band rather than draw 0–100 %.
    y_min = max(0.0, math.floor(min(values) * 10) / 10 - 0.1) if share else 0.0
    chart = (
        line_chart(
            f"agg:{rule_id}",
            periods,
            series,
            y_max=y_max,
            y_min=y_min,
            share=share,
            limit=limit,
            limit_label=f"目标 {op} {_fmt(limit, share)} {unit}",
        )
        if series
        else '<p class="empty">每个分组每个期间都样本不足: 没有可画的数值。</p>'
    )
    legend = "".join(
        f'<span class="key pick" data-label="{escape(s.label)}" title="点击突出显示"><i style="background:{s.color}">'
        f"</i>{escape(s.label)}</span>"
        for s in series
    )
    if any(p[3] == "insufficient" for s in series for p in s.points):
        legend += '<span class="key hollow"><i></i>样本不足的期间</span>'
    if insufficient:
        legend += (
            f'<span class="key not-drawn" data-groups="{escape(orjson.dumps(insufficient).decode())}">'
            f"样本不足, 未画出: {escape('、'.join(insufficient))}</span>"
        )
    status_counts = {k: sum(e["status"] == k for e in entries) for k in ("pass", "fail", "insufficient_data")}
    failing = sorted(
        (e for e in entries if e["status"] == "fail"), key=lambda e: (e["period"], str(e.get("group")))
    )
    fail_rows = "".join(
        f"<tr><td>{escape(e['period'])}</td><td>{escape(str(e.get('group') or '全部'))}</td><td>{e['n']:,}</td>"
        f"<td>{_fmt(float(e['value']), share)}</td><td>{op} {_fmt(limit, share)}</td></tr>"
        for e in failing[:200]
    )
    fail_table = (
        f'<details><summary>未达标的 {len(failing)} 个分组</summary><table class="small"><thead><tr><th>期间</th>'
        f"<th>分组</th><th>n</th><th>值</th><th>目标</th></tr></thead><tbody>{fail_rows}</tbody></table></details>"
        if failing
        else ""
    )
    omitted = (
        f'<p class="note">只画出案件最多的 {MAX_LINES} 个分组 (共 {len(ranked)} 个)。</p>'
        if len(ranked) > MAX_LINES
        else ""
    )
    title = escape(rule.title.zh) if rule else ""
    clause = escape(rule.source.clause) if rule else ""
    return (
        f'<div class="agg" data-rule="{escape(rule_id)}"><h3><span class="mono">{escape(rule_id)}</span> {title}</h3>'
        f'<p class="clause" title="{escape(rule.source.reference) if rule else ""}">{clause}</p>'
        f'<p class="stat">分组: 达标 {status_counts["pass"]:,} · <b class="bad">未达标 {status_counts["fail"]:,}</b> · '
        f"样本不足 {status_counts['insufficient_data']:,}</p>"
        f'<div class="scroll">{chart}</div><div class="legend">{legend}</div>{omitted}{fail_table}</div>'
    )


def _drill_section(data: ReportData) -> str:
    if not data.drill:
        return '<section id="drill"><h2>不合格案件明细</h2><p class="empty">没有不合格的案件。</p></section>'
    order = [r.rule for r in data.rules if r.rule in data.drill]
    order += sorted(r for r in data.drill if r not in order)
    default = max(order, key=lambda r: data.drill[r]["total"])
    options = "".join(
        f'<option value="{escape(r)}"{" selected" if r == default else ""}>{escape(r)} — '
        f"{escape(data.titles.get(r, ''))} ({data.drill[r]['total']:,})</option>"
        for r in order
    )
    payload = orjson.dumps(data.drill).decode().replace("</", "<\\/")
    return (
        '<section id="drill"><h2>不合格案件明细 <small>每条规则按数值从大到小列出前 '
        f"{DRILL_ROWS:,} 件; 完整列表见 results.parquet</small></h2>"
        f'<div class="controls"><label>规则 <select id="drill-rule">{options}</select></label>'
        '<label>筛选 <input id="drill-filter" type="search" placeholder="案件编号或区县"></label>'
        '<span id="drill-count"></span></div>'
        '<table id="drill-table" class="sortable small"><thead><tr>'
        '<th data-type="text">案件编号</th><th data-type="text">区县</th><th data-type="num">数值</th>'
        '<th data-type="text">限值</th><th data-type="text">单位</th><th data-type="text">期限</th>'
        '<th data-type="num">扣除工作日</th></tr></thead><tbody></tbody></table>'
        f'<script id="drill-data" type="application/json">{payload}</script></section>'
    )


def _impact_section(data: ReportData) -> str:
    """What the compared pack (``scan --compare-pack``) changes: verdicts, then each rule, with cases."""
    impact = data.summary.get("impact")
    if impact is None:
        return ""

    def zh(status: str) -> str:
        return "（不在规则包中）" if status == ABSENT else STATUS_ZH.get(status, status)

    def moves(changes: list[dict[str, Any]]) -> str:
        return "；".join(f"{zh(c['from'])} → {zh(c['to'])} {c['n']:,}" for c in changes) or "无"

    rows = "".join(
        f'<tr><td class="mono">{escape(rule_id)}</td><td>{escape(data.titles.get(rule_id, ""))}</td>'
        f'<td class="num">{entry["changed"]:,}</td><td>{escape(moves(entry["changes"]))}</td>'
        f'<td class="mono small">{escape(", ".join(entry["cases"][:20]))}'
        f"{' …' if len(entry['cases']) > 20 else ''}</td></tr>"
        for rule_id, entry in impact["rules"].items()
    )
    listed = len(impact["cases_changed"])
    cases = "".join(
        f'<tr><td class="mono">{escape(c["case_id"])}</td><td>{escape(c["kind"])}</td>'
        f"<td>{zh(c['from'])}</td><td>{zh(c['to'])}</td></tr>"
        for c in impact["cases_changed"]
    )
    return (
        f'<section id="impact"><h2>规则包变更影响 <small>{escape(impact["ruleset"])} → '
        f"{escape(impact['compared_ruleset'])}</small></h2>"
        f"<p>{impact['cases']:,} 件案件中 {impact['verdicts_changed']:,} 件结论改变："
        f"{escape(moves(impact['verdict_changes']))}。</p>"
        '<table class="small"><thead><tr><th>规则</th><th>名称</th><th>改变件数</th><th>状态变化</th>'
        f"<th>案件（前 20 件）</th></tr></thead><tbody>{rows}</tbody></table>"
        f"<h3>结论改变的案件 <small>前 {listed:,} 件，全部名单见 summary.json</small></h3>"
        '<table class="small"><thead><tr><th>案件编号</th><th>类型</th><th>原结论</th><th>新结论</th></tr>'
        f"</thead><tbody>{cases}</tbody></table></section>"
    )


def _errors_section(data: ReportData) -> str:
    total = int(data.summary.get("errors", 0))
    if not total:
        return '<section id="errors"><h2>输入错误</h2><p class="empty">没有输入错误。</p></section>'
    rows = "".join(
        f"<tr><td>{escape(Path(str(e.get('file', ''))).name)}</td><td>{e.get('line', '')}</td>"
        f'<td class="mono">{escape(str(e.get("case_id") or ""))}</td><td class="mono">{escape(str(e.get("path", "")))}</td>'
        f"<td>{escape(str(e.get('message', '')))}</td></tr>"
        for e in data.errors
    )
    more = f"; 此处列出前 {len(data.errors)} 条, 全部见 errors.jsonl" if total > len(data.errors) else ""
    return (
        f'<section id="errors"><h2>输入错误 <small>{total:,} 条{more}</small></h2>'
        '<table class="small"><thead><tr><th>文件</th><th>行</th><th>案件编号</th><th>路径</th><th>错误</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )


CSS = """
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bad:#d64545;--ok:#2e8b57;--bg:#f7f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.55 "PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC",
"Source Han Sans SC","WenQuanYi Micro Hei",system-ui,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#17324d;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.8}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:8px 32px}
nav a{margin-right:18px;color:#17324d;text-decoration:none}nav a:hover{text-decoration:underline}
main{max-width:1200px;margin:0 auto;padding:8px 32px 48px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:18px 0}
h2{font-size:18px;margin:0 0 12px}h2 small,h3 small{font-weight:normal;color:var(--muted);font-size:12px}
h3{font-size:15px;margin:8px 0 4px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{flex:1 1 120px;border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fbfcfd}
.card .label{color:var(--muted);font-size:12px}.card .num{font-size:24px;font-weight:600}
.card .num small{font-size:12px;color:var(--muted);font-weight:normal}
.card.fail .num{color:var(--bad)}.card.pass .num{color:var(--ok)}.card.errors .num{color:#b54708}
.vbar{margin:14px 0 6px}.vbar svg{display:block;border-radius:4px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0;font-size:12px;color:var(--muted)}
.key i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.key.hollow i{border:1px solid var(--muted);border-radius:50%;background:#fff}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:10px 0 0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;font-family:ui-monospace,Menlo,Consolas,monospace}
.note{color:var(--muted);font-size:12px;margin:8px 0 0}.empty{color:var(--muted)}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f2f4f7;font-weight:600;white-space:nowrap;position:sticky;top:37px}
table.sortable th{cursor:pointer}table.sortable th:hover{background:#e6eaf0}
th.asc::after{content:" ▲"}th.desc::after{content:" ▼"}
td[data-v]{font-variant-numeric:tabular-nums}
table.small td,table.small th{padding:3px 8px;font-size:13px}
.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
.bad{color:var(--bad);font-weight:600}
details summary{cursor:pointer}blockquote{margin:6px 0;padding:4px 10px;border-left:3px solid #b2c5da;
background:#f5f8fb}.ref{color:var(--muted);font-size:12px}
.rate{display:flex;align-items:center;gap:6px;white-space:nowrap}
.rbar{display:inline-block;width:70px;height:8px;background:#fde2e2;border-radius:4px;overflow:hidden}
.rbar i{display:block;height:100%;background:var(--ok)}
svg.chart{max-width:100%;height:auto;font-size:11px}svg.chart.line{width:100%}
svg .grid{stroke:#eef0f3}svg .axis{stroke:#98a2b3}svg .tick{fill:#667085}
svg .limit{stroke:var(--bad);stroke-dasharray:5 4;stroke-width:1.5}
svg .limit-label{fill:var(--bad);font-size:11px}
svg .series{fill:none;stroke-linejoin:round;opacity:.7}
.key.pick{cursor:pointer}.key.on{color:var(--fg);font-weight:600}svg g.s.dim{opacity:.08}
svg .pt.fail{stroke:var(--bad);stroke-width:2;fill:#fff}
svg .pt.insufficient{fill:#fff;stroke-width:1;opacity:.6}
svg .bar{fill:#7aa6d6}svg .bar.over{fill:var(--bad)}svg .cell-n{font-size:11px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(430px,1fr));gap:12px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px}
figcaption{font-size:13px;margin-bottom:4px}
.scroll{overflow-x:auto}.agg{border-top:1px solid var(--line);padding-top:8px;margin-top:12px}
.agg:first-of-type{border-top:0}.clause{margin:2px 0;color:#344054;font-size:13px}.stat{margin:2px 0;font-size:13px}
.controls{display:flex;gap:16px;align-items:center;flex-wrap:wrap;margin-bottom:8px}
.controls select{max-width:640px}#drill-count{color:var(--muted);font-size:12px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:16px}
"""

JS = r"""
(function () {
  "use strict";
  function cellValue(td, type) {
    var v = td.hasAttribute("data-v") ? td.getAttribute("data-v") : td.textContent;
    if (type === "num") { var f = parseFloat(v); return isNaN(f) ? -Infinity : f; }
    return v;
  }
  function makeSortable(table) {
    var ths = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths, function (th, col) {
      th.addEventListener("click", function () {
        var type = th.getAttribute("data-type") || "text";
        var asc = !th.classList.contains("asc");
        Array.prototype.forEach.call(ths, function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a.cells[col], type), y = cellValue(b.cells[col], type);
          var c = type === "num" ? x - y : String(x).localeCompare(String(y), "zh");
          return asc ? c : -c;
        });
        var frag = document.createDocumentFragment();
        rows.forEach(function (r) { frag.appendChild(r); });
        body.appendChild(frag);
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);

  // Aggregate charts: clicking a legend key highlights that group's line, clicking again shows all.
  Array.prototype.forEach.call(document.querySelectorAll(".agg"), function (block) {
    var keys = block.querySelectorAll(".key.pick");
    Array.prototype.forEach.call(keys, function (key) {
      key.addEventListener("click", function () {
        var label = key.getAttribute("data-label");
        var on = !key.classList.contains("on");
        Array.prototype.forEach.call(keys, function (k) { k.classList.toggle("on", on && k === key); });
        Array.prototype.forEach.call(block.querySelectorAll("g.s"), function (g) {
          g.classList.toggle("dim", on && g.getAttribute("data-label") !== label);
        });
      });
    });
  });

  var dataNode = document.getElementById("drill-data");
  if (!dataNode) { return; }
  var drill = JSON.parse(dataNode.textContent);
  var select = document.getElementById("drill-rule");
  var filter = document.getElementById("drill-filter");
  var body = document.querySelector("#drill-table tbody");
  var count = document.getElementById("drill-count");
  function td(text, num) {
    var cell = document.createElement("td");
    cell.textContent = text === null || text === undefined ? "" : String(text);
    if (num) { cell.setAttribute("data-v", text === null ? "" : String(text)); }
    return cell;
  }
  function render() {
    var entry = drill[select.value] || {total: 0, rows: []};
    var needle = filter.value.trim();
    var frag = document.createDocumentFragment();
    var shown = 0;
    entry.rows.forEach(function (row) {
      if (needle && String(row[0]).indexOf(needle) < 0 && String(row[1]).indexOf(needle) < 0) { return; }
      var tr = document.createElement("tr");
      tr.appendChild(td(row[0])); tr.appendChild(td(row[1]));
      tr.appendChild(td(row[2], true)); tr.appendChild(td(row[3])); tr.appendChild(td(row[4]));
      tr.appendChild(td(row[5])); tr.appendChild(td(row[6], true));
      tr.cells[0].className = "mono";
      frag.appendChild(tr);
      shown += 1;
    });
    body.textContent = "";
    body.appendChild(frag);
    count.textContent = "显示 " + shown + " 件 / 页内 " + entry.rows.length + " 件 / 共 " + entry.total + " 件不合格";
  }
  select.addEventListener("change", render);
  filter.addEventListener("input", render);
  Array.prototype.forEach.call(document.querySelectorAll("a.to-drill"), function (a) {
    a.addEventListener("click", function () {
      var rule = a.getAttribute("data-rule");
      if (drill[rule]) { select.value = rule; filter.value = ""; render(); }
    });
  });
  render();
})();
"""


def render_html(data: ReportData) -> str:
    """The whole page as one string: sections in the order an auditor reads them."""
    s = data.summary
    title = data.pack.manifest.title if data.pack else "营商环境"
    # Asia/Shanghai, as as_of is, and said so: a bare time would be read as local by every reader.
    generated = f"{datetime.now(SHANGHAI):%Y-%m-%d %H:%M} ({SHANGHAI.key})"
    nav = "".join(
        f'<a href="#{anchor}">{label}</a>'
        for anchor, label in [
            ("overview", "概览"),
            ("rules", "按规则"),
            ("periodic", f"{PERIOD_ZH[data.period][0]}合规率"),
            ("heatmap", "热力图"),
            ("histograms", "用时分布"),
            ("aggregates", "聚合指标"),
            ("drill", "不合格明细"),
            *([("impact", "变更影响")] if "impact" in s else []),
            ("errors", "输入错误"),
        ]
    )
    body = "".join(
        [
            _overview(data),
            _rules_table(data),
            _periodic_section(data),
            _heat_section(data),
            _hist_section(data),
            _aggregate_section(data),
            _drill_section(data),
            _impact_section(data),
            _errors_section(data),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>合规审计报告 · {escape(str(s.get('as_of', '')))}</title><style>{CSS}</style></head><body>"
        f"<header><h1>营商环境服务标准合规审计报告</h1><p>{escape(title)} · 判定基准日 "
        f"{escape(str(s.get('as_of', '')))} · 生成于 {generated}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        f"<footer>casecheck · {escape(str(s.get('ruleset', '')))} · {escape(str(s.get('calendar', '')))}</footer>"
        f"<script>{JS}</script></body></html>"
    )


def write_report(out_dir: Path) -> Path:
    """Writes ``out_dir/report.html`` from the scan outputs in ``out_dir`` and returns its path."""
    out_dir = Path(out_dir)
    data = load_report_data(out_dir)
    path = out_dir / "report.html"
    path.write_text(render_html(data), encoding="utf-8")
    return path
