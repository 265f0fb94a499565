from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asyncpg.exceptions import DeadlockDetectedError, UniqueViolationError
from sqlalchemy.exc import DBAPIError

from ccshared.conflicts import in_transaction, is_transient_conflict


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate


def _wrapped(sqlstate: str) -> DBAPIError:
    return DBAPIError("UPDATE ...", {}, _Orig(sqlstate))


def test_deadlocks_and_serialization_failures_are_transient_however_wrapped() -> None:
    assert is_transient_conflict(_wrapped("40P01"))
    assert is_transient_conflict(_wrapped("40001"))
    assert is_transient_conflict(DeadlockDetectedError("deadlock detected"))
    outer = RuntimeError("while storing")
    outer.__cause__ = DeadlockDetectedError("deadlock detected")
    assert is_transient_conflict(outer)
    assert not is_transient_conflict(_wrapped("23505"))
    assert not is_transient_conflict(UniqueViolationError("duplicate key"))
    assert not is_transient_conflict(ValueError("x"))


class _Engine:
    """Only what in_transaction uses: begin() as an async context manager."""

    def __init__(self) -> None:
        self.begun = 0

    def begin(self) -> Any:
        engine = self

        class _Tx:
            async def __aenter__(self) -> str:
                engine.begun += 1
                return "conn"

            async def __aexit__(self, *exc: object) -> None:
                return None

        return _Tx()


def test_a_lost_race_is_run_again_and_other_errors_are_not() -> None:
    engine = _Engine()
    calls: list[str] = []

    async def flaky(conn: Any) -> str:
        calls.append(conn)
        if len(calls) < 3:
            raise _wrapped("40P01")
        return "stored"

    result = asyncio.run(in_transaction(engine, flaky, base_delay_s=0))  # type: ignore[arg-type]
    assert (result, engine.begun) == ("stored", 3)

    async def broken(conn: Any) -> str:
        raise _wrapped("23505")

    with pytest.raises(DBAPIError):
        asyncio.run(in_transaction(_Engine(), broken, base_delay_s=0))  # type: ignore[arg-type]

    async def always(conn: Any) -> str:
        raise _wrapped("40001")

    stubborn = _Engine()
    with pytest.raises(DBAPIError):
        asyncio.run(in_transaction(stubborn, always, attempts=4, base_delay_s=0))  # type: ignore[arg-type]
    assert stubborn.begun == 4


def test_an_endpoint_that_lost_a_race_answers_503_with_retry_after() -> None:
    import httpx
    from fastapi import FastAPI

    from ccshared.http import CorrelationIdMiddleware
    from ccshared.problem_handlers import install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(CorrelationIdMiddleware)

    @app.post("/race")
    async def race() -> None:
        raise _wrapped("40P01")

    @app.post("/broken")
    async def broken() -> None:
        raise _wrapped("23505")

    async def call() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/race"), await client.post("/broken")

    race_response, broken_response = asyncio.run(call())
    assert race_response.status_code == 503
    assert race_response.headers["retry-after"] == "1"
    assert race_response.json()["type"].endswith("/conflict-retry")
    assert broken_response.status_code == 500
    assert "23505" not in broken_response.text


def test_the_consumer_retries_a_lost_race_instead_of_dead_lettering_it() -> None:
    from ccshared.consumer import is_transient

    assert is_transient(_wrapped("40P01"))
    assert not is_transient(_wrapped("23505"))  # a constraint broken by the message is its own
