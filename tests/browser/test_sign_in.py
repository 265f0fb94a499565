"""Signing in to the console in a real browser: the form, a wrong password's message, the
language switch, and no serious accessibility violation on the way."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import BrowserStack, screenshot, serious_violations


async def test_a_wrong_password_is_announced_and_the_right_one_signs_in(
    stack: BrowserStack, page: Page
) -> None:
    await stack.console_user("sam", "supervisor")
    await stack.sign_in(page, "sam", "not the password, sorry")
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("The user name or the password is wrong.")
    await expect(page.get_by_label("User name")).to_have_value("sam")
    assert await serious_violations(page) == []
    await stack.sign_in(page, "sam")
    session = await page.request.get(f"{stack.url}/session")
    assert (await session.json())["user"] == "sam"
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["cc_session"]["httpOnly"] is True
    assert cookies["cc_session"]["sameSite"] == "Strict"


async def test_the_sign_in_page_switches_to_chinese_and_passes_axe(
    stack: BrowserStack, page: Page
) -> None:
    await page.goto(f"{stack.url}/sign-in")
    await screenshot(page, "sign-in")
    assert await serious_violations(page) == []
    await page.get_by_label("Language").select_option("zh")
    await expect(page.get_by_role("heading", name="登录")).to_be_visible()
    await expect(page.get_by_label("用户名")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert await serious_violations(page) == []


async def test_the_accessibility_check_finds_a_field_without_a_label(
    stack: BrowserStack, page: Page
) -> None:
    """The check above can fail: an input without a label on the same page is reported."""
    await page.goto(f"{stack.url}/sign-in")
    await page.evaluate("document.querySelector('form').append(document.createElement('input'))")
    assert [v["id"] for v in await serious_violations(page)] == ["label"]
