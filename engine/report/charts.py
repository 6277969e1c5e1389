"""SVG charts, drawn in Python so the page needs no chart library and works offline: the verdicts bar,
line charts over periods, the district × rule heatmap and the elapsed-time histograms."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from engine.report.data import Histogram
from engine.report.words import OP_ZH, STATUS_ZH, unit_name
from engine.verdicts import CASE_VERDICTS

__all__ = [
    "PALETTE",
    "VERDICT_COLORS",
    "Series",
    "format_value",
    "heatmap",
    "histogram",
    "line_chart",
    "nice_max",
    "verdict_bar",
]

VERDICT_COLORS = {
    "pass": "#2e8b57",
    "warn": "#e0a100",
    "pending": "#5b8def",
    "fail": "#d64545",
    "not_checked": "#9aa0a6",
}
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


def format_value(value: float, share: bool = False) -> str:
    """A value as a label: a share as a percentage, a whole number without decimals, else two."""
    if share:
        return f"{value:.1%}"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.2f}"


def nice_max(value: float) -> float:
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
            f'<text class="tick" x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{format_value(v, share)}</text>'
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
    peak = nice_max(max(h.counts, default=1))
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
            f'<text class="tick" x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end">{format_value(v)}</text>'
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
        f'<text class="limit-label" x="{lx + 3:.1f}" y="{top - 9}">限值 {OP_ZH.get(h.op, h.op)} {format_value(h.limit)} {unit}</text>'
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
