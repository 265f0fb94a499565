"""Waiting for the parser is not parsing (REVIEW15 finding 4): the budget times only a body's
own run, a body that waited too long for a free worker is a 503 to retry (never a 422 blaming
the body), and one key's bodies cannot queue up in front of everyone else's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ccshared.problems import Problem
from intake.tasks import parse_pool as parse_pool_module
from intake.tasks.parse_pool import ParsePool

SLOW_S = 1.0


def _slow_or_quick(raw: bytes, context: dict[str, Any]) -> tuple[str, bool]:
    """Stands in for the e-mail parser (in a thread: `workers=0`)."""
    if raw.startswith(b"hostile"):
        time.sleep(SLOW_S)
    return raw.decode(), False


@pytest.fixture(autouse=True)
def slow_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(parse_pool_module._PARSERS, "email", _slow_or_quick)


def _pool(**options: Any) -> Iterator[ParsePool]:
    pool = ParsePool(workers=0, **{"budget_s": 0.1, "max_pending": 16, **options})
    pool.start()
    yield pool
    pool.close()


async def _outcome(call: Any) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        result = await call
    except Problem as problem:
        return f"{problem.status} {(problem.headers or {}).get('Retry-After')}", 0.0
    return result[0], time.perf_counter() - started


async def test_a_body_behind_slow_ones_is_never_refused_as_unparseable() -> None:
    # The reviewer's probe: six slow bodies, then a 5-line e-mail; the budget (+5 s backstop)
    # used to start at submission, so the e-mail got "422 could not be parsed within 0.1 s".
    for pool in _pool():
        hostile = [
            asyncio.create_task(_outcome(pool.email_contact(b"hostile %d" % i, {})))
            for i in range(6)
        ]
        await asyncio.sleep(0.2)
        legit, _ = await _outcome(pool.email_contact(b"legit", {}))
        outcomes = [o for o, _ in await asyncio.gather(*hostile)]
        assert legit == "legit" or legit.startswith("503 "), legit
        assert all(o == f"hostile {i}" or o.startswith("503 ") for i, o in enumerate(outcomes))
        assert not any(o.startswith("422") for o in [legit, *outcomes])


async def test_one_keys_slow_bodies_do_not_hold_up_another_keys() -> None:
    for pool in _pool(max_pending_per_owner=4):
        hostile = [
            asyncio.create_task(_outcome(pool.email_contact(b"hostile", {}, owner="attacker")))
            for _ in range(6)
        ]
        await asyncio.sleep(0.2)
        legit, waited = await _outcome(pool.email_contact(b"legit", {}, owner="integration"))
        outcomes = [o for o, _ in await asyncio.gather(*hostile)]
        assert legit == "legit"
        # Next after the attacker's running body, not behind the ones it has queued.
        assert waited < 1.8 * SLOW_S, waited
        # The attacker may have at most four bodies waiting or running at a time.
        assert outcomes.count("hostile") == 4
        assert outcomes.count("503 1") == 2


async def test_waiting_longer_than_the_limit_for_a_worker_is_a_503_with_retry_after() -> None:
    for pool in _pool(max_wait_s=0.3):
        first = asyncio.create_task(_outcome(pool.email_contact(b"hostile", {}, owner="a")))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        second, _ = await _outcome(pool.email_contact(b"legit", {}, owner="b"))
        assert second.startswith("503 "), second
        assert int(second.split()[1]) >= 1
        assert time.perf_counter() - started < SLOW_S
        assert (await first)[0] == "hostile"
        # The slot is free again once the slow body is done.
        assert (await _outcome(pool.email_contact(b"legit", {}, owner="b")))[0] == "legit"
