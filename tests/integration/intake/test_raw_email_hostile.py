"""Hostile raw e-mails against the running service: each is a quick 4xx naming what is wrong,
and while they (and large JSON e-mails that are slow to sanitize) are being posted, intake
keeps answering /healthz within 50 ms and keeps accepting ordinary contacts: parsing happens
in a worker process, not on the event loop. A hostile body may also be turned away while the
parse pool is busy: a 503 problem with Retry-After (back-pressure), never another answer."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.intake.conftest import Intake, samples
from tests.unit.intake.hostile_email import HEAD, HOSTILE

TABLES = ("contacts", "customers", "customer_identities")

# Within every limit but slow to sanitize (the sanitizer's parser is superlinear in bare `&`):
# about a second of a worker's CPU, then refused as too long once sanitized.
SLOW_HTML = (
    HEAD + "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + "&" * 300_000
).encode()


# The same as JSON: validated off the event loop too, being over INTAKE_PARSE_INLINE_MAX_BYTES.
SLOW_JSON = json.dumps(
    {
        "channel": "email",
        "external_id": "<slow-json@mail.example>",
        "received_at": "2026-11-25T02:00:00Z",
        "email": {
            "message_id": "<slow-json@mail.example>",
            "from": "a@example.com",
            "html": "&" * 300_000,
        },
    }
).encode()


def _runqueue_wait_s() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat)."""
    return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9


async def _post_raw(intake: Intake, key: str, raw: bytes) -> Any:
    content_type = "application/json" if raw.startswith(b"{") else "message/rfc822"
    return await intake.client.post(
        "/v1/contacts",
        content=raw,
        headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
    )


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_email_is_a_quick_4xx_naming_what_is_wrong(intake: Intake, name: str) -> None:
    key = await intake.new_key(["email"])
    raw, field = HOSTILE[name]
    started = time.perf_counter()
    response = await _post_raw(intake, key, raw)
    elapsed = time.perf_counter() - started
    assert response.status_code in (413, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"].startswith(field), response.text
    assert elapsed < 2.0, f"{name}: {elapsed:.2f} s"
    for table in TABLES:
        assert await intake.count(table) == 0


async def test_message_over_the_time_budget_is_a_422(intake_factory: Any) -> None:
    intake = await intake_factory(parse_budget_s=0.05)
    key = await intake.new_key(["email"])
    depth, lines = 40, 90_000  # within the limits; about 0.3 s of parsing
    opening = "".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n" for i in range(depth)
    )
    raw = (
        HEAD
        + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
        + opening
        + f"--b{depth}\r\nContent-Type: text/plain\r\n\r\n"
        + "\n" * lines
    ).encode()
    response = await _post_raw(intake, key, raw)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["type"] == "parse_timeout"


def _refused_or_busy(response: Any) -> str | None:
    """What is wrong with an answer to a hostile body, or None: a 413/422 problem refusing it,
    or a 503 problem with Retry-After when the parse pool is busy (back-pressure: no worker
    free within INTAKE_PARSE_MAX_WAIT_S, or too many bodies of this key waiting)."""
    if response.status_code not in (413, 422, 503):
        return f"status {response.status_code}"
    if response.headers.get("content-type") != "application/problem+json":
        return f"{response.status_code} without a problem body"
    if response.json().get("status") != response.status_code:
        return f"{response.status_code} whose problem says {response.json().get('status')}"
    if response.status_code == 503 and not response.headers.get("retry-after", "").isdigit():
        return "503 without Retry-After"
    return None


@pytest.mark.parametrize(
    "pool",
    [
        pytest.param({}, id="default-pool"),
        # Bodies wait at most 0.2 s for the one worker, which spends about a second on each slow
        # body: most of the four attackers' bodies are turned away busy.
        pytest.param({"parse_max_wait_s": 0.2}, id="busy-pool"),
    ],
)
async def test_healthz_stays_fast_and_contacts_are_accepted_while_hostile_emails_arrive(
    intake_factory: Any, pool: dict[str, Any]
) -> None:
    intake = await intake_factory(**pool)
    key = await intake.new_key()
    hostile = itertools.cycle([SLOW_HTML, SLOW_JSON, *(raw for raw, _ in HOSTILE.values())])
    outcomes: list[int] = []
    wrong: list[str] = []
    done = asyncio.Event()

    async def attacker() -> None:
        while not done.is_set():
            response = await _post_raw(intake, key, next(hostile))
            outcomes.append(response.status_code)
            if (problem := _refused_or_busy(response)) is not None:
                wrong.append(f"{problem}: {response.text[:200]}")
            if len(outcomes) >= 30 and outcomes.count(422) >= 5:
                done.set()

    accepted: list[int] = []

    async def integration() -> None:
        template = samples()[0]
        for n in itertools.count():
            if done.is_set():
                return
            body = {**template, "external_id": f"{template['external_id']}-busy-{n}"}
            body["phone"] = {**template["phone"], "call_id": f"busy-{n}"}
            accepted.append((await intake.post(body, key)).status_code)
            await asyncio.sleep(0.02)

    latencies: list[float] = []
    starved: list[float] = []

    async def monitor() -> None:
        # A probe is due every 10 ms; what counts is how long after it was due the answer
        # came: a probe started on this (shared) event loop cannot even start while the loop
        # is blocked, so timing only the request would not see the block. From that, the
        # time the kernel kept this thread waiting for a CPU while it could run is taken
        # out: on a machine shared with other runs (load 8-9 on 2 cores) that alone made
        # probes 80-125 ms late. A loop blocked by intake's own work (CPU on this thread, a
        # blocking call) is not runnable-and-waiting, so it still counts in full.
        answered, waited = time.perf_counter(), _runqueue_wait_s()
        while not done.is_set():
            await asyncio.sleep(0.01)
            response = await intake.client.get("/healthz")
            assert response.status_code == 200
            due, answered = answered + 0.01, time.perf_counter()
            before, waited = waited, _runqueue_wait_s()
            starved.append(waited - before)
            latencies.append(answered - due - (waited - before))

    # As the service does once started (ccshared.gc): the test process holds far more objects
    # than a service, and a full collection of them would pause this event loop, not intake.
    gc.collect()
    gc.freeze()
    tasks = [asyncio.create_task(attacker()) for _ in range(4)]
    tasks += [asyncio.create_task(integration()), asyncio.create_task(monitor())]
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        done.set()
        await asyncio.gather(*tasks)
        gc.unfreeze()

    assert len(outcomes) >= 30
    assert wrong == [], wrong
    if pool:
        assert 503 in outcomes, outcomes
    assert len(accepted) >= 20
    assert set(accepted) == {202}, accepted
    worst = max(latencies)
    assert worst < 0.050, (
        f"/healthz took up to {worst * 1000:.0f} ms beyond the time this thread waited for a "
        f"CPU (median {statistics.median(latencies) * 1000:.1f} ms over {len(latencies)}; "
        f"waited for a CPU up to {max(starved) * 1000:.0f} ms)"
    )


async def test_large_json_is_validated_off_the_loop_with_the_same_answers(
    intake_factory: Any,
) -> None:
    inline = await intake_factory(parse_inline_max_bytes=10_000_000)
    pooled = await intake_factory(parse_inline_max_bytes=1_000)
    template = samples()[1]  # an e-mail
    invalid = {**template, "received_at": "yesterday", "text": "x" * 5_000, "metadata": [1]}
    answers = []
    for intake in (inline, pooled):
        key = await intake.new_key()
        response = await intake.post(invalid, key)
        assert response.status_code == 422
        answers.append({k: v for k, v in response.json().items() if k != "correlation_id"})
        valid = {**template, "text": "你好" * 2_000}
        assert (await intake.post(valid, key)).status_code == 202
    assert answers[0] == answers[1]
    assert {e["field"] for e in answers[1]["errors"]} == {"body.received_at", "body.metadata"}
