"""Browser tests: Debian's Chromium (/usr/bin/chromium), driven headless by Playwright, against
the console served on a real port by uvicorn, over the real router, SLA and feedback (each in
this process, each with its own database, on the real Kafka broker and PostgreSQL).

    async def test_x(stack: BrowserStack, page: Page) -> None:
        await stack.router.agent("amy", skills={"general": 3})
        await stack.console_user("amy", "agent")
        await stack.sign_in(page, "amy")
        await stack.router.receive(contact(uuid.uuid4()))   # a contact, as if from intake
        await expect(page.get_by_role(...)).to_be_visible()
        assert await serious_violations(page) == []          # axe-core, serious or critical

The console reads the suite's topics from their end (no consumer group), so it sees what the
router publishes during the test. Every service's consumer group starts at the end of its
topics: a test sees only its own events. `CC_SCREENSHOTS=1` makes `screenshot(page, name)`
write docs/screenshots/<name>.png (`make screenshots`); otherwise it does nothing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from pydantic import SecretStr

from ccshared.kafka import ensure_topics
from console.app import create_app as create_console
from console.settings import ConsoleSettings
from feedback.app import consumers as feedback_consumers
from feedback.app import create_app as create_feedback
from feedback.settings import FeedbackSettings
from router.app import create_app as create_router
from router.consumers import CONSUMERS as ROUTER_CONSUMERS
from router.settings import RouterSettings
from sla.app import consumers as sla_consumers
from sla.app import create_app as create_sla
from sla.settings import SLASettings
from tests.conftest import TOPIC_PREFIX, groups_at_end, scratch_database
from tests.helpers import as_supervisor, wait_until
from tests.integration.console.conftest import PASSWORD, Console
from tests.integration.router.conftest import Router

CHROMIUM = os.environ.get("CC_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking switches Chromium keeps trying Google's hosts, which this
# project's machines cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make install` (or .ci/run) installs Debian's chromium "
            "package; CC_CHROMIUM names another executable"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    # bypass_csp: only so axe-core's script can be injected into the page under test; the
    # console's own scripts are all same-origin files and run under the policy (a test checks
    # the header, and any inline script the pages had would fail the integration tests' CSP
    # check rather than be hidden here).
    ctx = await browser.new_context(
        bypass_csp=True, locale="en-US", viewport={"width": 1360, "height": 900}
    )
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _started(stack: AsyncExitStack, app: Any) -> None:
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    stack.push_async_callback(lifespan.__aexit__, None, None, None)


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


@dataclass
class BrowserStack:
    router: Router
    sla: httpx.AsyncClient  # as a supervisor
    feedback: httpx.AsyncClient  # as a supervisor
    console: Console
    url: str  # where Chromium reaches the console, e.g. http://127.0.0.1:43121
    apps: dict[str, Any] = field(default_factory=dict)

    async def console_user(self, user_id: str, role: str, *, agent_id: str | None = None) -> None:
        await self.console.add_user(user_id, role, agent_id=agent_id)

    async def sign_in(self, page: Page, user_id: str, password: str = PASSWORD) -> None:
        """Signs in through the form, as a person would; waits for the page after it."""
        await page.goto(f"{self.url}/sign-in")
        await page.get_by_label("User name").fill(user_id)
        await page.get_by_label("Password").fill(password)
        async with page.expect_navigation():
            await page.get_by_role("button", name="Sign in").click()


@pytest.fixture
async def stack(kafka_bootstrap: str) -> AsyncIterator[BrowserStack]:
    suffix = f".b-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        await ensure_topics(kafka_bootstrap, prefix=TOPIC_PREFIX)
        dbs = [await stack.enter_async_context(scratch_database()) for _ in range(4)]
        common: dict[str, Any] = {
            "kafka_bootstrap": kafka_bootstrap,
            "log_json": False,
            "consumer_group_suffix": suffix,
            "outbox_poll_interval_s": 0.1,
        }
        router_settings = RouterSettings(
            database_url=SecretStr(dbs[0]), assign_in_background=True, policy_cache_s=0, **common
        )
        sla_settings = SLASettings(
            database_url=SecretStr(dbs[1]), timer_poll_interval_s=0.05, config_cache_s=0, **common
        )
        feedback_settings = FeedbackSettings(
            database_url=SecretStr(dbs[2]), public_base_url="http://feedback.test", **common
        )
        await groups_at_end(kafka_bootstrap, "router", suffix, ROUTER_CONSUMERS)
        await groups_at_end(kafka_bootstrap, "sla", suffix, sla_consumers(sla_settings))
        await groups_at_end(
            kafka_bootstrap, "feedback", suffix, feedback_consumers(feedback_settings)
        )
        apps = {
            "router": create_router(router_settings),
            "sla": create_sla(sla_settings),
            "feedback": create_feedback(feedback_settings),
        }
        clients: dict[str, httpx.AsyncClient] = {}
        for name, app in apps.items():
            await _started(stack, app)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=f"http://{name}.test",
                headers=as_supervisor(),
            )
            stack.push_async_callback(client.aclose)
            await wait_until(lambda c=client: _ready(c), timeout=60)
            clients[name] = client
        transports = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}
        console_settings = ConsoleSettings(database_url=SecretStr(dbs[3]), **common)
        console_app = create_console(console_settings, transports)  # type: ignore[arg-type]
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                console_app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=2,
            )
        )
        serving = asyncio.create_task(server.serve())

        async def stop_server() -> None:
            server.should_exit = True
            await serving

        stack.push_async_callback(stop_server)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url) as probe:
            await wait_until(lambda: _probe_ready(probe), timeout=60)
        yield BrowserStack(
            router=Router(apps["router"], clients["router"]),
            sla=clients["sla"],
            feedback=clients["feedback"],
            console=Console(console_app, console_settings),
            url=url,
            apps=apps,
        )


async def _probe_ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical accessibility violations on the page as it is now
    (each: rule id, impact, help and the offending elements' selectors)."""
    from tests.browser.tools import axe_js

    await page.add_script_tag(path=str(axe_js()))
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations
              .filter(v => v.impact === "serious" || v.impact === "critical")
              .map(v => ({id: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.map(n => n.target.join(" "))}));
        }"""
    )
    return found


async def screenshot(page: Page, name: str) -> None:
    """docs/screenshots/<name>.png when CC_SCREENSHOTS=1 (`make screenshots`)."""
    if os.environ.get("CC_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
