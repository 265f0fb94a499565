"""Builds the console's app; nothing runs at import time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import httpx
from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccshared.service import Runtime, create_service_app
from console import bootstrap
from console.api.admin import router as admin_router
from console.api.agent import router as agent_router
from console.api.auth import router as auth_router
from console.api.live import router as live_router
from console.api.notifications import router as notifications_router
from console.api.pages import install_error_pages
from console.api.pages import router as pages_router
from console.api.supervisor import router as supervisor_router
from console.api.tickets import router as tickets_router
from console.apis import Service
from console.settings import ConsoleSettings

STATIC = Path(__file__).resolve().parent / "static"
# Everything the pages load comes from the console itself: no CDN, no inline script, no
# framing by another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_API_DOCS = ("/docs", "/redoc", "/static-docs")  # Swagger UI's page has an inline script


class SecurityHeaders:
    """The browser-facing headers of every answer (a pure ASGI middleware: no body buffering,
    so the live stream's events are not held back)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = str(scope.get("path", "")).startswith(_API_DOCS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if not docs:
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(
    settings: ConsoleSettings | None = None,
    transports: Mapping[Service, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """`transports`: the router's, SLA's and feedback's apps in the same process (tests)."""
    settings = settings or ConsoleSettings()

    async def on_start(runtime: Runtime) -> None:
        await bootstrap.start(runtime, settings, transports)

    async def on_stop(runtime: Runtime) -> None:
        await bootstrap.stop(runtime, settings)

    app = create_service_app(
        settings,
        title="Contact center — Console",
        description=(
            "The web application agents and supervisors work in: server-rendered pages over "
            "the router's, SLA's and feedback's APIs, live through server-sent events."
        ),
        package="console",
        routers=[
            auth_router,
            pages_router,
            agent_router,
            supervisor_router,
            admin_router,
            notifications_router,
            live_router,
        ],
        max_body_bytes=256 * 1024,
        on_start=on_start,
        on_stop=on_stop,
    )
    app.include_router(tickets_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_error_pages(app)
    app.add_middleware(SecurityHeaders)
    return app
