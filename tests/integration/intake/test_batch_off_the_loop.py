"""A large `POST /v1/contacts:batch` is parsed and validated in the parser's worker process,
as a large contact is, not on the event loop (REVIEW15 finding 3: a 1 MB batch of two e-mails
of 499,000 `&` each held the loop for 5.3 s while their HTML was sanitized)."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import Any

from tests.integration.intake.conftest import samples

SLOW_ITEM = {
    "channel": "email",
    "received_at": "2026-11-25T02:00:00Z",
    "email": {"from": "a@example.com", "html": "&" * 499_000},
}


def _slow_batch() -> bytes:
    items = [
        {**SLOW_ITEM, "external_id": f"<slow-{n}@x>", "email": {**SLOW_ITEM["email"]}}
        for n in range(2)
    ]
    for n, item in enumerate(items):
        item["email"]["message_id"] = f"<slow-{n}@x>"
    return json.dumps({"items": items}).encode()


async def test_a_large_batch_does_not_hold_the_event_loop(intake_factory: Any) -> None:
    intake = await intake_factory()  # INTAKE_PARSE_INLINE_MAX_BYTES: 64 KiB
    key = await intake.new_key()
    raw = _slow_batch()
    assert 900_000 < len(raw) < 1_048_576
    lags: list[float] = []
    done = asyncio.Event()

    async def monitor() -> None:
        # How late a 10 ms sleep wakes up: the time the event loop was held by something else.
        while not done.is_set():
            due = time.perf_counter() + 0.01
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - due)

    gc.collect()
    gc.freeze()  # a full collection of the test process's objects is not intake's pause
    probe = asyncio.create_task(monitor())
    try:
        response = await intake.client.post(
            "/v1/contacts:batch",
            content=raw,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=60,
        )
    finally:
        done.set()
        await probe
        gc.unfreeze()
    # Each item is too large once sanitized; on a busy machine the worker may not get
    # there within INTAKE_PARSE_BUDGET_S, which refuses the batch whole.
    if response.status_code == 200:
        assert [item["status"] for item in response.json()["items"]] == ["invalid", "invalid"]
        assert response.json()["items"][0]["errors"][0]["type"] == "contact_too_large"
    else:
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["type"] == "parse_timeout"
    assert max(lags) < 0.5, f"the event loop was held for {max(lags):.2f} s"
    assert len(lags) >= 10


async def test_a_large_batch_gets_the_same_answers_as_a_small_one(intake_factory: Any) -> None:
    inline = await intake_factory(parse_inline_max_bytes=10_000_000, batch_max_items=3)
    pooled = await intake_factory(parse_inline_max_bytes=100, batch_max_items=3)
    template = samples()[1]  # an e-mail
    bodies: list[Any] = [
        {"items": [{**template, "received_at": "yesterday", "metadata": [1]}, {"channel": "x"}]},
        {"items": [template]},  # a channel the key may not post
        {"items": [], "extra": 1},  # the envelope is invalid
        {"items": [template] * 4},  # over INTAKE_BATCH_MAX_ITEMS
        [1, 2],
    ]
    answers = []
    for intake in (inline, pooled):
        key = await intake.new_key(["phone", "chat"])
        answer = []
        for body in bodies:
            response = await intake.client.post(
                "/v1/contacts:batch", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            answer.append(
                (
                    response.status_code,
                    {k: v for k, v in response.json().items() if k != "correlation_id"},
                )
            )
        answers.append(answer)
    assert answers[0] == answers[1]
    assert [status for status, _ in answers[0]] == [200, 200, 422, 422, 422]
    first = answers[0][0][1]["items"]
    assert [item["status"] for item in first] == ["invalid", "invalid"]
    assert {e["field"] for e in first[0]["errors"]} == {"received_at", "metadata"}
    assert answers[0][1][1]["items"][0]["status"] == "forbidden"


async def test_a_large_valid_batch_is_stored(intake_factory: Any) -> None:
    intake = await intake_factory(parse_inline_max_bytes=100)
    key = await intake.new_key()
    template = samples()[1]
    items = [
        {
            **template,
            "external_id": f"<large-batch-{n}@x>",
            "email": {**template["email"], "message_id": f"<large-batch-{n}@x>"},
        }
        for n in range(3)
    ]
    response = await intake.client.post(
        "/v1/contacts:batch", json={"items": items}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    assert [item["status"] for item in response.json()["items"]] == ["accepted"] * 3
    assert await intake.count("contacts") == 3
