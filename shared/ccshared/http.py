"""ASGI middleware every service mounts: correlation ids and a request body size limit."""

from __future__ import annotations

import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccshared.consumer import is_transient
from ccshared.logging import correlation_id
from ccshared.problems import problem_response

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class CorrelationIdMiddleware:
    """Takes X-Correlation-ID (or X-Request-ID) from the caller or makes one; echoes it back.

    It is also the last line for unexpected errors: they are logged with the id and answered with
    a 500 problem that carries the id but not the error's text (which may hold anything).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = None
        for name, value in scope["headers"]:
            if name in (b"x-correlation-id", b"x-request-id"):
                candidate = value.decode("latin-1")
                if _SAFE_ID.match(candidate):
                    cid = candidate
                break
        cid = cid or uuid.uuid4().hex
        token = correlation_id.set(cid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-correlation-id", cid.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            method, path = scope.get("method"), scope.get("path")
            if is_transient(exc) and not started:
                # The database or broker is unreachable (restarting, say): retry, not a bug.
                log.warning("%s %s: a dependency is unavailable: %r", method, path, exc)
                response = problem_response(
                    None,
                    status=503,
                    slug="unavailable",
                    detail="A database or broker this needs is unreachable right now; retry.",
                    headers={"Retry-After": "1"},
                )
                await response(scope, receive, send_with_id)
                return
            log.exception("unhandled error on %s %s", method, path)
            if started:
                raise
            response = problem_response(
                None,
                status=500,
                slug="internal-error",
                detail="An unexpected error occurred; it has been logged with the correlation id.",
            )
            await response(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)


class BodySizeLimitMiddleware:
    """Answers 413 before reading more than `max_bytes` of a request body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(scope, receive, send)
                    return
                break
        received = 0
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    await self._reject(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:  # the 413 has been sent; whatever the app answers is dropped
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            None,
            status=413,
            slug="payload-too-large",
            detail=f"The request body exceeds the limit of {self.max_bytes} bytes.",
        )
        await response(scope, receive, send)
