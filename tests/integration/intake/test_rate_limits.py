"""A key's rate limit holds across replicas; repeated failed key attempts are throttled per
client address, in each process and across them."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from tests.helpers import wait_until
from tests.integration.intake.conftest import Intake


def _client(intake: Intake, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=intake.app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://intake")


async def _read(client: httpx.AsyncClient, key: str) -> int:
    """A cheap authenticated request: GET of a contact that does not exist (404 once let in)."""
    response = await client.get(
        f"/v1/contacts/{uuid.uuid4()}", headers={"Authorization": f"Bearer {key}"}
    )
    return response.status_code


async def test_two_replicas_together_stay_within_the_keys_limit(intake_factory: Any) -> None:
    first = await intake_factory()
    second = await intake_factory(first.database_url)
    rate, burst = 0.5, 10
    key = await first.new_key(rate=rate, burst=burst)

    started = time.monotonic()
    codes = []
    for _ in range(20):  # alternating, as a load balancer would
        codes.append(await _read(first.client, key))
        codes.append(await _read(second.client, key))
    elapsed = time.monotonic() - started

    let_in = sum(code == 404 for code in codes)
    assert set(codes) <= {404, 429}
    # Before: each process allowed the whole burst (20 of 40 let in).
    block = 1  # ceil(rate * INTAKE_RATE_LEASE_S), at least one token
    assert let_in <= burst + rate * elapsed + 2 * block
    assert let_in >= burst  # the limit is not stricter than configured either


async def test_replicas_share_one_bucket_under_concurrent_load(intake_factory: Any) -> None:
    first = await intake_factory(rate_lease_s=1.0)
    second = await intake_factory(first.database_url, rate_lease_s=1.0)
    rate, burst = 5.0, 40
    key = await first.new_key(rate=rate, burst=burst)

    started = time.monotonic()
    codes = await asyncio.gather(
        *(_read(intake.client, key) for intake in (first, second) for _ in range(100))
    )
    elapsed = time.monotonic() - started

    block = 5  # ceil(5/s * 1 s)
    # Before: each process let its own burst in (80 of 200).
    assert sum(code == 404 for code in codes) <= burst + rate * elapsed + 2 * block
    assert sum(code == 429 for code in codes) > 0


async def test_a_denied_process_answers_429_without_asking_the_database_again(
    intake: Intake,
) -> None:
    key = await intake.new_key(rate=0.01, burst=1)
    assert [await _read(intake.client, key) for _ in range(2)] == [404, 429]
    await intake.db.execute("DROP TABLE api_key_tokens")  # any lease would now fail

    codes = [await _read(intake.client, key) for _ in range(5)]

    assert codes == [429] * 5


async def test_failed_key_attempts_from_one_address_are_throttled_not_others(
    intake_factory: Any,
) -> None:
    intake = await intake_factory(auth_failure_limit=20)
    attacker, neighbour = _client(intake, "203.0.113.7"), _client(intake, "198.51.100.9")
    forged = "cck_000000000000_forged"
    try:
        tries = [await _read(attacker, forged) for _ in range(20)]
        throttled = await attacker.get(
            f"/v1/contacts/{uuid.uuid4()}", headers={"Authorization": f"Bearer {forged}"}
        )
        posted = await attacker.post("/v1/contacts", json={}, headers={"X-API-Key": forged})
        other = await _read(neighbour, forged)
    finally:
        await attacker.aclose()
        await neighbour.aclose()

    assert tries == [401] * 20
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert throttled.json()["type"].endswith("/rate-limited")
    assert posted.status_code == 429  # the fast path too
    assert other == 401


async def test_a_throttled_address_still_gets_in_with_a_valid_key(intake_factory: Any) -> None:
    # Behind an ingress every integration shares one address: garbage from one of them must
    # not lock the others out (REVIEW15 finding 2). Its bad keys stay refused, with 429.
    intake = await intake_factory(auth_failure_limit=3)
    key = await intake.new_key()
    client = _client(intake, "203.0.113.8")
    try:
        failed = [await _read(client, "nonsense") for _ in range(3)]
        valid = await _read(client, key)
        posted = await client.post("/v1/contacts", json={}, headers={"X-API-Key": key})
        wrong = await _read(client, key[:-4] + "xxxx")
    finally:
        await client.aclose()
    assert failed == [401] * 3
    assert valid == 404  # let in: the contact does not exist
    assert posted.status_code == 422  # let in on the fast path too: the body is invalid
    assert wrong == 429


async def test_failed_attempts_count_across_replicas(intake_factory: Any) -> None:
    # A long window, so that the test does not straddle two of the database's windows.
    first = await intake_factory(auth_failure_limit=10, auth_failure_window_s=3600)
    second = await intake_factory(
        first.database_url, auth_failure_limit=10, auth_failure_window_s=3600
    )
    on_first, on_second = _client(first, "203.0.113.9"), _client(second, "203.0.113.9")
    try:
        for _ in range(5):
            assert await _read(on_first, "cck_000000000000_forged") == 401
            assert await _read(on_second, "cck_000000000000_forged") == 401
        # Ten failures in all, five on each: both replicas now refuse the address, at the
        # latest after one more attempt each (the one that tells it the shared count).
        codes = [await _read(c, "cck_000000000000_forged") for c in (on_first, on_second) * 2]
    finally:
        await on_first.aclose()
        await on_second.aclose()
    assert codes[2:] == [429, 429]


async def test_the_address_is_let_in_again_once_the_window_has_passed(
    intake_factory: Any,
) -> None:
    intake = await intake_factory(auth_failure_limit=2, auth_failure_window_s=2)
    client = _client(intake, "203.0.113.10")
    try:
        assert [await _read(client, "bad") for _ in range(2)] == [401, 401]
        assert await _read(client, "bad") == 429

        async def let_in_again() -> bool:
            return await _read(client, "bad") == 401

        await wait_until(let_in_again, timeout=10, interval=0.2)
    finally:
        await client.aclose()
