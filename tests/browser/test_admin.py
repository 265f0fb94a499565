"""The admin pages in a real browser: a supervisor edits the routing policy, sees the router's
error beside the step it names, and nothing is saved."""

from __future__ import annotations

import json

from playwright.async_api import Page, expect

from tests.browser.conftest import BrowserStack, screenshot, serious_violations


async def test_a_supervisor_edits_the_routing_policy_and_sees_the_field_error(
    stack: BrowserStack, page: Page
) -> None:
    before = (await stack.router.client.get("/v1/routing-policy")).json()
    await stack.console_user("sam", "supervisor")
    await stack.sign_in(page, "sam")
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_role("link", name="Routing policy").first.click()
    editor = page.get_by_label("The document (JSON)")
    document = json.loads(await editor.input_value())
    document["steps"][0]["queue_id"] = "nowhere"
    await editor.fill(json.dumps(document, indent=2))
    await page.get_by_role("button", name="Save").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("Not saved")
    row = page.locator('tr[data-item="0"]')
    await expect(row.locator('[data-error-for="steps.0.queue_id"]')).to_be_visible()
    await expect(row.locator('[data-error-for="steps.0.queue_id"]')).to_contain_text(
        "unknown queue"
    )
    assert json.loads(await editor.input_value())["steps"][0]["queue_id"] == "nowhere"
    # The "line" link puts the caret on the step's line of the document.
    await row.get_by_role("link").click()
    await expect(editor).to_be_focused()
    assert (await stack.router.client.get("/v1/routing-policy")).json() == before
    assert await serious_violations(page) == []
    await screenshot(page, "admin-routing-policy-error")
