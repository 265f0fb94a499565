"""A contact accepted while Kafka is down is published, with the right key, once Kafka is back.

This test stops and starts the shared broker (deploy/local/stack.sh): marked `restarts_broker`,
it runs after every other test of the run (tests/conftest.py), and `make run`'s services, if
up, lose Kafka for the seconds it takes (they reconnect; their outboxes hold what they accept).
Leave it out with `-m "not restarts_broker"`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ccshared.events import decode_event
from ccshared.events.payloads import ContactReceived
from tests.conftest import topic
from tests.helpers import wait_until
from tests.integration.intake.conftest import Intake, TopicTail, samples

pytestmark = pytest.mark.restarts_broker

STACK = Path(__file__).resolve().parents[3] / "deploy" / "local" / "stack.sh"


async def stack(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(STACK),
        *args,
        env=os.environ.copy(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


def keys_of(records: list, contact_id: str) -> list[str]:
    keys = []
    for record in records:
        _, payload = decode_event(record.value)
        if isinstance(payload, ContactReceived) and str(payload.contact_id) == contact_id:
            keys.append(record.key.decode())
    return keys


async def test_contact_accepted_while_kafka_is_down_is_published_when_it_is_back(
    intake: Intake, kafka_bootstrap: str
) -> None:
    key = await intake.new_key()
    async with TopicTail(kafka_bootstrap, topic("intake.contacts")) as tail:
        await stack("stop", "kafka")
        try:
            response = await intake.post(samples()[6], key)
            assert response.status_code == 202, response.text
            accepted = response.json()
            await asyncio.sleep(1)  # the relay has tried and failed by now
            assert await intake.count("outbox") == 1
            assert await intake.published() == 0
        finally:
            await stack("start", "kafka")
        records = await tail.wait_for(lambda rs: bool(keys_of(rs, accepted["id"])), timeout=60)
    assert keys_of(records, accepted["id"]) == [accepted["customer_id"]]
    await wait_until(lambda: _drained(intake))


async def _drained(intake: Intake) -> bool:
    return await intake.count("outbox") == 0
