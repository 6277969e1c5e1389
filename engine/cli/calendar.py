"""The ``calendar`` commands: is-workday, between, add, info, validate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.calendar import load_calendar, notice_paths, notices_in_force, overlay_names
from engine.errors import (
    CasecheckError,
)
from engine.resources import local_data_dir, year_file

if TYPE_CHECKING:
    pass


from engine.cli.common import (
    DataDirOption,
    OverlayOption,
    calendar_app,
    fail,
    out,
)

__all__ = ["calendar_add", "calendar_between", "calendar_info", "calendar_is_workday", "calendar_validate"]


def _calendar_call(method: str, overlay: str | None, *args: Any) -> Any:
    """A calendar method, with the calendar (and its overlay) loaded inside, so that a bad overlay is a
    user error like a bad date."""
    try:
        return getattr(load_calendar(overlay), method)(*args)
    except (CasecheckError, OSError) as exc:
        fail(str(exc))


@calendar_app.command("is-workday")
def calendar_is_workday(day: str, overlay: OverlayOption = None, data_dir: DataDirOption = None) -> None:
    """Whether DAY is a working day (weekends, statutory holidays and make-up days considered)."""
    answer = _calendar_call("is_working_day", overlay, day)
    out.print(f"{day}: {'working day 工作日' if answer else 'day off 休息日'}")


@calendar_app.command("between")
def calendar_between(
    start: str, end: str, overlay: OverlayOption = None, data_dir: DataDirOption = None
) -> None:
    """Working days d with START < d ≤ END (the start day is not counted, 民法典 第201条)."""
    count = _calendar_call("working_days_between", overlay, start, end)
    out.print(f"{count} working days after {start} up to {end}")


@calendar_app.command("add")
def calendar_add(day: str, n: int, overlay: OverlayOption = None, data_dir: DataDirOption = None) -> None:
    """The N-th working day after DAY (a deadline of N working days)."""
    result = _calendar_call("add_working_days", overlay, day, n)
    out.print(f"{n} working days after {day}: {result}")


@calendar_app.command("info")
def calendar_info(data_dir: DataDirOption = None) -> None:
    """The calendar in force: covered years, version, where each year's file comes from, the overlays."""
    try:
        index = load_calendar()
    except CasecheckError as exc:
        fail(str(exc))
    local = local_data_dir()
    out.print(f"{index.version}: {index.first} – {index.last}", highlight=False)
    for path in notice_paths():
        origin = "data directory" if local is not None and path.is_relative_to(local) else "shipped"
        out.print(f"  {path.stem}: {origin} {path}", markup=False, highlight=False)
    overlays = overlay_names()
    out.print(f"overlays: {', '.join(f'{name} ({path})' for name, path in overlays.items()) or 'none'}")
    out.print(f"the next year's file: {year_file(index.last.year + 1)}", markup=False, highlight=False)


@calendar_app.command("validate")
def calendar_validate(
    file: Annotated[Path, typer.Argument(help="A year file (<year>.toml) or an overlay file.")],
    data_dir: DataDirOption = None,
) -> None:
    """Check a year or overlay file and show the days it flips against the calendar in force. Exit 2 if
    the file is invalid."""
    import numpy as np

    from engine.calendar import Overlay, build_index, changed_days, read_calendar_file

    if not file.is_file():
        fail(f"no such file: {file}")
    try:
        parsed = read_calendar_file(file)
        current = load_calendar()
        raw = file.read_bytes()
        if isinstance(parsed, Overlay):
            notices = notices_in_force()
            proposed = build_index(notices, (file.stem, parsed, raw))
        else:
            notices = [(n, b) for n, b in notices_in_force() if n.year != parsed.year]
            years = sorted([parsed.year, *(n.year for n, _ in notices)])
            if years != list(range(years[0], years[-1] + 1)):
                fail(
                    f"{file}: {parsed.year} would leave a gap: the calendar covers {current.covered[0]}–"
                    f"{current.covered[1]}, so the next year's file is {current.covered[1] + 1}.toml"
                )
            proposed = build_index([*notices, (parsed, raw)])
    except (CasecheckError, OSError) as exc:
        fail(str(exc))
    if isinstance(parsed, Overlay):
        out.print(f"ok: overlay {file.stem}: {parsed.description}", markup=False, highlight=False)
    else:
        source = " ".join(x for x in (parsed.notice, parsed.number, parsed.url) if x)
        out.print(f"ok: {parsed.year}: {source}", markup=False, highlight=False)
        if not current.first.year <= parsed.year <= current.last.year:
            year = np.arange(f"{parsed.year}-01-01", f"{parsed.year + 1}-01-01", dtype="datetime64[D]")
            out.print(
                f"adds {parsed.year}: {int(proposed.is_working_day(year).sum())} working days, {len(parsed.days_off())} announced days "
                f"off, {len(parsed.make_up_workdays())} make-up working days",
                highlight=False,
            )
    flips = changed_days(current, proposed)
    out.print(f"{len(flips)} day(s) change against {current.version}:", highlight=False)
    for day, working in flips:
        change = "day off → working day" if working else "working day → day off"
        out.print(f"  {day} {day:%a}: {change}", highlight=False)
    out.print(f"version with this file: {proposed.version}", highlight=False)
