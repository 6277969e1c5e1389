"""The report's Chinese labels: statuses, periods, severities, comparison signs and unit names.

Unit words are not defined here: they are the verdicts' own (``engine.verdicts.UNITS``), so that a page
and a verdict never name the same unit differently.
"""

from __future__ import annotations

from engine.domain import Period
from engine.verdicts import UNITS

__all__ = ["OP_ZH", "PERIOD_ZH", "SEVERITY_ZH", "STATUS_ZH", "unit_name"]

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
PERIOD_ZH: dict[Period, tuple[str, str]] = {  # (the section's adjective, the period's noun)
    "month": ("月度", "月份"),
    "quarter": ("季度", "季度"),
    "year": ("年度", "年份"),
}
SEVERITY_ZH = {"mandatory": "强制", "advisory": "建议"}
OP_ZH = {"le": "≤", "lt": "<", "ge": "≥", "gt": ">", "eq": "=", "ne": "≠"}


def unit_name(unit: str | None) -> str:
    """A unit's word alone (a column, an axis): the verdicts' own words, so both say the same."""
    words = UNITS["zh"].get(unit or "")
    return unit or "" if words is None else words.name
