"""Page assembly: the sections of the report in the order an auditor reads them, with the CSS and the
few lines of JS (table sorting, drill-down) of ``report.css`` and ``report.js`` inlined, so that the
page is one file that works offline and can be mailed around."""

from __future__ import annotations

import importlib.resources
import math
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import orjson

from engine.aggregates import period_code
from engine.domain import NO_GROUP, SHANGHAI
from engine.impact import ABSENT
from engine.report.charts import (
    PALETTE,
    VERDICT_COLORS,
    Series,
    format_value,
    heatmap,
    histogram,
    line_chart,
    nice_max,
    verdict_bar,
)
from engine.report.data import DRILL_ROWS, ReportData, load_report_data, period_range
from engine.report.words import OP_ZH, PERIOD_ZH, SEVERITY_ZH, STATUS_ZH, unit_name
from engine.verdicts import CASE_VERDICTS

__all__ = ["CSS", "JS", "MAX_HEAT_COLUMNS", "MAX_LINES", "render_html", "write_report"]

MAX_LINES = 12  # group lines per aggregate chart; more would be unreadable
MAX_HEAT_COLUMNS = 30  # districts in the heatmap, the ones with most violations


def _asset(name: str) -> str:
    """A file shipped in this package (package data, so an installed wheel has it too)."""
    return importlib.resources.files("engine.report").joinpath(name).read_text(encoding="utf-8")


CSS = _asset("report.css")
JS = _asset("report.js")


def _overview(data: ReportData) -> str:
    s = data.summary
    counts = s.get("verdict_counts", {})
    verdicts = int(s.get("verdicts", 0))
    cards = [
        ("扫描案件", f"{int(s.get('input', 0)):,}", "input"),
        ("已判定", f"{verdicts:,}", "verdicts"),
        ("输入错误", f"{int(s.get('errors', 0)):,}", "errors"),
    ]
    for verdict in CASE_VERDICTS:
        n = int(counts.get(verdict, 0))
        share = f"{n / verdicts:.1%}" if verdicts else "–"
        cards.append((f"{STATUS_ZH[verdict]}", f"{n:,}<small> {share}</small>", verdict))
    card_html = "".join(
        f'<div class="card {key}" data-key="{key}"><div class="label">{label}</div>'
        f'<div class="num">{value}</div></div>'
        for label, value, key in cards
    )
    meta = [
        ("判定基准日 (as_of)", s.get("as_of", "")),
        ("规则集", s.get("ruleset", "")),
        ("工作日历", s.get("calendar", "")),
        ("执行器", s.get("engine", "")),
    ]
    if data.pack is not None:
        meta.insert(0, ("依据", f"{data.pack.manifest.document} 《{data.pack.manifest.title}》"))
    meta_html = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in meta)
    legend = "".join(
        f'<span class="key"><i style="background:{VERDICT_COLORS[v]}"></i>{STATUS_ZH[v]}</span>'
        for v in CASE_VERDICTS
    )
    return (
        '<section id="overview"><h2>概览</h2>'
        f'<div class="cards">{card_html}</div>'
        f'<div class="vbar">{verdict_bar(counts)}<div class="legend">{legend}</div></div>'
        f'<dl class="meta">{meta_html}</dl>'
        '<p class="note">案件判定: 任一强制性规则不合格为“不合格”; 仅建议性规则不合格为“警示”; '
        "有待定规则为“待定”; 其余为“通过”。输入数 = 已判定 + 输入错误。</p></section>"
    )


def _rules_table(data: ReportData) -> str:
    head = [
        ("rule", "规则 ID", "text"),
        ("title", "规则 (悬停或展开查看条文)", "text"),
        ("severity", "类别", "text"),
        ("pass", "通过", "num"),
        ("fail", "不合格", "num"),
        ("pending", "待定", "num"),
        ("exempt", "豁免", "num"),
        ("not_applicable", "不适用", "num"),
        ("rate", "合规率", "num"),
    ]
    ths = "".join(f'<th data-type="{t}" title="点击排序">{escape(label)}</th>' for _, label, t in head)
    rows = []
    for r in data.rules:
        rate = r.rate
        rate_html = (
            f'<div class="rate"><span class="rbar"><i style="width:{rate * 100:.1f}%"></i></span>{rate:.1%}</div>'
            if rate is not None
            else "–"
        )
        clause = escape(r.clause)
        detail = (
            f"<details><summary>{escape(r.title or r.rule)}</summary>"
            f'<blockquote>{clause}</blockquote><div class="ref">{escape(r.reference)}'
            f"{' · 标准 ' + escape(r.requirement) if r.requirement else ''}</div></details>"
        )
        cells = [
            f'<td class="mono" data-v="{escape(r.rule)}"><a href="#drill" data-rule="{escape(r.rule)}" '
            f'class="to-drill">{escape(r.rule)}</a></td>',
            f'<td data-v="{escape(r.title)}" title="{clause}">{detail}</td>',
            f'<td data-v="{escape(r.severity)}">{SEVERITY_ZH.get(r.severity, escape(r.severity))}</td>',
        ]
        for status in ("pass", "fail", "pending", "exempt", "not_applicable"):
            n = r.counts.get(status, 0)
            cls = ' class="bad"' if status == "fail" and n else ""
            cells.append(f'<td data-v="{n}"{cls}>{n:,}</td>')
        cells.append(f'<td data-v="{rate if rate is not None else 2}">{rate_html}</td>')
        rows.append(f'<tr data-rule="{escape(r.rule)}">{"".join(cells)}</tr>')
    return (
        '<section id="rules"><h2>按规则 <small>最差的在前; 点击表头排序</small></h2>'
        '<table id="rules-table" class="sortable"><thead><tr>'
        f"{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">合规率 = 通过 ÷ (通过 + 不合格); 待定、豁免、不适用不计入。'
        "点击规则 ID 查看不合格案件明细。</p></section>"
    )


def _periodic_section(data: ReportData) -> str:
    adjective, noun = PERIOD_ZH[data.period]
    if not data.periodic:
        return f'<section id="periodic"><h2>{adjective}合规率</h2><p class="empty">没有已判定的规则结果。</p></section>'
    labels = [label for label, _, _ in data.periodic]
    points = []
    for i, (label, passed, failed) in enumerate(data.periodic):
        judged = passed + failed
        if judged:
            rate = passed / judged
            points.append((i, rate, f"{label}: 合规率 {rate:.1%} (通过 {passed:,}, 不合格 {failed:,})", ""))
    low = min((p[1] for p in points), default=0.0)
    # Zoom in on the band where the rates are: 0–100 % would flatten every change into a line at the top.
    y_floor = max(0.0, math.floor(low * 10) / 10 - 0.1)
    chart = line_chart(
        f"compliance-{data.period}",
        labels,
        [Series("合规率", "#1f77b4", points, 2.2)],
        y_max=1.0,
        y_min=y_floor,
        share=True,
    )
    return (
        f'<section id="periodic"><h2>{adjective}合规率 <small>按案件基准日所在{noun}; 规则结果中 通过 ÷ '
        f"(通过 + 不合格); 没有已判定结果的{noun}线条断开</small></h2>{chart}</section>"
    )


def _heat_section(data: ReportData) -> str:
    if not data.heat:
        return (
            '<section id="heatmap"><h2>违规热力图</h2><p class="empty">没有不合格的规则结果。</p></section>'
        )
    by_district: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    for (district, rule), n in data.heat.items():
        by_district[district] = by_district.get(district, 0) + n
        by_rule[rule] = by_rule.get(rule, 0) + n
    districts = sorted(by_district, key=lambda d: (-by_district[d], d))[:MAX_HEAT_COLUMNS]
    rules = sorted(by_rule, key=lambda r: (-by_rule[r], r))
    note = (
        f'<p class="note">只显示不合格最多的 {MAX_HEAT_COLUMNS} 个区县 (共 {len(by_district)} 个)。</p>'
        if len(by_district) > MAX_HEAT_COLUMNS
        else ""
    )
    return (
        '<section id="heatmap"><h2>违规热力图 <small>区县 × 规则, 不合格件数</small></h2>'
        f'<div class="scroll">{heatmap(rules, districts, data.heat, data.titles)}</div>{note}</section>'
    )


def _hist_section(data: ReportData) -> str:
    if not data.histograms:
        return ""
    figures = []
    for h in data.histograms:
        share = f"{h.over / h.n:.1%}" if h.n else "–"
        figures.append(
            f'<figure><figcaption><span class="mono">{escape(h.rule)}</span> {escape(h.title)}'
            f"<br><small>n = {h.n:,}; 超限 {h.over:,} ({share})</small></figcaption>{histogram(h)}</figure>"
        )
    return (
        '<section id="histograms"><h2>用时分布 <small>已办结案件的用时 (工作日或自然日), 虚线为限值, '
        f'红色为超限</small></h2><div class="grid">{"".join(figures)}</div></section>'
    )


def _aggregate_section(data: ReportData) -> str:
    aggregates = data.summary.get("aggregates", [])
    if not aggregates:
        return '<section id="aggregates"><h2>聚合指标</h2><p class="empty">本次扫描没有聚合规则的结果。</p></section>'
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for entry in aggregates:
        by_rule.setdefault(entry["rule"], []).append(entry)
    blocks = []
    for rule_id in sorted(by_rule, key=lambda r: (-sum(e["status"] == "fail" for e in by_rule[r]), r)):
        blocks.append(_aggregate_block(rule_id, by_rule[rule_id], data))
    by = next((e.get("by") for e in aggregates if e.get("by")), None)
    how = f"每个{ {'district': '区县', 'department': '部门'}.get(by, by) }一条线" if by else "全部案件一条线"
    return (
        f'<section id="aggregates"><h2>聚合指标 <small>按期间 ({how}); 虚线为目标值, 红圈为未达标; '
        f"少于最低样本数的期间为“样本不足”, 画为空心点; 没有数值的期间线条断开; 只有样本不足期间的分组不画, "
        f"在图例下列出</small></h2>{''.join(blocks)}</section>"
    )


def _aggregate_block(rule_id: str, entries: list[dict[str, Any]], data: ReportData) -> str:
    rule = data.pack.by_id.get(rule_id) if data.pack else None
    first = entries[0]
    share = first.get("statistic") == "share"
    limit = float(first["limit"])
    op = OP_ZH.get(first.get("op", ""), first.get("op", ""))
    unit = unit_name(getattr(getattr(rule, "measure", None), "type", None))
    periods = period_range([period_code(e["period"], data.period) for e in entries], data.period)
    index = {p: i for i, p in enumerate(periods)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        groups.setdefault(e.get("group") or (NO_GROUP if e.get("by") else "全部"), []).append(e)
    # A group with no period of enough cases has nothing to judge: it is named under the legend, not drawn.
    insufficient = sorted(g for g in groups if all(e["status"] == "insufficient_data" for e in groups[g]))
    ranked = sorted(
        (g for g in groups if g not in insufficient), key=lambda g: (-sum(e["n"] for e in groups[g]), g)
    )
    shown = sorted(ranked[:MAX_LINES])
    series = []
    values = [limit]
    for k, group in enumerate(shown):
        points = []
        for e in sorted(groups[group], key=lambda e: e["period"]):
            if e.get("value") is None:
                continue
            value = float(e["value"])
            values.append(value)
            status = STATUS_ZH.get(e["status"], e["status"])
            tip = f"{group} {e['period']}: {format_value(value, share)} {unit} (n={e['n']}, {status})"
            state = {"fail": "fail", "insufficient_data": "insufficient"}.get(e["status"], "")
            points.append((index[e["period"]], value, tip, state))
        series.append(Series(group, PALETTE[k % len(PALETTE)], points))
    y_max = 1.0 if share else 4 * nice_max(max(values) * 1.05 / 4)  # four round ticks
    # Shares sit near their target (80 %, 95 %): zoom in on that band rather than draw 0–100 %.
    y_min = max(0.0, math.floor(min(values) * 10) / 10 - 0.1) if share else 0.0
    chart = (
        line_chart(
            f"agg:{rule_id}",
            periods,
            series,
            y_max=y_max,
            y_min=y_min,
            share=share,
            limit=limit,
            limit_label=f"目标 {op} {format_value(limit, share)} {unit}",
        )
        if series
        else '<p class="empty">每个分组每个期间都样本不足: 没有可画的数值。</p>'
    )
    legend = "".join(
        f'<span class="key pick" data-label="{escape(s.label)}" title="点击突出显示"><i style="background:{s.color}">'
        f"</i>{escape(s.label)}</span>"
        for s in series
    )
    if any(p[3] == "insufficient" for s in series for p in s.points):
        legend += '<span class="key hollow"><i></i>样本不足的期间</span>'
    if insufficient:
        legend += (
            f'<span class="key not-drawn" data-groups="{escape(orjson.dumps(insufficient).decode())}">'
            f"样本不足, 未画出: {escape('、'.join(insufficient))}</span>"
        )
    status_counts = {k: sum(e["status"] == k for e in entries) for k in ("pass", "fail", "insufficient_data")}
    failing = sorted(
        (e for e in entries if e["status"] == "fail"), key=lambda e: (e["period"], str(e.get("group")))
    )
    fail_rows = "".join(
        f"<tr><td>{escape(e['period'])}</td><td>{escape(str(e.get('group') or '全部'))}</td><td>{e['n']:,}</td>"
        f"<td>{format_value(float(e['value']), share)}</td><td>{op} {format_value(limit, share)}</td></tr>"
        for e in failing[:200]
    )
    fail_table = (
        f'<details><summary>未达标的 {len(failing)} 个分组</summary><table class="small"><thead><tr><th>期间</th>'
        f"<th>分组</th><th>n</th><th>值</th><th>目标</th></tr></thead><tbody>{fail_rows}</tbody></table></details>"
        if failing
        else ""
    )
    omitted = (
        f'<p class="note">只画出案件最多的 {MAX_LINES} 个分组 (共 {len(ranked)} 个)。</p>'
        if len(ranked) > MAX_LINES
        else ""
    )
    title = escape(rule.title.zh) if rule else ""
    clause = escape(rule.source.clause) if rule else ""
    return (
        f'<div class="agg" data-rule="{escape(rule_id)}"><h3><span class="mono">{escape(rule_id)}</span> {title}</h3>'
        f'<p class="clause" title="{escape(rule.source.reference) if rule else ""}">{clause}</p>'
        f'<p class="stat">分组: 达标 {status_counts["pass"]:,} · <b class="bad">未达标 {status_counts["fail"]:,}</b> · '
        f"样本不足 {status_counts['insufficient_data']:,}</p>"
        f'<div class="scroll">{chart}</div><div class="legend">{legend}</div>{omitted}{fail_table}</div>'
    )


def _drill_section(data: ReportData) -> str:
    if not data.drill:
        return '<section id="drill"><h2>不合格案件明细</h2><p class="empty">没有不合格的案件。</p></section>'
    order = [r.rule for r in data.rules if r.rule in data.drill]
    order += sorted(r for r in data.drill if r not in order)
    default = max(order, key=lambda r: data.drill[r]["total"])
    options = "".join(
        f'<option value="{escape(r)}"{" selected" if r == default else ""}>{escape(r)} — '
        f"{escape(data.titles.get(r, ''))} ({data.drill[r]['total']:,})</option>"
        for r in order
    )
    payload = orjson.dumps(data.drill).decode().replace("</", "<\\/")
    return (
        '<section id="drill"><h2>不合格案件明细 <small>每条规则按数值从大到小列出前 '
        f"{DRILL_ROWS:,} 件; 完整列表见 results.parquet</small></h2>"
        f'<div class="controls"><label>规则 <select id="drill-rule">{options}</select></label>'
        '<label>筛选 <input id="drill-filter" type="search" placeholder="案件编号或区县"></label>'
        '<span id="drill-count"></span></div>'
        '<table id="drill-table" class="sortable small"><thead><tr>'
        '<th data-type="text">案件编号</th><th data-type="text">区县</th><th data-type="num">数值</th>'
        '<th data-type="text">限值</th><th data-type="text">单位</th><th data-type="text">期限</th>'
        '<th data-type="num">扣除工作日</th></tr></thead><tbody></tbody></table>'
        f'<script id="drill-data" type="application/json">{payload}</script></section>'
    )


def _impact_section(data: ReportData) -> str:
    """What the compared pack (``scan --compare-pack``) changes: verdicts, then each rule, with cases."""
    impact = data.summary.get("impact")
    if impact is None:
        return ""

    def zh(status: str) -> str:
        return "（不在规则包中）" if status == ABSENT else STATUS_ZH.get(status, status)

    def moves(changes: list[dict[str, Any]]) -> str:
        return "；".join(f"{zh(c['from'])} → {zh(c['to'])} {c['n']:,}" for c in changes) or "无"

    rows = "".join(
        f'<tr><td class="mono">{escape(rule_id)}</td><td>{escape(data.titles.get(rule_id, ""))}</td>'
        f'<td class="num">{entry["changed"]:,}</td><td>{escape(moves(entry["changes"]))}</td>'
        f'<td class="mono small">{escape(", ".join(entry["cases"][:20]))}'
        f"{' …' if len(entry['cases']) > 20 else ''}</td></tr>"
        for rule_id, entry in impact["rules"].items()
    )
    listed = len(impact["cases_changed"])
    cases = "".join(
        f'<tr><td class="mono">{escape(c["case_id"])}</td><td>{escape(c["kind"])}</td>'
        f"<td>{zh(c['from'])}</td><td>{zh(c['to'])}</td></tr>"
        for c in impact["cases_changed"]
    )
    return (
        f'<section id="impact"><h2>规则包变更影响 <small>{escape(impact["ruleset"])} → '
        f"{escape(impact['compared_ruleset'])}</small></h2>"
        f"<p>{impact['cases']:,} 件案件中 {impact['verdicts_changed']:,} 件结论改变："
        f"{escape(moves(impact['verdict_changes']))}。</p>"
        '<table class="small"><thead><tr><th>规则</th><th>名称</th><th>改变件数</th><th>状态变化</th>'
        f"<th>案件（前 20 件）</th></tr></thead><tbody>{rows}</tbody></table>"
        f"<h3>结论改变的案件 <small>前 {listed:,} 件，全部名单见 summary.json</small></h3>"
        '<table class="small"><thead><tr><th>案件编号</th><th>类型</th><th>原结论</th><th>新结论</th></tr>'
        f"</thead><tbody>{cases}</tbody></table></section>"
    )


def _errors_section(data: ReportData) -> str:
    total = int(data.summary.get("errors", 0))
    if not total:
        return '<section id="errors"><h2>输入错误</h2><p class="empty">没有输入错误。</p></section>'
    rows = "".join(
        f"<tr><td>{escape(Path(str(e.get('file', ''))).name)}</td><td>{e.get('line', '')}</td>"
        f'<td class="mono">{escape(str(e.get("case_id") or ""))}</td><td class="mono">{escape(str(e.get("path", "")))}</td>'
        f"<td>{escape(str(e.get('message', '')))}</td></tr>"
        for e in data.errors
    )
    more = f"; 此处列出前 {len(data.errors)} 条, 全部见 errors.jsonl" if total > len(data.errors) else ""
    return (
        f'<section id="errors"><h2>输入错误 <small>{total:,} 条{more}</small></h2>'
        '<table class="small"><thead><tr><th>文件</th><th>行</th><th>案件编号</th><th>路径</th><th>错误</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def render_html(data: ReportData) -> str:
    """The whole page as one string: sections in the order an auditor reads them."""
    s = data.summary
    title = data.pack.manifest.title if data.pack else "营商环境"
    # Asia/Shanghai, as as_of is, and said so: a bare time would be read as local by every reader.
    generated = f"{datetime.now(SHANGHAI):%Y-%m-%d %H:%M} ({SHANGHAI.key})"
    nav = "".join(
        f'<a href="#{anchor}">{label}</a>'
        for anchor, label in [
            ("overview", "概览"),
            ("rules", "按规则"),
            ("periodic", f"{PERIOD_ZH[data.period][0]}合规率"),
            ("heatmap", "热力图"),
            ("histograms", "用时分布"),
            ("aggregates", "聚合指标"),
            ("drill", "不合格明细"),
            *([("impact", "变更影响")] if "impact" in s else []),
            ("errors", "输入错误"),
        ]
    )
    body = "".join(
        [
            _overview(data),
            _rules_table(data),
            _periodic_section(data),
            _heat_section(data),
            _hist_section(data),
            _aggregate_section(data),
            _drill_section(data),
            _impact_section(data),
            _errors_section(data),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>合规审计报告 · {escape(str(s.get('as_of', '')))}</title><style>\n{CSS}</style></head><body>"
        f"<header><h1>营商环境服务标准合规审计报告</h1><p>{escape(title)} · 判定基准日 "
        f"{escape(str(s.get('as_of', '')))} · 生成于 {generated}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        f"<footer>casecheck · {escape(str(s.get('ruleset', '')))} · {escape(str(s.get('calendar', '')))}</footer>"
        f"<script>\n{JS}</script></body></html>"
    )


def write_report(out_dir: Path) -> Path:
    """Writes ``out_dir/report.html`` from the scan outputs in ``out_dir`` and returns its path."""
    out_dir = Path(out_dir)
    data = load_report_data(out_dir)
    path = out_dir / "report.html"
    path.write_text(render_html(data), encoding="utf-8")
    return path
