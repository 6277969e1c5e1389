"""The district office's /watch page in headless Chromium (issue 17): it shows what /v1/watch says, sorts,
and a new card appears without a reload (it reads /v1/alerts/stream)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from engine.domain import SHANGHAI
from tests.builders import water
from tests.test_api import Server, running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("watch-page")
    with running(work, f"sqlite:///{work}/verdicts.db", workers=1) as live:
        yield live


def open_case(case_id: str, applied: datetime, district: str) -> dict[str, Any]:
    return water(case_id=case_id, applied_at=applied.isoformat(), connected_at=None, district=district)


def wait_for(check: Any, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.1)


def test_watch_page_shows_the_watch_list_and_new_cards_live(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    now = datetime.now(SHANGHAI)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for case_id, district in (("PAGE-1", "海曙区"), ("PAGE-2", "象山县")):
            answer = client.put(f"/v1/cases/{case_id}", json=open_case(case_id, now, district))
            assert answer.status_code == 200, answer.text
        listed = client.get("/v1/watch").json()["cases"]
        browser.get(f"{server.url}/watch")
        assert browser.title == "在办案件时限预警"

        def rows() -> list[Any]:
            return browser.find_elements(By.CSS_SELECTOR, "#cases tbody tr")

        wait_for(lambda: len(rows()) == len(listed))
        assert sorted(row.get_attribute("data-case-id") for row in rows()) == sorted(
            c["case_id"] for c in listed
        )
        # Sorting by district (click the header twice: descending) puts 象山县 before 海曙区 in code order.
        header = browser.find_element(By.CSS_SELECTOR, 'th[data-key="district"]')
        header.click()
        ascending = [row.get_attribute("data-case-id") for row in rows()]
        header.click()
        assert [row.get_attribute("data-case-id") for row in rows()] == ascending[::-1]
        assert header.get_attribute("aria-sort") == "descending"
        wait_for(lambda: "实时更新中" in browser.find_element(By.ID, "status").text)
        # A case weeks past its 2-working-day limit: its red card is raised by the PUT and streamed.
        overdue = open_case("PAGE-LATE", now - timedelta(days=30), "海曙区")
        assert client.put("/v1/cases/PAGE-LATE", json=overdue).status_code == 200
        card = wait_for(
            lambda: browser.find_elements(
                By.CSS_SELECTOR, 'li[data-card-id="red:water.no_external.2wd:PAGE-LATE"]'
            )
        )
        assert "PAGE-LATE" in card[0].text and "超时" in card[0].text
        problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == []


def test_watch_page_is_self_contained(server: Server) -> None:
    page = httpx.get(f"{server.url}/watch").text
    assert "http://" not in page and "https://" not in page
    assert '<html lang="zh-CN">' in page
