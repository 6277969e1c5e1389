"""The audit report: one self-contained HTML page built from the outputs of ``casecheck scan``.

Auditors open the report on machines without network access and mail it around, so everything is
inline: CSS, a few lines of JS and the charts, which are SVG drawn in Python rather than by a JS chart
library. ``data`` reads and aggregates the scan outputs, ``charts`` draws the SVG, ``page`` assembles
the sections and inlines ``report.css`` and ``report.js``; ``words`` holds the page's Chinese labels.
"""

from __future__ import annotations

from engine.report.charts import (
    PALETTE,
    VERDICT_COLORS,
    Series,
    heatmap,
    histogram,
    line_chart,
    verdict_bar,
)
from engine.report.data import (
    DRILL_ROWS,
    HIST_BINS,
    MAX_ERRORS,
    Histogram,
    ReportData,
    RuleRow,
    failing_order,
    load_report_data,
    period_range,
    scan_period,
)
from engine.report.page import CSS, JS, MAX_HEAT_COLUMNS, MAX_LINES, render_html, write_report
from engine.report.words import OP_ZH, PERIOD_ZH, SEVERITY_ZH, STATUS_ZH, unit_name

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
