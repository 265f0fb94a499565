"""The console running in-process with a database of its own; the router, SLA and feedback it
calls are either real apps in the same process (ASGI transports, each with its own database) or
absent. `Console.sign_in` walks the real sign-in form (CSRF cookie, password, session cookie)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ccshared.db import make_engine
from console.apis import Service
from console.app import create_app
from console.settings import ConsoleSettings
from console.users import create_user
from tests.helpers import wait_until

PASSWORD = "correct horse battery staple"
_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    app: Any
    settings: ConsoleSettings
    base_url: str = "http://console.test"

    def client(self) -> httpx.AsyncClient:
        """A browser of its own: its own cookie jar, nothing signed in."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=self.base_url
        )

    async def add_user(
        self, user_id: str, role: str, *, agent_id: str | None = None, password: str = PASSWORD
    ) -> None:
        engine = make_engine(self.settings.database_url.get_secret_value(), pool_size=1)
        try:
            await create_user(engine, user_id, role, password=password, agent_id=agent_id)
        finally:
            await engine.dispose()

    async def sign_in(
        self, client: httpx.AsyncClient, user_id: str, password: str = PASSWORD
    ) -> httpx.Response:
        """Fills the sign-in form as a browser would; the answer (303 when it worked)."""
        form = await client.get("/sign-in")
        match = _CSRF_FIELD.search(form.text)
        assert match, form.text
        return await client.post(
            "/sign-in",
            data={"user": user_id, "password": password, "csrf": match.group(1), "next": "/"},
        )

    async def signed_in_client(self, user_id: str, role: str, **kwargs: Any) -> httpx.AsyncClient:
        """A new user of that role, signed in; its CSRF token in `client.headers`."""
        await self.add_user(user_id, role, **kwargs)
        client = self.client()
        answer = await self.sign_in(client, user_id)
        assert answer.status_code == 303, answer.text
        session = await client.get("/session")
        assert session.status_code == 200, session.text
        client.headers["X-CSRF-Token"] = session.json()["csrf_token"]
        return client


@pytest.fixture
async def console_factory(
    fresh_database: str,
) -> AsyncIterator[Callable[..., Awaitable[Console]]]:
    started: list[Any] = []

    async def start(
        transports: Mapping[Service, httpx.AsyncBaseTransport] | None = None, **overrides: Any
    ) -> Console:
        settings = ConsoleSettings(
            database_url=SecretStr(fresh_database),
            log_json=False,
            consumer_group_suffix=f".test-{uuid.uuid4().hex[:8]}",
            **overrides,
        )
        app = create_app(settings, transports)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        started.append(lifespan)
        console = Console(app, settings)
        async with console.client() as client:
            await wait_until(lambda: _ready(client), timeout=30)
        return console

    yield start
    for lifespan in reversed(started):
        await lifespan.__aexit__(None, None, None)


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200
