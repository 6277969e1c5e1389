"""Shared fixtures: one engine per session and a headless Chromium. The case builders are in
``tests/builders.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine import Engine


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.load()


# --- headless Chromium (the report and the watch page) -------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1400",
]


def _chromium_available() -> str | None:
    """None when Chromium and its driver are usable, else why not (after trying apt-get as root)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
            subprocess.run(
                "apt-get update && apt-get install -y chromium chromium-driver",
                shell=True,
                check=False,
                capture_output=True,
                timeout=900,
            )
        if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
            return "Chromium not installed (apt-get install chromium chromium-driver) and cannot be installed here"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed (pip install selenium)"
    )
    from selenium.webdriver.chrome.service import Service

    reason = _chromium_available()
    if reason:
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*BROWSER_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
