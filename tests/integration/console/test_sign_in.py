"""Signing in to the console: argon2id passwords, throttling per account and per address,
session cookies (HttpOnly, SameSite=Strict, Secure over TLS), CSRF on every state change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from ccshared.db import asyncpg_dsn
from tests.integration.console.conftest import PASSWORD, Console


async def test_a_user_signs_in_with_the_right_password_and_gets_a_strict_httponly_session(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    await console.add_user("sam", "supervisor")
    async with console.client() as browser:
        answer = await console.sign_in(browser, "sam")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("cc_session=")
        )
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain HTTP here; see the TLS test
        me = await browser.get("/session")
        assert me.status_code == 200
        assert me.json()["user"] == "sam"
        assert me.json()["role"] == "supervisor"
        home = await browser.get("/")
        assert home.status_code == 303
        assert home.headers["location"] == "/board"


async def test_only_the_hash_of_the_password_and_of_the_session_are_stored(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    await console.add_user("amy", "agent")
    async with console.client() as browser:
        answer = await console.sign_in(browser, "amy")
        session = answer.cookies["cc_session"]
    conn = await asyncpg.connect(asyncpg_dsn(console.settings.database_url.get_secret_value()))
    try:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = 'amy'")
        sessions = await conn.fetch("SELECT id_hash FROM sessions")
        dump = await conn.fetchval("SELECT string_agg(t::text, '') FROM sessions t")
    finally:
        await conn.close()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert len(sessions) == 1
    assert session not in dump


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    await console.add_user("amy", "agent")
    async with console.client() as browser:
        wrong = await console.sign_in(browser, "amy", "not the password at all")
        unknown = await console.sign_in(browser, "nobody", PASSWORD)
        assert wrong.status_code == unknown.status_code == 401
        assert "cc_session" not in wrong.cookies
        assert (await browser.get("/session")).status_code == 401


async def test_an_account_is_throttled_after_its_failures_even_with_the_right_password(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory(sign_in_max_failures_per_account=3)
    await console.add_user("amy", "agent")
    await console.add_user("bob", "agent")
    async with console.client() as browser:
        for _ in range(3):
            assert (await console.sign_in(browser, "amy", "guess-guess-guess")).status_code == 401
        refused = await console.sign_in(browser, "amy")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert "cc_session" not in refused.cookies
        # Another account from the same address is not locked by amy's failures.
        assert (await console.sign_in(browser, "bob")).status_code == 303


async def test_an_address_is_throttled_across_accounts(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory(sign_in_max_failures_per_address=4)
    await console.add_user("amy", "agent")
    async with console.client() as browser:
        for name in ("a1", "a2", "a3", "a4"):
            assert (await console.sign_in(browser, name, "guess-guess-guess")).status_code == 401
        assert (await console.sign_in(browser, "amy")).status_code == 429


async def test_a_successful_sign_in_clears_the_accounts_failures(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory(sign_in_max_failures_per_account=3)
    await console.add_user("amy", "agent")
    async with console.client() as browser:
        for _ in range(2):
            await console.sign_in(browser, "amy", "guess-guess-guess")
        assert (await console.sign_in(browser, "amy")).status_code == 303
    async with console.client() as browser:
        for _ in range(2):
            await console.sign_in(browser, "amy", "guess-guess-guess")
        assert (await console.sign_in(browser, "amy")).status_code == 303


async def test_the_sign_in_form_needs_its_csrf_cookie(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    await console.add_user("amy", "agent")
    async with console.client() as browser:
        forged = await browser.post(
            "/sign-in", data={"user": "amy", "password": PASSWORD, "csrf": "made-up"}
        )
        assert forged.status_code == 403
        assert "cc_session" not in forged.cookies


async def test_sign_out_needs_the_sessions_csrf_token_and_ends_the_session(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    browser = await console.signed_in_client("amy", "agent")
    try:
        token = browser.headers.pop("X-CSRF-Token")
        refused = await browser.post("/sign-out")
        assert refused.status_code == 403
        assert (await browser.get("/session")).status_code == 200
        other_origin = await browser.post(
            "/sign-out", headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}
        )
        assert other_origin.status_code == 403
        done = await browser.post("/sign-out", data={"csrf": token})
        assert done.status_code == 303
        assert (await browser.get("/session")).status_code == 401
    finally:
        await browser.aclose()


async def test_over_tls_the_session_cookie_is_secure_and_host_prefixed(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    console.base_url = "https://console.test"
    await console.add_user("amy", "agent")
    async with console.client() as browser:
        answer = await console.sign_in(browser, "amy")
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("__Host-cc_session=")
        )
        assert "Secure" in cookie
        assert "Path=/" in cookie
        assert (await browser.get("/session")).status_code == 200


async def test_an_expired_session_signs_nobody_in(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    browser = await console.signed_in_client("amy", "agent")
    conn = await asyncpg.connect(asyncpg_dsn(console.settings.database_url.get_secret_value()))
    try:
        await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    finally:
        await conn.close()
    try:
        assert (await browser.get("/session")).status_code == 401
        page = await browser.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"].startswith("/sign-in?next=")
    finally:
        await browser.aclose()


async def test_pages_carry_a_strict_content_security_policy(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    async with console.client() as browser:
        page = await browser.get("/sign-in")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_the_sign_in_page_speaks_the_browsers_language(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    async with console.client() as browser:
        chinese = await browser.get("/sign-in", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        english = await browser.get("/sign-in", headers={"Accept-Language": "en-GB"})
    assert "登录" in chinese.text
    assert '<html lang="zh-CN">' in chinese.text
    assert "Sign in" in english.text
    assert '<html lang="en">' in english.text


async def test_failures_older_than_the_window_no_longer_count(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory(sign_in_max_failures_per_account=2, sign_in_window_s=600)
    await console.add_user("amy", "agent")
    async with console.client() as browser:
        for _ in range(2):
            await console.sign_in(browser, "amy", "guess-guess-guess")
        assert (await console.sign_in(browser, "amy")).status_code == 429
        conn = await asyncpg.connect(asyncpg_dsn(console.settings.database_url.get_secret_value()))
        try:
            await conn.execute("UPDATE sign_in_failures SET at = now() - interval '11 minutes'")
        finally:
            await conn.close()
        assert (await console.sign_in(browser, "amy")).status_code == 303


async def test_a_session_unused_for_longer_than_the_idle_limit_ends(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory(session_idle_s=600)
    browser = await console.signed_in_client("amy", "agent")
    conn = await asyncpg.connect(asyncpg_dsn(console.settings.database_url.get_secret_value()))
    try:
        await conn.execute("UPDATE sessions SET last_seen_at = now() - interval '9 minutes'")
        assert (await browser.get("/session")).status_code == 200
        seen = await conn.fetchval("SELECT now() - last_seen_at FROM sessions")
        assert seen.total_seconds() < 60  # marked seen again
        await conn.execute("UPDATE sessions SET last_seen_at = now() - interval '11 minutes'")
        assert (await browser.get("/session")).status_code == 401
    finally:
        await conn.close()
        await browser.aclose()
