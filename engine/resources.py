"""Where data lives: the user's data directory first, then the data shipped with casecheck.

Rule keepers run an installed casecheck, so next year's holiday notice or a changed pack goes into a data
directory of their own (``CASECHECK_DATA``, or ``--data-dir`` on every command), laid over the copies in
the checkout or the wheel: a file there adds to the shipped ones or replaces the one of the same name.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_DATA", "data_dirs", "local_data_dir", "shipped_dir", "use_data_dir", "year_file"]

ENV_DATA = "CASECHECK_DATA"
_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """``rules`` or ``calendars`` as shipped: beside the package in a checkout, under ``engine/_data`` in a
    wheel."""
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    return _PACKAGE / "_data" / name


def local_data_dir() -> Path | None:
    """The user's data directory (``CASECHECK_DATA``), if one is set."""
    value = os.environ.get(ENV_DATA)
    return Path(value).resolve() if value else None


def use_data_dir(folder: Path) -> None:
    """Make ``folder`` the data directory of this process and of the processes it starts (scan and
    service workers inherit the environment); refused if it is not a folder."""
    if not folder.is_dir():
        raise FileNotFoundError(f"data directory {folder} does not exist or is not a folder")
    os.environ[ENV_DATA] = str(folder.resolve())


def data_dirs(name: str) -> list[Path]:
    """Where ``rules`` or ``calendars`` data is looked up, in order: the data directory's, then shipped."""
    local = local_data_dir()
    return [local / name, shipped_dir(name)] if local is not None else [shipped_dir(name)]


def year_file(year: int) -> str:
    """Where a rule keeper puts a year's file: ``calendars/cn/<year>.toml`` of the data directory."""
    local = local_data_dir()
    if local is not None:
        return str(local / "calendars" / "cn" / f"{year}.toml")
    return f"calendars/cn/{year}.toml in a data directory (set CASECHECK_DATA or pass --data-dir)"
