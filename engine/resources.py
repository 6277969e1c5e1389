"""Where the packaged data lives: the checkout's folders, or their copies inside an installed wheel."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``rules`` or ``calendars``: beside the package in a checkout, under ``engine/_data`` in a wheel."""
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    return _PACKAGE / "_data" / name
