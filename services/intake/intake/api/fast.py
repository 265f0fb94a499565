"""POST /v1/contacts served as plain ASGI, next to FastAPI rather than through it.

This is intake's hot path. Going through FastAPI's router, dependency solving, exception
middleware and response-model validation cost about as much CPU per request as everything intake
itself does with a contact (benchmark: a bare FastAPI endpoint validating the contact model
answers ~8.5k req/s on two workers, the same validation as plain ASGI ~13k). So the one operation
that integrations call thousands of times a second is answered here, by the same
`accept_contact` the FastAPI route calls, with the same problem bodies; every other route, and
this one when `INTAKE_FAST_PATH=false`, goes through FastAPI. The route stays declared in FastAPI
so the OpenAPI document describes it.

It sits inside the correlation-id middleware (ids, logging, the 500 of last resort) and the
body-size limit (413), so those behave as for every other route.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ccshared.problems import Problem, response_for_invalid_body, response_for_problem
from intake.api.endpoints import accept_contact

PATH = "/v1/contacts"


class ContactFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is None or not runtime.settings.fast_path:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        try:
            body, headers = await accept_contact(runtime, Headers(scope=scope), b"".join(chunks))
        except Problem as exc:
            await response_for_problem(exc, PATH)(scope, receive, send)
            return
        except ValidationError as exc:
            await response_for_invalid_body(exc, PATH)(scope, receive, send)
            return
        await _send_json(send, 202, body, headers)


async def _send_json(send: Send, status: int, body: Any, headers: dict[str, str]) -> None:
    payload = orjson.dumps(body)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})
