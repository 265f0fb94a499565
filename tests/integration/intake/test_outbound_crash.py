"""kill -9 of intake while it delivers: no accepted reply is lost (each ends sent), and no
receiver gets one attempt of a message twice, nor more copies of a message than attempts (the
reconciliation `make chaos` runs, bench/chaos.py `reconcile_replies`). Intake runs as a real
uvicorn process on a scratch database; the shared Kafka and PostgreSQL are not touched."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench.chaos import mailbox_copies, reconcile_replies
from ccshared.events.payloads import MessageOutbound
from ccshared.kafka import commit_group_at_end, ensure_topics
from deploy.local.mailbox import Mailbox
from intake.consumers.outbound import OUTBOUND_MESSAGES
from intake.consumers.tickets import TICKET_LINKS
from intake.db.api_keys import create_key
from tests.conftest import TOPIC_PREFIX, scratch_database, topic
from tests.helpers import wait_until
from tests.integration.intake.conftest import free_port, publish_outbound

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class SlowReceiver:
    """Answers 200 after a short pause (so attempts are in flight when intake is killed) and
    records each request's Idempotency-Key and attempt."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {}
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length") or 0))
                self.requests.append(
                    (headers.get("idempotency-key", ""), headers.get("x-intake-attempt", ""))
                )
                await asyncio.sleep(0.1)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "uvicorn", "--factory", "intake.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def _ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


def _contact(channel: str, n: int, run: str) -> dict[str, object]:
    body: dict[str, object] = {
        "channel": channel,
        "external_id": f"{run}-{channel}-{n}",
        "received_at": datetime.now(UTC).isoformat(),
        "text": "where is my order?",
        "customer": {"email": f"c{n}.{run}@example.net"},
    }
    if channel == "email":
        body["email"] = {"message_id": f"<{run}-{n}@example.net>", "from": f"c{n}.{run}@x.net"}
    else:
        body["chat"] = {"session_id": f"s-{run}-{n}"}
    return body


async def test_kill_9_during_delivery_loses_no_reply_and_sends_no_attempt_twice(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    receiver = SlowReceiver()
    receiver.server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    hook_port = receiver.server.sockets[0].getsockname()[1]
    mailbox = Mailbox(tmp_path / "mail", port=free_port()).start()
    suffix = f".crash-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, prefix=TOPIC_PREFIX)
    for spec in (TICKET_LINKS, OUTBOUND_MESSAGES):
        await commit_group_at_end(
            kafka_bootstrap, f"intake.{spec.name}{suffix}", [topic(t) for t in spec.topics]
        )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process: subprocess.Popen[bytes] | None = None
    async with scratch_database() as database_url:
        env = {
            **os.environ,
            "INTAKE_DATABASE_URL": database_url,
            "INTAKE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "INTAKE_CONSUMER_GROUP_SUFFIX": suffix,
            "INTAKE_OUTBOX_POLL_INTERVAL_S": "0.2",
            "INTAKE_SMTP_PORT": str(mailbox.address[1]),
            "INTAKE_OUTBOUND_ALLOW_HOSTS": "127.0.0.1",
            "INTAKE_DELIVERY_TIMEOUT_S": "1",  # a lease of 33 s: interrupted attempts retry then
            "INTAKE_DELIVERY_CONCURRENCY": "8",
            "INTAKE_LOG_LEVEL": "WARNING",
        }
        db = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            process = _start(env, port)
            await wait_until(lambda: _ready(url), timeout=90, interval=0.2)
            _, key = await create_key(
                db, name="crash", channels=["chat", "email"], rate_per_s=1e6, burst=10**6
            )
            auth = {"Authorization": f"Bearer {key}"}
            run = uuid.uuid4().hex[:6]
            async with httpx.AsyncClient(base_url=url, timeout=10, headers=auth) as client:
                registered = await client.put(
                    "/v1/integration/outbound", json={"url": f"http://127.0.0.1:{hook_port}/out"}
                )
                assert registered.status_code == 200
                contacts = [
                    (await client.post("/v1/contacts", json=_contact(c, n, run))).json()
                    for c in ("chat", "email")
                    for n in range(10)
                ]
            messages = [
                MessageOutbound(
                    message_id=uuid.uuid4(),
                    ticket_id=uuid.uuid4(),
                    customer_id=uuid.UUID(contact["customer_id"]),
                    channel="chat" if i < 10 else "email",
                    author="agent:amy",
                    text="on its way",
                    reply_to_contact_id=uuid.UUID(contact["id"]),
                    created_at=datetime.now(UTC),
                )
                for i, contact in enumerate(contacts)
                for _ in range(8)
            ]
            ids = [m.message_id for m in messages]
            await publish_outbound(kafka_bootstrap, *messages)

            async def settled(least: int) -> bool:
                n = await db.fetchval(
                    "SELECT count(*) FROM outbound_messages WHERE id = ANY($1::uuid[]) "
                    "AND state <> 'queued'",
                    ids,
                )
                return bool(n >= least)

            await wait_until(lambda: settled(20), timeout=60, interval=0.02)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            interrupted = await db.fetchval(
                "SELECT count(*) FROM outbound_messages WHERE state = 'queued' AND attempts > 0"
            )
            process = _start(env, port)
            await wait_until(lambda: settled(len(ids)), timeout=150, interval=0.2)

            counts = await reconcile_replies(
                db, ids, receiver.requests, mailbox_copies(mailbox.directory)
            )
        finally:
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
            await db.close()
            mailbox.stop()
            receiver.server.close()
    assert counts["replies"] == len(ids) == 160
    assert counts["replies_sent"] == len(ids)
    assert counts["replies_lost"] == counts["replies_unsettled"] == 0
    assert counts["replies_sent_twice"] == 0
    assert counts["replies_received"] >= len(ids)
    assert interrupted > 0  # the kill did cut attempts short: they were retried, not lost
