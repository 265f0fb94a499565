"""POST /v1/contacts answers alike through the plain-ASGI fast path and through FastAPI."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx

from ccshared.service import runtime_of
from intake.api.schemas import ContactAccepted
from tests.conftest import scratch_database
from tests.integration.intake.conftest import Intake, samples

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KEY_PREFIX = re.compile(r"Key [0-9a-f]+")
COMPARED_HEADERS = ("content-type", "www-authenticate", "retry-after", "idempotent-replayed")


def _shape(response: httpx.Response) -> dict[str, Any]:
    """What a client can rely on, with the ids that differ between two databases masked."""
    text = KEY_PREFIX.sub("Key <prefix>", UUID.sub("<uuid>", response.text))
    correlation = response.headers.get("x-correlation-id", "")
    return {
        "status": response.status_code,
        "headers": {h: response.headers.get(h) for h in COMPARED_HEADERS},
        "location": UUID.sub("<uuid>", response.headers.get("location", "")),
        "body": text.replace(correlation, "<cid>") if correlation else text,
        "has_correlation_id": bool(correlation),
    }


async def _exchange(intake: Intake, *, limited_key: str, key: str) -> list[dict[str, Any]]:
    sample = samples()[0]
    other = copy.deepcopy(sample)
    other["text"] = "another body under the same id"
    invalid = copy.deepcopy(sample)
    invalid["phone"]["caller"] = "not a number"
    email = next(s for s in samples() if s["channel"] == "email")
    auth = {"Authorization": f"Bearer {key}"}
    post = intake.client.post
    responses = [
        await post("/v1/contacts", json=sample, headers=auth),
        await post("/v1/contacts", json=sample, headers=auth),  # retry
        await post("/v1/contacts", json=other, headers=auth),  # same id, other body
        await post("/v1/contacts", json=sample),  # no key
        await post("/v1/contacts", json=sample, headers={"Authorization": "Bearer cck_forged"}),
        await post("/v1/contacts", json=email, headers={"Authorization": f"Bearer {limited_key}"}),
        await post("/v1/contacts", json=invalid, headers=auth),
        await post("/v1/contacts", content=b"{not json", headers=auth),
        await post("/v1/contacts", content=b"<x/>", headers={**auth, "Content-Type": "text/xml"}),
        await post("/v1/contacts", json=sample, headers={**auth, "Idempotency-Key": "a b"}),
        await post("/v1/contacts", content=b"x" * 2_000_000, headers=auth),
    ]
    return [_shape(r) for r in responses]


async def test_fast_path_and_fastapi_route_answer_the_same(intake_factory: Any) -> None:
    shapes = []
    async with scratch_database() as other_database:
        fast = await intake_factory(fast_path=True)
        routed = await intake_factory(database_url=other_database, fast_path=False)
        for intake in (fast, routed):
            key = await intake.new_key()
            limited = await intake.new_key(["phone"])
            shapes.append(await _exchange(intake, limited_key=limited, key=key))
    statuses = [s["status"] for s in shapes[0]]
    assert statuses == [202, 202, 409, 401, 401, 403, 422, 422, 415, 422, 413]
    for got, expected in zip(shapes[0], shapes[1], strict=True):
        assert got == expected
    assert all(s["has_correlation_id"] for s in shapes[0])


async def test_fast_path_202_matches_the_documented_model(intake: Intake) -> None:
    key = await intake.new_key()
    response = await intake.post(samples()[1], key)
    assert response.status_code == 202
    accepted = ContactAccepted.model_validate(response.json())
    assert response.headers["location"] == f"/v1/contacts/{accepted.id}"
    stored = await intake.db.fetchrow("SELECT customer_id FROM contacts WHERE id = $1", accepted.id)
    assert stored is not None
    assert stored["customer_id"] == accepted.customer_id


class _NoThrottle:
    def retry_after(self, _: object) -> float:
        return 0.0


class _FailingVerifier:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.failures = _NoThrottle()

    async def verify(self, *_: Any, **__: Any) -> Any:
        raise self.error


async def test_fast_path_is_the_last_line_for_unexpected_errors(intake: Intake) -> None:
    """The fast path runs before the shared middleware, so it answers unexpected errors the
    same way: a 500 that does not leak the error's text, a 503 for an unreachable dependency,
    both with the correlation id."""
    runtime = runtime_of(intake.app)
    real = runtime.parts.verifier
    body, auth = samples()[0], {"Authorization": "Bearer cck_whatever"}
    try:
        runtime.parts.verifier = _FailingVerifier(ValueError("hunter2 in the error"))
        response = await intake.client.post(
            "/v1/contacts", json=body, headers={**auth, "X-Correlation-ID": "cid-500"}
        )
        assert response.status_code == 500
        assert "hunter2" not in response.text
        assert response.json()["correlation_id"] == "cid-500"
        assert response.headers["x-correlation-id"] == "cid-500"

        runtime.parts.verifier = _FailingVerifier(ConnectionRefusedError("db down"))
        response = await intake.client.post("/v1/contacts", json=body, headers=auth)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-correlation-id"]
    finally:
        runtime.parts.verifier = real
    assert await intake.count("contacts") == 0


async def _post_unread(intake: Intake, headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """POST /v1/contacts as plain ASGI with a body that is never delivered: the status, and how
    many times the app asked for the body."""
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        return {"type": "http.request", "body": b"{" * 1000, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/contacts",
        "raw_path": b"/v1/contacts",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"intake"), (b"content-type", b"application/json"), *headers],
        "client": ("203.0.113.40", 40_000),
        "server": ("intake", 80),
        "state": {},
    }
    await intake.app(scope, receive, send)
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    return start["status"], asked


async def test_fast_path_refuses_a_missing_or_bad_key_before_reading_the_body(
    intake_factory: Any,
) -> None:
    # REVIEW15 finding 8: the fast path read the whole body (up to 1 MiB) before looking at
    # the key, and before refusing a shut-out address.
    intake = await intake_factory(auth_failure_limit=3)
    assert await _post_unread(intake, []) == (401, 0)
    assert await _post_unread(intake, [(b"x-api-key", b"cck_000000000000_forged")]) == (401, 0)
    assert await _post_unread(intake, [(b"authorization", b"Bearer nonsense")]) == (401, 0)
    # Three failures: the address is shut out, and still nothing is read.
    assert await _post_unread(intake, [(b"authorization", b"Bearer nonsense")]) == (429, 0)
