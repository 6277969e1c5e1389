"""Synthetic cases for every kind: realistic enough to benchmark and to compare executors on.

Most cases comply; a few percent break each rule; some sit exactly on a boundary (150 m, 5%, 20 days);
some carry pauses, exemptions or no end yet. The same seed always gives the same cases.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import orjson

from engine.domain import KINDS, PAUSE_REASONS

__all__ = [
    "DEPARTMENTS",
    "DISTRICTS",
    "FEN",
    "FIRST_DAY",
    "LAST_DAY",
    "generate_cases",
    "write_cases",
]

DISTRICTS = (
    "海曙区",
    "江北区",
    "鄞州区",
    "镇海区",
    "北仑区",
    "奉化区",
    "余姚市",
    "慈溪市",
    "宁海县",
    "象山县",
)
DEPARTMENTS = (
    "市水利局",
    "市综合执法局",
    "国网宁波供电公司",
    "市财政局",
    "市市场监管局",
    "市发改委",
    "市自然资源规划局",
)
FIRST_DAY = date(2019, 1, 2)
# Bonds are rounded down and advances up to the fen, as a payer who means to comply would round.
FEN = Decimal("0.01")
LAST_DAY = date(2026, 11, 20)


class _Draw:
    """Random choices with the project's habits: boundaries more often than chance would give them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def day(self) -> date:
        return FIRST_DAY + timedelta(days=self.rng.randrange((LAST_DAY - FIRST_DAY).days))

    def stamp(self, day: date) -> str:
        """A date alone, a local timestamp, or one with an offset: systems send all three."""
        form = self.rng.random()
        if form < 0.3:
            return day.isoformat()
        moment = datetime.combine(day, time(self.rng.randrange(8, 24), self.rng.randrange(60)))
        if form < 0.8:
            return moment.isoformat(timespec="minutes")
        return (moment - timedelta(hours=8)).isoformat(timespec="seconds") + "Z"

    def after(self, start: date, typical: float, spread: float) -> date:
        days = max(0, int(self.rng.gauss(typical, spread)))
        return min(start + timedelta(days=days), date(2026, 12, 31))

    def length(self, boundary: float) -> float:
        roll = self.rng.random()
        if roll < 0.3:
            return 0.0
        if roll < 0.4:
            return self.rng.choice((boundary, boundary + 1, boundary + 0.5))
        return round(self.rng.uniform(1, boundary * 2), 1)

    def money(self, low: int, high: int) -> Decimal:
        return Decimal(self.rng.randrange(low * 100, high * 100)) / 100


def _common(draw: _Draw, kind: str, number: int, anchor: date) -> dict[str, Any]:
    case: dict[str, Any] = {
        "case_id": f"{kind[:3].upper()}-{anchor.year}-{number:07d}",
        "kind": kind,
        "district": draw.rng.choice(DISTRICTS),
        "department": draw.rng.choice(DEPARTMENTS),
    }
    if draw.chance(0.9):
        case["channel"] = draw.rng.choices(("online", "mobile", "window"), (6, 3, 1))[0]
    return case


def _pauses(draw: _Draw, start: date, end: date | None) -> list[dict[str, Any]]:
    pauses = []
    for _ in range(draw.rng.choice((0, 0, 0, 1, 1, 2))):
        begin = start + timedelta(days=draw.rng.randrange(0, 6))
        pause: dict[str, Any] = {"reason": draw.rng.choice(PAUSE_REASONS), "start": begin.isoformat()}
        if end is not None or draw.chance(0.7):
            pause["end"] = min(
                begin + timedelta(days=draw.rng.randrange(0, 8)), date(2026, 12, 31)
            ).isoformat()
        pauses.append(pause)
    return pauses


def _utility(draw: _Draw, case: dict[str, Any], boundary: float, typical: int, approval_days: int) -> None:
    applied = draw.day()
    works = draw.length(boundary)
    connected = None if draw.chance(0.05) else draw.after(applied, typical if works else 1, 1)
    case.update(
        applied_at=draw.stamp(applied),
        external_works_m=works,
        special_project=draw.chance(0.05),
        steps=draw.rng.choices((1, 2, 3), (3, 12, 1))[0],
    )
    if connected is not None:
        # A same-day end with a random time could fall before the start's time: give the date alone.
        case["connected_at"] = draw.stamp(connected) if connected > applied else connected.isoformat()
    if works and draw.chance(0.8):
        submitted = applied + timedelta(days=draw.rng.randrange(0, 3))
        approval: dict[str, Any] = {
            "mode": "commitment_filing"
            if works <= boundary and draw.chance(0.95)
            else "administrative_approval",
            "submitted_at": submitted.isoformat(),
        }
        if draw.chance(0.95):
            approval["approved_at"] = draw.after(submitted, approval_days, 2).isoformat()
        case["approval"] = approval
    case["pauses"] = _pauses(draw, applied, connected)


def _water(draw: _Draw, case: dict[str, Any]) -> None:
    _utility(draw, case, 150, 5, 5)
    case.update(customer_type=draw.rng.choices(("non_residential", "residential"), (9, 1))[0])
    case["materials"] = draw.rng.choices((0, 1, 2), (1, 15, 1))[0]


def _gas(draw: _Draw, case: dict[str, Any]) -> None:
    _water(draw, case)
    if draw.chance(0.7):
        case["max_flow_m3h"] = draw.rng.choice((10.0, 25.5, 40.0, 40.5, 80.0))
    if draw.chance(0.5):
        started = draw.day()
        works: dict[str, Any] = {"started_at": started.isoformat()}
        if draw.chance(0.9):
            works["accepted_at"] = draw.after(started, 5, 2).isoformat()
        case["internal_works"] = works


def _power(draw: _Draw, case: dict[str, Any]) -> None:
    _utility(draw, case, 160, 8, 2)
    capacity = draw.rng.choice((50.0, 100.0, 160.0, 161.0, 400.0, 800.0))
    # Small customers mostly go low voltage (task (28)); a few do not.
    small = capacity <= 160
    case["voltage"] = "low" if (small and draw.chance(0.95)) or (not small and draw.chance(0.2)) else "high"
    if draw.chance(0.8):
        case["capacity_kw"] = capacity
    if case["voltage"] == "high" and draw.chance(0.8):
        case["capacity_kva"] = draw.rng.choice((315.0, 630.0, 631.0, 1250.0))


def _procurement(draw: _Draw, case: dict[str, Any]) -> None:
    effective = draw.day()
    amount = draw.money(10_000, 5_000_000)
    rates = (Decimal(0), Decimal("0.02"), Decimal("0.05"), Decimal("0.06"))
    bond_rate = draw.rng.choices(rates, (50, 25, 22, 3))[0]
    advance_rates = (Decimal(0), Decimal("0.2"), Decimal("0.3"), Decimal("0.4"))
    advance_rate = draw.rng.choices(advance_rates, (3, 2, 50, 45))[0]
    case.update(
        procurement_method=draw.rng.choice(("tender", "non_tender")),
        category=draw.rng.choice(("goods", "services", "works")),
        contract_amount=str(amount),
        bid_deposit=str(Decimal(0) if draw.chance(0.95) else draw.money(100, 5000)),
        performance_bond=str((amount * bond_rate).quantize(FEN, ROUND_FLOOR)),
        performance_period_days=draw.rng.choice((10, 30, 31, 90, 365)),
        advance_payment=str((amount * advance_rate).quantize(FEN, ROUND_CEILING)),
        contract_effective_at=draw.stamp(effective),
        electronic=draw.chance(0.5),
        documents_fee=str(Decimal(0) if draw.chance(0.97) else Decimal(200)),
    )
    if draw.chance(0.3):
        case["ready_at"] = (effective + timedelta(days=draw.rng.randrange(0, 10))).isoformat()
    if advance_rate and draw.chance(0.95):
        case["advance_paid_at"] = draw.after(effective + timedelta(days=5), 4, 3).isoformat()


def _deregistration(draw: _Draw, case: dict[str, Any]) -> None:
    applied = draw.day()
    entity = ("company", "non_company_legal_person", "sole_proprietorship", "farmer_cooperative", "branch")
    case.update(
        procedure=draw.rng.choices(("simplified", "general"), (3, 1))[0],
        entity_type=draw.rng.choice((*entity, "individual_business")),
        commitment=draw.chance(0.4),
        applied_at=draw.stamp(applied),
    )
    if draw.chance(0.95):
        case["notice_start"] = (
            applied - timedelta(days=draw.rng.choices((19, 20, 21, 25, 30), (1, 6, 6, 6, 6))[0])
        ).isoformat()
    if draw.chance(0.9):
        case["deregistered_at"] = draw.after(applied, 3, 2).isoformat()


def _startup(draw: _Draw, case: dict[str, Any]) -> None:
    applied = draw.day()
    case.update(applied_at=draw.stamp(applied), steps=draw.rng.choices((1, 2), (19, 1))[0])
    case["fees"] = str(Decimal(0) if draw.chance(0.9) else Decimal(300))
    if draw.chance(0.97):
        case["completed_at"] = draw.after(applied, 0, 1).isoformat()


def _construction(draw: _Draw, case: dict[str, Any]) -> None:
    assigned = draw.day()
    case.update(
        project_type=draw.rng.choices(("general_enterprise_investment", "other"), (4, 1))[0],
        use=draw.rng.choice(("industrial", "warehouse", "other")),
        civil_air_defense_fee=str(Decimal(0) if draw.chance(0.9) else draw.money(1000, 90000)),
        code_assigned_at=draw.stamp(assigned),
    )
    if draw.chance(0.9):
        case["floor_area_m2"] = draw.rng.choice((1200.0, 5000.0, 5000.5, 12000.0))
    if draw.chance(0.85):
        case["completion_accepted_at"] = draw.after(assigned, 60, 10).isoformat()


def _property(draw: _Draw, case: dict[str, Any]) -> None:
    applied = draw.day()
    case.update(
        registration_type=draw.rng.choice(("non_residential_transfer", "other")),
        object_unchanged=draw.chance(0.7),
        applied_at=draw.stamp(applied),
        steps=draw.rng.choices((1, 2), (9, 1))[0],
    )
    if draw.chance(0.95):
        case["completed_at"] = (applied + timedelta(days=draw.rng.choices((0, 1), (9, 1))[0])).isoformat()


def _loan(draw: _Draw, case: dict[str, Any]) -> None:
    applied = draw.day()
    case.update(
        applied_at=draw.stamp(applied),
        steps=draw.rng.choice((1, 2, 3, 4)),
        materials=draw.rng.choice((2, 3, 4, 5)),
    )
    if draw.chance(0.95):
        case["decided_at"] = draw.after(applied, 2, 2).isoformat()


def _ccc(draw: _Draw, case: dict[str, Any]) -> None:
    applied = draw.day()
    urgent = draw.chance(0.2)
    case.update(applied_at=draw.stamp(applied), urgent=urgent)
    if draw.chance(0.95):
        # Urgent applications are mostly concluded the same day (task (55)).
        case["concluded_at"] = draw.after(applied, 0 if urgent else 1, 0.3 if urgent else 1).isoformat()


def _customs(draw: _Draw, case: dict[str, Any]) -> None:
    direction = draw.rng.choice(("import", "export"))
    case.update(
        direction=direction,
        advance_declared=draw.chance(0.5 if direction == "import" else 0.75),
        declared_at=draw.stamp(draw.day()),
    )


def _bankruptcy(draw: _Draw, case: dict[str, Any]) -> None:
    accepted = draw.day()
    case.update(
        procedure=draw.rng.choice(("simplified", "no_asset", "ordinary")), accepted_at=draw.stamp(accepted)
    )
    if draw.chance(0.85):
        case["concluded_at"] = draw.after(accepted, 120, 30).isoformat()


def _review(draw: _Draw, case: dict[str, Any]) -> None:
    negative = draw.chance(0.1)
    case.update(
        rating="negative" if negative else draw.rng.choice(("positive", "neutral")),
        reviewed_at=draw.stamp(draw.day()),
        revisited=not negative or draw.chance(0.95),
        rectified=not negative or draw.chance(0.9),
    )


_FILLERS: dict[str, Callable[[_Draw, dict[str, Any]], None]] = {
    "water_connection": _water,
    "gas_connection": _gas,
    "power_connection": _power,
    "procurement_contract": _procurement,
    "deregistration": _deregistration,
    "company_startup": _startup,
    "construction_project": _construction,
    "property_registration": _property,
    "loan": _loan,
    "ccc_exemption": _ccc,
    "customs_declaration": _customs,
    "bankruptcy_case": _bankruptcy,
    "service_review": _review,
}
_EXEMPTIBLE = {
    "procurement_contract": ("procurement.advance_30pct", "procurement.advance_within_15d"),
    "power_connection": ("power.le160kw.low_voltage",),
    "bankruptcy_case": ("bankruptcy.6_months",),
    "water_connection": ("water.steps",),
}


def generate_cases(n: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> Iterator[dict[str, Any]]:
    """``n`` case records as JSON-ready dicts, deterministic for a seed."""
    rng = random.Random(seed)
    draw = _Draw(rng)
    weights = [5 if k in ("water_connection", "gas_connection", "power_connection") else 2 for k in kinds]
    for number in range(n):
        kind = rng.choices(kinds, weights)[0]
        case = _common(draw, kind, number, FIRST_DAY)
        _FILLERS[kind](draw, case)
        anchor_value = next(v for k, v in case.items() if k.endswith("_at") and isinstance(v, str))
        case["case_id"] = f"{kind[:3].upper()}-{anchor_value[:4]}-{number:07d}"
        if kind in _EXEMPTIBLE and draw.chance(0.03):
            case["exemptions"] = [
                {"rule": rng.choice(_EXEMPTIBLE[kind]), "reason": "经主管部门批准的特殊情形"}
            ]
        yield case


def write_cases(cases: Iterable[dict[str, Any]], path: Path, chunk: int = 100_000) -> None:
    """NDJSON, or Parquet by extension; written in chunks so that millions of cases fit in memory."""
    if path.suffix == ".parquet":
        import polars as pl
        import pyarrow.parquet as pq

        writer: pq.ParquetWriter | None = None
        schema: pl.Schema | None = None
        for rows in _chunks(cases, chunk):
            # Money travels as text (exact fen); every kind's fields share one wide schema, read off the
            # first chunk (which, at this size, holds every field the generator writes).
            frame = pl.DataFrame(rows, schema=schema, strict=False, infer_schema_length=None)
            if writer is None:
                schema = frame.schema
                writer = pq.ParquetWriter(path, frame.to_arrow().schema)
            writer.write_table(frame.to_arrow())
        if writer is not None:
            writer.close()
        return
    with path.open("wb") as handle:
        for rows in _chunks(cases, chunk):
            handle.write(b"".join(orjson.dumps(row) + b"\n" for row in rows))


def _chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
