"""POST /v1/contacts served as plain ASGI, in front of FastAPI rather than through it.

This is intake's hot path. Going through FastAPI's router, dependency solving, middleware stack
and response-model validation cost about as much CPU per request as everything intake itself does
with a contact (benchmark: a bare FastAPI endpoint validating the contact model answers ~8.5k
req/s on two workers, the same validation as plain ASGI ~13k). So the one operation that
integrations call thousands of times a second is answered by `IntakeApp.__call__` before
Starlette's middleware stack is entered, by the same `accept_contact` the FastAPI route calls,
with the same problem bodies; every other route, and this one when `INTAKE_FAST_PATH=false`,
goes through FastAPI. The route stays declared in FastAPI so the OpenAPI document describes it.

What the shared middleware does for every other route is done here too, with the same helpers
(`ccshared.http`): the correlation id taken or made, set for logging and echoed back; the body
size limit (413); the last line for unexpected errors (503 for an unreachable dependency, else
a logged 500). The key, and the caller's address's throttle, are checked before the body is
read: a caller without a valid key gets its 401 or 429 without intake receiving what it sent
(only a declared Content-Length over the limit is answered 413 first, also unread).
`tests/integration/intake/test_fast_path.py` holds both paths to the same answers.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from ccshared.http import (
    answer_unexpected,
    correlation_id_from,
    declared_length,
    payload_too_large,
)
from ccshared.logging import correlation_id
from ccshared.metrics import ObservabilityMiddleware
from ccshared.problem_handlers import response_for_invalid_body, response_for_problem
from ccshared.problems import Problem
from ccshared.service import Runtime
from intake.api.auth import authenticate_headers
from intake.api.endpoints import accept_contact
from intake.bootstrap import parts_of

PATH = "/v1/contacts"
_JSON = (b"content-type", b"application/json")


class IntakeApp(FastAPI):
    """FastAPI, with POST /v1/contacts answered before the middleware stack (counted, timed
    and traced as the stack's ccshared.metrics.ObservabilityMiddleware does every route)."""

    _fast: tuple[Runtime, ObservabilityMiddleware] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            runtime: Runtime | None = getattr(self.state, "runtime", None)
            if runtime is not None and parts_of(runtime).settings.fast_path:
                await self._observed(runtime)(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _observed(self, runtime: Runtime) -> ObservabilityMiddleware:
        if self._fast is None or self._fast[0] is not runtime:

            async def post(scope: Scope, receive: Receive, send: Send) -> None:
                await _post_contact(runtime, scope, receive, send)

            self._fast = (
                runtime,
                ObservabilityMiddleware(
                    post, runtime.settings.service_name, runtime.tracer, route=PATH
                ),
            )
        return self._fast[1]


async def _post_contact(runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    raw_headers = scope["headers"]
    cid = correlation_id_from(raw_headers)
    cid_header = (b"x-correlation-id", cid.encode())
    started = False

    async def send_with_id(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
            message["headers"] = [*message.get("headers", []), cid_header]
        await send(message)

    token = correlation_id.set(cid)
    try:
        intake = parts_of(runtime)
        max_bytes = intake.settings.max_body_bytes
        if declared_length(raw_headers) > max_bytes:
            await payload_too_large(max_bytes)(scope, receive, send_with_id)
            return
        headers = Headers(raw=raw_headers)
        client = scope.get("client")
        address = client[0] if client else None
        try:
            # The key (and the address's throttle) before the body: a caller without a valid
            # key gets its 401 or 429 without intake receiving what it sent.
            key = await authenticate_headers(headers, intake.verifier, address)
        except Problem as exc:
            await response_for_problem(exc, PATH)(scope, receive, send_with_id)
            return
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await payload_too_large(max_bytes)(scope, receive, send_with_id)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        try:
            raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            body, response_headers = await accept_contact(runtime, headers, raw, address, key)
        except Problem as exc:
            await response_for_problem(exc, PATH)(scope, receive, send_with_id)
            return
        except ValidationError as exc:
            await response_for_invalid_body(exc, PATH)(scope, receive, send_with_id)
            return
        await _send_json(send_with_id, 202, body, response_headers)
    except Exception as exc:  # noqa: BLE001 - the last line: answered, logged, or re-raised
        await answer_unexpected(exc, scope, receive, send_with_id, started=started)
    finally:
        correlation_id.reset(token)


async def _send_json(send: Send, status: int, body: Any, headers: dict[str, str]) -> None:
    payload = orjson.dumps(body)
    raw_headers = [_JSON, (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})
