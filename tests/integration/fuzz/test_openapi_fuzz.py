"""Hostile input, generated from each service's own OpenAPI document (schemathesis): whatever
a client sends to any of the four services, the answer is never a server error. Bounded: a few
examples per operation.

The services run as real uvicorn processes on fresh databases, as they do in production.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import KAFKA_BOOTSTRAP, pg_url
from tests.helpers import as_supervisor

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _database(name: str, drop: bool = False) -> None:
    admin = await asyncpg.connect(pg_url("postgres", "postgresql"))
    try:
        await admin.execute(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            if drop
            else f'CREATE DATABASE "{name}"'
        )
    finally:
        await admin.close()


def _serve(service: str) -> Iterator[str]:
    name = f"t_fuzz_{uuid.uuid4().hex[:10]}"
    asyncio.run(_database(name))
    port = _free_port()
    prefix = service.upper()
    env = {
        **os.environ,
        f"{prefix}_DATABASE_URL": pg_url(name),
        f"{prefix}_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP,
        f"{prefix}_CONSUMER_GROUP_SUFFIX": f".fuzz-{uuid.uuid4().hex[:8]}",
        f"{prefix}_CONSUMER_OFFSET_RESET": "latest",
        f"{prefix}_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"{service}.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{service} did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        asyncio.run(_database(name, drop=True))


@pytest.fixture(scope="module")
def intake_schema() -> Iterator[schemathesis.BaseSchema]:
    for url in _serve("intake"):
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def router_schema() -> Iterator[schemathesis.BaseSchema]:
    for url in _serve("router"):
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def sla_schema() -> Iterator[schemathesis.BaseSchema]:
    for url in _serve("sla"):
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def feedback_schema() -> Iterator[schemathesis.BaseSchema]:
    for url in _serve("feedback"):
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


BOUNDED = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _fuzz(schema: schemathesis.BaseSchema, headers: dict[str, str] | None = None) -> int:
    """Every operation, a few generated requests each; returns how many operations ran."""
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ("/healthz", "/readyz"):
            continue  # no input; /readyz answers 503 by design while a dependency is down

        @given(case=operation.as_strategy())
        @BOUNDED
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error], headers=headers)

        call()
        operations += 1
    return operations


def test_intake_never_answers_a_server_error(intake_schema: schemathesis.BaseSchema) -> None:
    # post, batch, get, metrics, the outbound URL (put, get), a delivery report
    assert _fuzz(intake_schema) == 7


def test_router_never_answers_a_server_error(router_schema: schemathesis.BaseSchema) -> None:
    assert _fuzz(router_schema) >= 15  # without a token: 401s
    assert _fuzz(router_schema, as_supervisor()) >= 15  # as a supervisor, past the door


def test_sla_never_answers_a_server_error(sla_schema: schemathesis.BaseSchema) -> None:
    assert _fuzz(sla_schema) >= 10
    assert _fuzz(sla_schema, as_supervisor()) >= 10


def test_feedback_never_answers_a_server_error(feedback_schema: schemathesis.BaseSchema) -> None:
    assert _fuzz(feedback_schema) >= 10
    assert _fuzz(feedback_schema, as_supervisor()) >= 10
