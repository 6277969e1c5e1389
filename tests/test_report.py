"""The HTML audit report: rendered from a real scan, checked as a file and in headless Chromium.

The browser tests are what matter to an auditor (does it open, are the charts drawn, does the drill-down
list the right cases); the plain tests guard the promises that need no browser: no external resources
(the page must work offline) and a bounded size however many cases were scanned.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import polars as pl
import pytest

from engine import Engine
from engine.generate import generate_cases, write_cases
from engine.packs import load_pack
from engine.reading import input_files
from engine.report import DRILL_ROWS, ReportData, failing_order, render_html, write_report
from engine.scan import Scanner

AS_OF = "2026-11-24"


def scan_and_report(out: Path, n: int, seed: int, period: str = "month") -> Path:
    """A real scan of generated cases (columnar engine, grouped by district), then the report."""
    cases = out / "cases.ndjson"
    out.mkdir(parents=True, exist_ok=True)
    write_cases(generate_cases(n, seed=seed), cases)
    Scanner(Engine.load(executor="columnar"), out / "scan", AS_OF, period, by="district").scan(  # type: ignore[arg-type]
        input_files([cases])
    )
    return write_report(out / "scan")


def svgs(html: str) -> dict[str, ET.Element]:
    """The page's charts, parsed as XML, by their data-chart name."""
    charts = [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", html, re.DOTALL)]
    return {c.get("data-chart", ""): c for c in charts}


def polylines(chart: ET.Element, label: str | None = None) -> list[list[tuple[float, float]]]:
    """The points of each polyline of a chart (of one series' group, if labelled)."""
    groups = [g for g in chart.iter("g") if label is None or g.get("data-label") == label]
    return [
        [tuple(map(float, xy.split(","))) for xy in line.get("points", "").split()]  # type: ignore[misc]
        for g in groups
        for line in g.iter("polyline")
    ]


def tick_labels(chart: ET.Element) -> list[str]:
    """The x axis labels (the ticks written below the plot), left to right."""
    bottom = max(float(t.get("y", 0)) for t in chart.iter("text") if t.get("class") == "tick")
    return [
        t.text or ""
        for t in chart.iter("text")
        if t.get("class") == "tick" and float(t.get("y", 0)) == bottom
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scan_and_report(tmp_path_factory.mktemp("report"), 4_000, seed=11)


# --- plain tests -------------------------------------------------------------------------------------


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    external = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.IGNORECASE)
    assert external == []
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", text, re.IGNORECASE)
    assert "<script src" not in text and '<link rel="stylesheet"' not in text
    # Chinese page with the rule ids visible, and the overview figures of summary.json.
    summary = orjson.loads((report.parent / "summary.json").read_bytes())
    assert '<html lang="zh-CN">' in text
    for rule_id in summary["rules"]:
        assert f">{rule_id}</a>" in text
    for key in ("as_of", "ruleset", "calendar"):
        assert summary[key] in text
    assert f"{summary['input']:,}" in text


def test_report_size_is_bounded_on_a_large_scan(tmp_path: Path) -> None:
    # 50,000 cases: many rules pass DRILL_ROWS failures' worth of rows only by capping, the charts
    # are aggregated; the page must stay far below the 10 MB an auditor's mail and browser cope with.
    report = scan_and_report(tmp_path, 50_000, seed=5)
    start = time.perf_counter()
    write_report(report.parent)
    seconds = time.perf_counter() - start
    size = report.stat().st_size
    print(f"report of 50,000 cases: {size / 1e6:.2f} MB in {seconds:.2f} s")
    assert size < 10_000_000
    assert seconds < 10


def _entry(period: str, group: str, value: float | None, status: str, n: int = 50) -> dict[str, object]:
    return {"rule": "services.online_share", "kind": "*", "statistic": "share", "period": period,
            "group": group, "by": "district", "n": n, "in_scope": n, "open": 0, "value": value,
            "op": "ge", "limit": 0.8, "status": status}  # fmt: skip


def test_aggregate_lines_break_at_missing_periods_and_skip_insufficient_groups() -> None:
    # 海曙区 has values in 2026-01, 02, 04 and 05 (none in 03); 江北区 only too few cases, twice.
    entries = [
        _entry("2026-01", "海曙区", 0.9, "pass"),
        _entry("2026-02", "海曙区", 0.7, "fail"),
        _entry("2026-04", "海曙区", 0.85, "pass"),
        _entry("2026-05", "海曙区", 0.95, "pass"),
        _entry("2026-01", "江北区", 1.0, "insufficient_data", n=3),
        _entry("2026-05", "江北区", 0.5, "insufficient_data", n=2),
    ]
    summary = {"as_of": AS_OF, "ruleset": "r", "calendar": "c", "period": "month", "aggregates": entries}
    data = ReportData(summary, [], "month", [], {}, [], {}, [], load_pack())
    html = render_html(data)
    chart = svgs(html)["agg:services.online_share"]
    # Every month from the first to the last is on the axis, the empty March included.
    assert tick_labels(chart) == ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]
    # Two lines, Jan–Feb and Apr–May: none across March.
    lines = polylines(chart, "海曙区")
    assert [len(line) for line in lines] == [2, 2]
    assert lines[0][1][0] < lines[1][0][0]
    # 江北区 has nothing but insufficient data: not drawn, and named under the legend.
    assert [g.get("data-label") for g in chart.iter("g")] == ["海曙区"]
    assert chart.get("data-series") == "1"
    assert "样本不足, 未画出: 江北区" in html


def test_report_follows_the_scan_period(tmp_path: Path) -> None:
    html = scan_and_report(tmp_path, 1_500, seed=7, period="quarter").read_text(encoding="utf-8")
    assert "季度合规率" in html and "月度合规率" not in html
    charts = svgs(html)
    assert "compliance-month" not in charts
    labels = tick_labels(charts["compliance-quarter"])
    assert labels and all(re.fullmatch(r"\d{4}-Q[1-4]", label) for label in labels)
    summary = orjson.loads((tmp_path / "scan" / "summary.json").read_bytes())
    assert summary["period"] == "quarter"
    assert {e["period"][4:6] for e in summary["aggregates"]} == {"-Q"}


def test_requirements_use_the_rules_units_and_the_verdicts_words(report: Path) -> None:
    text = report.read_text(encoding="utf-8")

    def requirement(rule_id: str) -> str:
        row = re.search(rf'<tr data-rule="{re.escape(rule_id)}">(.*?)</tr>', text, re.DOTALL)
        assert row, rule_id
        found = re.search(r"标准 ([^<]*)</div>", row.group(1))
        assert found, rule_id
        return found.group(1)

    # 6 months (民法典 第202条), not 6 days; documents are 份 as in the verdicts (“实际2份”).
    assert requirement("bankruptcy.6_months") == "≤ 6个月"
    assert requirement("water.materials") == "≤ 1份"
    assert requirement("water.no_external.2wd") == "≤ 2个工作日"


def test_documents_read_as_in_the_verdicts_in_the_drill_down(report: Path) -> None:
    # The report names units with the verdicts' words: its own table once said 件 for documents.
    text = report.read_text(encoding="utf-8")
    found = re.search(r'<script id="drill-data" type="application/json">(.*?)</script>', text, re.DOTALL)
    assert found
    drill = orjson.loads(found.group(1))
    documents = [rule.id for rule in load_pack().rules if getattr(rule, "unit", None) == "documents"]
    rows = [row for rule_id in documents for row in drill.get(rule_id, {"rows": []})["rows"]]
    assert rows and {row[4] for row in rows} == {"份"}
    case_id, _, value, *_ = rows[0]
    with (report.parent.parent / "cases.ndjson").open(encoding="utf-8") as cases:
        case = next(line for line in cases if f'"{case_id}"' in line)
    messages = [r.message for r in Engine.load().check(case, as_of=AS_OF).results if r.rule in documents]
    assert any(f"实际{value}份" in message for message in messages), messages


def test_generation_time_is_shanghai_time_with_its_zone(report: Path) -> None:
    found = re.search(
        r"生成于 (\d{4}-\d\d-\d\d \d\d:\d\d) \(Asia/Shanghai\)", report.read_text(encoding="utf-8")
    )
    assert found
    shown = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    # Written by the module fixture a little earlier; UTC (8 hours off) would be far outside this.
    assert timedelta(0) <= datetime.now(ZoneInfo("Asia/Shanghai")) - shown < timedelta(minutes=30)


# --- headless Chromium -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(browser, report: Path):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    browser.get(report.as_uri())
    load_seconds = time.perf_counter() - start
    print(f"report loaded in {load_seconds:.2f} s")
    return browser


def test_page_loads_without_console_errors(page) -> None:  # type: ignore[no-untyped-def]
    assert page.execute_script("return document.readyState") == "complete"
    problems = [e for e in page.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert problems == []
    assert page.title.startswith("合规审计报告")


def test_charts_are_drawn_with_data(page, report: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    summary = orjson.loads((report.parent / "summary.json").read_bytes())
    monthly = page.find_element(By.CSS_SELECTOR, 'svg[data-chart="compliance-month"]')
    lines = monthly.find_elements(By.CSS_SELECTOR, "polyline")
    assert sum(len(line.get_attribute("points").split()) for line in lines) > 12
    assert monthly.size["width"] > 300 and monthly.size["height"] > 100  # laid out, not just in the DOM

    heat = page.find_element(By.CSS_SELECTOR, 'svg[data-chart="heatmap"]')
    cells = heat.find_elements(By.CSS_SELECTOR, "g.cell")
    total = sum(int(c.get_attribute("data-n")) for c in cells)
    assert total == sum(counts.get("fail", 0) for counts in summary["rules"].values())

    hists = page.find_elements(By.CSS_SELECTOR, 'svg[data-chart="hist"]')
    assert hists
    for hist in hists:
        assert hist.find_elements(By.CSS_SELECTOR, "line.limit")
        assert any(
            float(r.get_attribute("height")) > 0 for r in hist.find_elements(By.CSS_SELECTOR, "rect.bar")
        )

    # A chart for each aggregate rule with a value judged on enough cases; the others say why not.
    judged = [a for a in summary["aggregates"] if a["status"] != "insufficient_data"]
    charts = page.find_elements(By.CSS_SELECTOR, 'svg[data-chart^="agg:"]')
    assert {c.get_attribute("data-chart")[4:] for c in charts} == {a["rule"] for a in judged}
    assert len(page.find_elements(By.CSS_SELECTOR, ".agg")) == len({a["rule"] for a in summary["aggregates"]})
    # --by district: one line per district with a judged value (capped at MAX_LINES, the generator uses fewer).
    for chart in charts:
        groups = {a["group"] for a in judged if a["rule"] == chart.get_attribute("data-chart")[4:]}
        assert int(chart.get_attribute("data-series")) == len(groups)


def test_rules_table_is_sorted_worst_first_and_sortable(page) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    def rates() -> list[float]:
        rows = page.find_elements(By.CSS_SELECTOR, "#rules-table tbody tr")
        return [float(r.find_elements(By.TAG_NAME, "td")[-1].get_attribute("data-v")) for r in rows]

    assert rates() == sorted(rates())
    header = page.find_elements(By.CSS_SELECTOR, "#rules-table th")[-1]
    page.execute_script("arguments[0].click()", header)  # ascending
    page.execute_script("arguments[0].click()", header)  # descending
    assert rates() == sorted(rates(), reverse=True)


def test_drill_down_lists_the_failing_cases_of_a_rule(page, report: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    results = pl.scan_parquet(report.parent / "results.parquet")
    fails = results.filter(pl.col("status") == "fail")
    counts = fails.group_by("rule").len().collect().sort(["len", "rule"], descending=[False, False])
    rule = counts["rule"][counts.height // 2]  # a rule from the middle, not the default selection
    expected = failing_order(fails.filter(pl.col("rule") == rule)).head(DRILL_ROWS).collect()

    Select(page.find_element(By.ID, "drill-rule")).select_by_value(rule)
    rows = page.find_elements(By.CSS_SELECTOR, "#drill-table tbody tr")
    shown = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [r[0] for r in shown] == expected["case_id"].to_list()
    verdicts = pl.read_parquet(report.parent / "verdicts.parquet").select("case_id", "district")
    district = dict(verdicts.iter_rows())
    for row, (case_id, limit) in zip(shown, expected.select("case_id", "limit").iter_rows(), strict=True):
        assert row[1] == (district[case_id] or "(未填)")
        assert row[3] == limit
    assert (
        f"共 {counts.filter(pl.col('rule') == rule)['len'][0]} 件"
        in page.find_element(By.ID, "drill-count").text
    )


def test_overview_screenshot(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.refresh()  # the default state: earlier tests sorted the tables and scrolled
    page.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "overview.png"
    assert page.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"overview screenshot: {shot}")


def test_report_of_a_scan_with_only_errors(tmp_path: Path) -> None:
    # Nothing judged: every chart section says so instead of failing, and the error is listed.
    cases = tmp_path / "broken.ndjson"
    cases.write_text('{"case_id": "X-1", "kind": "water_connection"}\nnot json\n', encoding="utf-8")
    Scanner(Engine.load(executor="columnar"), tmp_path / "scan", AS_OF).scan(input_files([cases]))
    text = write_report(tmp_path / "scan").read_text(encoding="utf-8")
    assert "没有已判定的规则结果" in text and "没有不合格的案件" in text
    assert "输入错误 <small>2 条" in text and "broken.ndjson" in text


def test_the_drill_down_is_in_rule_order_whatever_order_polars_groups_in(tmp_path: Path) -> None:
    """The report is the same file for the same scan outputs: its drill-down lists the rules by id."""
    from engine.report import load_report_data

    report = scan_and_report(tmp_path, 3000, seed=11)
    drill = load_report_data(report.parent).drill
    assert len(drill) > 5
    assert list(drill) == sorted(drill)
