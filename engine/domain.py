"""The domain's words, defined once: the plan's time zone, the kinds of case, the pause reasons, the day
numbering shared by every backend, the label of a case without a group, the message languages, the
executors, the aggregate periods and the fields aggregates may be grouped by."""

from __future__ import annotations

import typing
from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = [
    "EPOCH",
    "EPOCH_ORDINAL",
    "EXECUTORS",
    "KINDS",
    "LANGS",
    "NO_GROUP",
    "PAUSE_REASONS",
    "SHANGHAI",
    "TIME_ZONE",
    "ExecutorName",
    "GroupBy",
    "Kind",
    "Lang",
    "PauseReason",
    "Period",
]

# Every local date and deadline is a day in Ningbo: timestamps without a zone are read in it.
TIME_ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(TIME_ZONE)

Kind = Literal[
    "water_connection",
    "gas_connection",
    "power_connection",
    "procurement_contract",
    "deregistration",
    "company_startup",
    "construction_project",
    "property_registration",
    "loan",
    "ccc_exemption",
    "customs_declaration",
    "bankruptcy_case",
    "service_review",
]
KINDS: tuple[Kind, ...] = typing.get_args(Kind)

# 暂停计时原因: why the clock may stop; `other` is never excluded.
PauseReason = Literal["user_internal_works", "gas_tightness_test", "pressure_pipeline_inspection", "other"]
PAUSE_REASONS: tuple[PauseReason, ...] = typing.get_args(PauseReason)

# Dates travel between stages and backends as day numbers since this day (NumPy's datetime64 epoch).
EPOCH = date(1970, 1, 1)
EPOCH_ORDINAL = EPOCH.toordinal()

# Aggregates and the report group cases without the grouping field (say, no district) under this label.
NO_GROUP = "(未填)"

Lang = Literal["zh", "en"]  # the languages verdicts are worded in
LANGS: tuple[Lang, ...] = typing.get_args(Lang)
ExecutorName = Literal["durable", "columnar"]
EXECUTORS: tuple[ExecutorName, ...] = typing.get_args(ExecutorName)
Period = Literal["month", "quarter", "year"]  # the periods aggregate targets are judged over
GroupBy = Literal["district", "department"]  # what aggregates and the report may also be grouped by
