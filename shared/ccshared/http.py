"""ASGI middleware every service mounts: correlation ids and a request body size limit."""

from __future__ import annotations

import logging
import re
import uuid

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccshared.consumer import is_transient
from ccshared.logging import correlation_id
from ccshared.problem_handlers import problem_response

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def correlation_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Correlation-ID (or X-Request-ID) if it is a safe token, else a new id."""
    for name, value in headers:
        if name in (b"x-correlation-id", b"x-request-id"):
            candidate = value.decode("latin-1")
            if _SAFE_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


async def answer_unexpected(
    exc: Exception, scope: Scope, receive: Receive, send: Send, *, started: bool
) -> None:
    """The last line for an error nothing else handled: a dependency that is unreachable is a
    503 to retry; anything else is logged (with the correlation id, by the log format) and
    answered with a 500 that carries the id but not the error's text, which may hold anything.
    If the response has already started, the error is re-raised for the server to close."""
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
        await response(scope, receive, send)
        return
    log.exception("unhandled error on %s %s", method, path, exc_info=exc)
    if started:
        raise exc
    response = problem_response(
        None,
        status=500,
        slug="internal-error",
        detail="An unexpected error occurred; it has been logged with the correlation id.",
    )
    await response(scope, receive, send)


class CorrelationIdMiddleware:
    """Takes X-Correlation-ID (or X-Request-ID) from the caller or makes one; echoes it back.

    It is also the last line for unexpected errors (`answer_unexpected`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = correlation_id_from(scope["headers"])
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
        except Exception as exc:  # noqa: BLE001 - the last line: answered, logged, or re-raised
            await answer_unexpected(exc, scope, receive, send_with_id, started=started)
        finally:
            correlation_id.reset(token)


def declared_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The request's Content-Length, 0 if absent or not a number."""
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def payload_too_large(max_bytes: int) -> Response:
    return problem_response(
        None,
        status=413,
        slug="payload-too-large",
        detail=f"The request body exceeds the limit of {max_bytes} bytes.",
    )


class BodySizeLimitMiddleware:
    """Answers 413 before reading more than `max_bytes` of a request body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_length(scope["headers"]) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
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
        await payload_too_large(self.max_bytes)(scope, receive, send)
