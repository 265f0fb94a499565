"""The KPI dashboard in a real browser: CSAT's chart with its 90 % target line, named for
assistive technology, its data table, the CSV link, and no serious accessibility violation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from ccshared.events import new_event
from ccshared.service import runtime_of
from feedback.consumers.tickets import ticket_events
from feedback.db.facts import FactChanges
from tests.browser.conftest import BrowserStack, screenshot, serious_violations
from tests.integration.feedback.tickets import resolved


async def _resolved_with_csat(stack: BrowserStack, scores: list[int], queue_id: str) -> None:
    runtime = runtime_of(stack.apps["feedback"])
    now = datetime.now(UTC)
    for score in scores:
        event = resolved(
            uuid.uuid4(), uuid.uuid4(), now - timedelta(hours=2), now, queue_id=queue_id
        )
        async with runtime.engine.begin() as conn:
            await ticket_events(runtime)(conn, new_event(event, producer="router"), event)
            facts = FactChanges(conn)
            before = await facts.current(event.ticket_id)
            changes = {"survey_sent": True, "answered": True, "csat": score}
            await facts.update(event.ticket_id, changes, before)
            await facts.flush()


async def test_a_supervisor_opens_the_kpi_dashboard_and_reads_csat_against_its_target(
    stack: BrowserStack, page: Page
) -> None:
    await _resolved_with_csat(stack, [5, 5, 4, 2], "billing")
    await _resolved_with_csat(stack, [5, 4], "complaints")
    await stack.console_user("sam", "supervisor")
    await stack.sign_in(page, "sam")
    await page.get_by_role("link", name="KPIs").click()
    await expect(page.get_by_role("heading", name="KPIs", exact=True)).to_be_visible()
    await page.get_by_label("By").select_option("queue")
    await page.get_by_role("button", name="Show").click()
    chart = page.get_by_role("img", name="CSAT · Queue")
    await expect(chart).to_be_visible()
    target = page.locator('#chart-csat line.target[data-target="0.9"]')
    await expect(target).to_have_count(1)
    table = page.locator("#chart-csat table")
    await expect(table.get_by_role("row", name="billing 75.0 % Below target")).to_be_visible()
    await expect(table.get_by_role("row", name="complaints 100.0 % Met")).to_be_visible()
    csv_link = page.get_by_role("link", name="Download CSV")
    async with page.expect_download() as download_info:
        await csv_link.click()
    download = await download_info.value
    assert download.suggested_filename.startswith("kpis_queue_")
    assert await serious_violations(page) == []
    await screenshot(page, "kpis")
