"""The small version of `make chaos`: under load, kill -9 the router and then intake (real uvicorn
processes on fresh databases), start them again, and reconcile: every contact intake answered 202
is stored once, placed on exactly one ticket, and intake knows that ticket.

The suite's shared Kafka and PostgreSQL are not killed here (the tests after this one use them);
`make chaos` kills those too. A restarted service waits out its dead predecessor's Kafka session
(30 s) before it is ready, so both are killed close together and come back together: one wait,
not two.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from bench.chaos import Load, reconcile_contacts
from intake.db.api_keys import create_key
from tests.conftest import KAFKA_BOOTSTRAP, scratch_database
from tests.e2e.conftest import start_group_at_end
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ["phone", "email", "chat", "social"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """One service as a uvicorn subprocess: same database, port and consumer groups across
    restarts, as a crashed and restarted production process would have."""

    def __init__(self, name: str, database_url: str, suffix: str) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        prefix = name.upper()
        self.env = {
            **os.environ,
            f"{prefix}_DATABASE_URL": database_url,
            f"{prefix}_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP,
            f"{prefix}_CONSUMER_GROUP_SUFFIX": suffix,
            f"{prefix}_CONSUMER_OFFSET_RESET": "latest",
            f"{prefix}_OUTBOX_POLL_INTERVAL_S": "0.2",
            f"{prefix}_LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"{self.name}.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.starts += 1

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                assert self.process is not None
                if self.process.poll() is not None:
                    pytest.fail(f"{self.name} exited with {self.process.returncode} at start")
                if time.monotonic() > deadline:
                    pytest.fail(f"{self.name} not ready within {timeout}s")
                await asyncio.sleep(0.2)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
async def services() -> AsyncIterator[tuple[Service, Service]]:
    suffix = f".chaos-{uuid.uuid4().hex[:8]}"
    # Both consume from the end of the shared topics as they are now (not other tests' past).
    await start_group_at_end(KAFKA_BOOTSTRAP, f"router.contacts{suffix}", ["intake.contacts"])
    await start_group_at_end(KAFKA_BOOTSTRAP, f"intake.ticket-links{suffix}", ["router.tickets"])
    async with scratch_database() as intake_db, scratch_database() as router_db:
        intake = Service("intake", intake_db, suffix)
        router = Service("router", router_db, suffix)
        try:
            intake.start()
            router.start()
            await intake.ready()
            await router.ready()
            yield intake, router
        finally:
            intake.stop()
            router.stop()


def _asyncpg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def test_kill_9_intake_and_router_under_load_loses_and_doubles_nothing(
    services: tuple[Service, Service],
) -> None:
    intake, router = services
    intake_db = await asyncpg.connect(_asyncpg(intake.env["INTAKE_DATABASE_URL"]))
    router_db = await asyncpg.connect(_asyncpg(router.env["ROUTER_DATABASE_URL"]))
    try:
        _, key = await create_key(
            intake_db, name="chaos", channels=CHANNELS, rate_per_s=1000, burst=1000
        )
        run = uuid.uuid4().hex[:8]
        async with httpx.AsyncClient(base_url=intake.url, timeout=3) as client:
            # A burst first, so the router has a backlog when it is killed and intake's outbox
            # is busy when it is.
            burst = Load(client, key, run, rate=1000)
            await asyncio.gather(*(burst.post_one(n) for n in range(150)))
            before = len(burst.accepted)
            assert before >= 140, burst.failures

            load = Load(client, key, f"{run}b", rate=40)
            task = asyncio.create_task(load.run_until_stopped())

            async def accepted_more(than: int) -> bool:
                return len(load.accepted) >= than + 10

            await wait_until(lambda: accepted_more(0), timeout=15, interval=0.05)
            router.kill9()
            at_router_kill = len(load.accepted)
            await wait_until(lambda: accepted_more(at_router_kill), timeout=15, interval=0.05)
            intake.kill9()
            router.start()
            intake.start()
            during = len(load.accepted)
            await intake.ready()
            await router.ready()
            await asyncio.sleep(2.0)  # load goes on against the restarted pair
            load.stop()
            await task

        accepted = list(burst.accepted) + list(load.accepted)
        after = len(load.accepted) - during
        assert during > 0, "nothing accepted between the burst and the kills"
        assert after > 0, f"nothing accepted after the restart: {load.failures}"
        assert sum(load.failures.values()) > 0, "the kills went unnoticed by the load"

        ids = [uuid.UUID(i) for i in accepted]

        async def placed() -> bool:
            n = await intake_db.fetchval(
                "SELECT count(*) FROM contacts WHERE id = ANY($1::uuid[]) "
                "AND ticket_id IS NOT NULL",
                ids,
            )
            return bool(n == len(ids))

        await wait_until(placed, timeout=30, interval=0.5)
        counts = await reconcile_contacts(intake_db, router_db, accepted)
        counts.pop("_ticket_ids")
        assert counts["stored"] == counts["accepted"] == len(accepted), counts
        assert counts["ticketed"] == len(accepted), counts
        for violation in (
            "lost",
            "stored_twice",
            "not_ticketed",
            "in_two_tickets",
            "empty_tickets",
            "intake_link_missing",
            "intake_link_wrong",
        ):
            assert counts[violation] == 0, (violation, counts)
        # Each contact has its own customer: one ticket each.
        assert counts["tickets"] == len(accepted), counts
        assert intake.starts == router.starts == 2
    finally:
        await intake_db.close()
        await router_db.close()
