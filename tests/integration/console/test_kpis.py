"""The KPI dashboard over the real feedback service: figures by day, queue, agent and channel
as inline SVG charts with their targets and a data table each, and the CSV export."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from tests.integration.console.conftest import Console
from tests.integration.console.supervisor_stack import Stack, supervisor_stack
from tests.integration.feedback.tickets import resolved


async def _resolve_with_csat(stack: Stack, csat: list[int], queue_id: str = "billing") -> None:
    now = datetime.now(UTC)
    for score in csat:
        event = resolved(
            uuid.uuid4(), uuid.uuid4(), now - timedelta(hours=1), now, queue_id=queue_id
        )
        await stack.feedback_event(event, csat=score)


def _chart(html: str, field: str) -> str:
    match = re.search(
        rf'<figure class="card kpi-chart" id="chart-{field}">.*?</figure>', html, re.S
    )
    assert match, f"no chart of {field}"
    return match.group(0)


async def test_the_dashboard_draws_csat_against_its_90_percent_target_with_a_data_table(
    console_factory: Callable[..., Awaitable[Console]], kafka_bootstrap: str
) -> None:
    async with supervisor_stack(console_factory, kafka_bootstrap) as stack:
        await _resolve_with_csat(stack, [5, 5, 4, 2])  # 3 of 4 satisfied: 75 %
        browser = await stack.signed_in("sam", "supervisor")
        today = datetime.now(UTC).date().isoformat()
        page = await browser.get("/kpis", params={"from": today, "to": today, "group_by": "day"})
        assert page.status_code == 200, page.text
        assert 'data-kpi="csat">75.0 %' in page.text
        chart = _chart(page.text, "csat")
        svg = re.search(r"<svg .*?</svg>", chart, re.S)
        assert svg
        assert 'role="img"' in svg.group(0)
        assert re.search(r"<title id=\"chart-csat-title\">CSAT", svg.group(0))
        assert "target 90.0 %" in svg.group(0)  # in the <desc> and as the line's label
        target = re.search(r'<line class="target" data-target="0.9"[^>]*y1="([\d.]+)"', chart)
        assert target, chart
        bar = re.search(r'<rect class="bar below"[^>]*y="([\d.]+)"', chart)
        assert bar, chart  # 75 % is drawn below the target, and marked so
        assert float(bar.group(1)) > float(target.group(1))  # lower on the chart (SVG y down)
        table = re.search(r'<table class="kpi-table">.*?</table>', chart, re.S)
        assert table
        assert f'<th scope="row">{today}</th><td class="num">75.0 %</td>' in table.group(0)
        assert "Below target" in table.group(0)
        # FCR's charts carry their 85 % target too.
        assert 'data-target="0.85"' in _chart(page.text, "fcr_answered")
        assert 'data-target="0.85"' in _chart(page.text, "fcr_observed")
        # No script draws anything: the page holds no inline script and loads no chart library.
        assert "<script>" not in page.text


async def test_the_dashboard_groups_by_queue_and_shows_chinese(
    console_factory: Callable[..., Awaitable[Console]], kafka_bootstrap: str
) -> None:
    async with supervisor_stack(console_factory, kafka_bootstrap) as stack:
        await _resolve_with_csat(stack, [5], queue_id="billing")
        await _resolve_with_csat(stack, [1], queue_id="complaints")
        browser = await stack.signed_in("sam", "supervisor")
        browser.cookies.set("cc_lang", "zh")
        today = datetime.now(UTC).date().isoformat()
        page = await browser.get("/kpis", params={"from": today, "to": today, "group_by": "queue"})
        assert page.status_code == 200
        table = re.search(r'<table class="kpi-table">.*?</table>', _chart(page.text, "csat"), re.S)
        assert table
        assert '<th scope="row">billing</th><td class="num">100.0 %</td>' in table.group(0)
        assert '<th scope="row">complaints</th><td class="num">0.0 %</td>' in table.group(0)
        assert "客户满意度" in page.text


async def test_the_csv_export_downloads_feedbacks_figures_for_the_same_filters(
    console_factory: Callable[..., Awaitable[Console]], kafka_bootstrap: str
) -> None:
    async with supervisor_stack(console_factory, kafka_bootstrap) as stack:
        await _resolve_with_csat(stack, [5, 1], queue_id="billing")
        browser = await stack.signed_in("sam", "supervisor")
        today = datetime.now(UTC).date().isoformat()
        filters = {"from": today, "to": today, "group_by": "queue"}
        page = await browser.get("/kpis", params=filters)
        assert f'href="/kpis.csv?from={today}&amp;to={today}&amp;group_by=queue"' in page.text
        answer = await browser.get("/kpis.csv", params=filters)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        disposition = answer.headers["content-disposition"]
        assert disposition == f'attachment; filename="kpis_queue_{today}_{today}.csv"'
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        billing = next(r for r in rows if r["queue"] == "billing")
        assert float(billing["csat"]) == 0.5
        assert billing["tickets"] == "2"
        # What feedback itself answers for these filters, byte for byte.
        direct = await stack.feedback.get("/v1/kpis.csv", params=filters)
        assert answer.content == direct.content


async def test_a_wrong_range_is_shown_beside_its_field(
    console_factory: Callable[..., Awaitable[Console]], kafka_bootstrap: str
) -> None:
    async with supervisor_stack(console_factory, kafka_bootstrap) as stack:
        browser = await stack.signed_in("sam", "supervisor")
        page = await browser.get("/kpis", params={"from": "2026-12-03", "to": "2026-11-01"})
        assert page.status_code == 422
        assert re.search(r'id="error-to">must not be before from<', page.text), page.text
        assert 'aria-describedby="error-to"' in page.text
