"""An agent's day in a real browser: sign in, an offer arrives, accept it (the `a` shortcut or
the button), reply in Chinese, resolve with first-contact resolution; no serious accessibility
violation on the workspace or the ticket page.

The offer arriving *without reloading* needs the live stream (`GET /live` and static/live.js,
the "live" helper's part of issue 19); until that is in this checkout, that test is skipped
and says so, and the other test reloads the page to see the offer."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import BrowserStack, screenshot, serious_violations
from tests.helpers import wait_until
from tests.integration.router.conftest import contact

SKILLS = {"complaints": 3, "technical": 3, "billing": 3, "vip": 3, "escalations": 3}
LIVE_JS = Path(__file__).resolve().parents[2] / "services/console/console/static/live.js"

needs_live = pytest.mark.skipif(
    not LIVE_JS.exists(),
    reason="needs the live stream (GET /live and static/live.js, the live helper's part of "
    "issue 19), not in this checkout yet",
)


async def _agent_signed_in(stack: BrowserStack, page: Page, agent_id: str) -> None:
    await stack.router.agent(agent_id, skills=SKILLS)
    await stack.console_user(agent_id, "agent", agent_id=agent_id)
    await stack.sign_in(page, agent_id)
    await expect(page).to_have_url(f"{stack.url}/agent")


async def _reply_and_resolve(stack: BrowserStack, page: Page, ticket_id: str) -> None:
    await expect(page.get_by_role("heading", name="Reply to the customer")).to_be_visible()
    assert await serious_violations(page) == []
    await screenshot(page, "ticket")
    answer = "您好，积分已经补发到您的账户。Thank you!"
    await page.keyboard.press("r")  # the shortcut focuses the reply box
    await expect(page.get_by_label("Reply", exact=True)).to_be_focused()
    await page.keyboard.type(answer)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Send reply").click()
    await expect(page.locator("#conversation")).to_contain_text(answer)
    messages = (await stack.router.client.get(f"/v1/tickets/{ticket_id}/messages")).json()
    assert [m["text"] for m in messages["items"] if m["direction"] == "outbound"] == [answer]

    await page.get_by_label("Resolution code").fill("points_restored")
    await page.get_by_label("Yes").check()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Resolve", exact=True).click()
    await expect(page.locator("#ticket-status")).to_have_text("Resolved")
    ticket = (await stack.router.client.get(f"/v1/tickets/{ticket_id}")).json()
    assert ticket["status"] == "resolved"
    assert ticket["first_contact_resolution"] is True


async def test_an_agent_accepts_an_offer_with_the_shortcut_replies_and_resolves(
    stack: BrowserStack, page: Page
) -> None:
    await _agent_signed_in(stack, page, "amy")
    ticket_id = str(await stack.router.receive(contact(uuid.uuid4(), text_="我的积分不见了")))

    async def offer_shown() -> bool:
        await page.reload()
        return await page.locator(".offer").count() == 1

    await wait_until(offer_shown, timeout=30)
    offer = page.locator(".offer")
    await expect(offer).to_contain_text("我的积分不见了")
    await expect(offer.locator(".countdown")).to_have_text(re.compile(r"^\d+ s$"))
    assert await serious_violations(page) == []
    await screenshot(page, "agent-workspace")

    async with page.expect_navigation():
        await page.keyboard.press("a")  # accept the first offer
    await expect(page).to_have_url(f"{stack.url}/tickets/{ticket_id}")
    await _reply_and_resolve(stack, page, ticket_id)

    async with page.expect_navigation():
        await page.get_by_label("Language").select_option("zh")
    await expect(page.locator("#ticket-status")).to_have_text("已解决")
    await expect(page.get_by_role("heading", name="回复客户")).to_be_visible()
    await expect(page.get_by_role("heading", name="历史记录")).to_be_visible()
    assert await serious_violations(page) == []


@needs_live
async def test_an_offer_appears_without_reloading_and_is_accepted_replied_and_resolved(
    stack: BrowserStack, page: Page
) -> None:
    await _agent_signed_in(stack, page, "amy")
    await expect(page.locator("#no-offers")).to_be_visible()
    await page.evaluate("window.__sameDocument = true")

    ticket_id = str(await stack.router.receive(contact(uuid.uuid4(), text_="发票什么时候开？")))

    offer = page.locator(".offer")
    await expect(offer).to_contain_text("发票什么时候开？", timeout=10_000)
    assert await page.evaluate("window.__sameDocument === true")  # no reload happened
    async with page.expect_navigation():
        await offer.get_by_role("button", name="Accept").click()
    await expect(page).to_have_url(f"{stack.url}/tickets/{ticket_id}")
    await _reply_and_resolve(stack, page, ticket_id)


@needs_live
async def test_the_customers_new_message_appears_on_the_open_ticket_keeping_the_reply_box(
    stack: BrowserStack, page: Page
) -> None:
    await _agent_signed_in(stack, page, "amy")
    customer = uuid.uuid4()
    ticket_id = str(await stack.router.receive(contact(customer, text_="第一条：订单没收到")))

    async def offered() -> bool:
        return bool(await stack.router.offers("amy"))

    await wait_until(offered, timeout=30)
    await page.goto(f"{stack.url}/tickets/{ticket_id}")
    async with page.expect_navigation():
        await (
            page.locator("#offer-here-title ~ .toolbar")
            .get_by_role("button", name="Accept")
            .click()
        )
    await expect(page.locator("#conversation")).to_contain_text("第一条：订单没收到")
    await page.get_by_label("Reply", exact=True).fill("正在查询，请稍等")  # half-written
    await page.evaluate("window.__sameDocument = true")

    again = await stack.router.receive(contact(customer, text_="第二条：订单号 88231"))

    assert str(again) == ticket_id
    await expect(page.locator("#conversation")).to_contain_text("第二条：订单号 88231")
    assert await page.evaluate("window.__sameDocument === true")  # in place, no reload
    await expect(page.get_by_label("Reply", exact=True)).to_have_value("正在查询，请稍等")


async def test_an_offer_that_times_out_leaves_the_page_by_itself(
    stack: BrowserStack, page: Page
) -> None:
    kept = ("name", "required_skills", "strategy", "wrap_up_s", "supervisors", "managers")
    for queue in (await stack.router.client.get("/v1/queues")).json():
        body = {k: queue[k] for k in kept if k in queue} | {"offer_timeout_s": 5}
        changed = await stack.router.client.put(f"/v1/queues/{queue['id']}", json=body)
        assert changed.status_code == 200, changed.text
    await _agent_signed_in(stack, page, "amy")
    await stack.router.receive(contact(uuid.uuid4(), text_="在吗？"))

    async def offer_shown() -> bool:
        await page.reload()
        return await page.locator(".offer").count() == 1

    await wait_until(offer_shown, timeout=30)
    await page.evaluate("window.__sameDocument = true")

    # The countdown reaches zero, the page fetches its offers again: none left.
    await expect(page.locator("#no-offers")).to_be_visible(timeout=15_000)
    assert await page.evaluate("window.__sameDocument === true")


@needs_live
async def test_a_new_offer_arriving_keeps_what_was_typed_to_decline_another(
    stack: BrowserStack, page: Page
) -> None:
    await _agent_signed_in(stack, page, "amy")
    await stack.router.receive(contact(uuid.uuid4(), text_="第一个问题"))
    first = page.locator(".offer").filter(has_text="第一个问题")
    await expect(first).to_be_visible()
    await first.get_by_label("Details (optional)").fill("这个客户我处理过")

    await stack.router.receive(contact(uuid.uuid4(), text_="第二个问题"))

    await expect(page.locator(".offer")).to_have_count(2)
    await expect(first.get_by_label("Details (optional)")).to_have_value("这个客户我处理过")
    await expect(first.get_by_label("Details (optional)")).to_be_focused()
