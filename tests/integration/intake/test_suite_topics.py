"""The suite and `make run`'s services share the broker but no topic: what a test's service
publishes goes to `test.<topic>`, never to the topic the running stack's services consume (they
used to turn the suite's contacts into ~1,700 tickets in the developer's stack)."""

from __future__ import annotations

from typing import Any

from ccshared.events import decode_event
from ccshared.events.payloads import ContactReceived
from ccshared.kafka import ensure_topics
from feedback.settings import FeedbackSettings
from intake.settings import IntakeSettings
from router.settings import RouterSettings
from sla.settings import SLASettings
from tests.conftest import TOPIC_PREFIX, topic
from tests.integration.intake.conftest import Intake, TopicTail, samples


def has_contact(records: list[Any], contact_id: str) -> bool:
    for record in records:
        _, payload = decode_event(record.value)
        if isinstance(payload, ContactReceived) and str(payload.contact_id) == contact_id:
            return True
    return False


def test_every_service_the_suite_starts_uses_the_suites_topic_prefix() -> None:
    assert TOPIC_PREFIX
    for settings in (IntakeSettings, RouterSettings, SLASettings, FeedbackSettings):
        assert settings().kafka_topic_prefix == TOPIC_PREFIX


async def test_a_contact_posted_in_a_test_is_published_on_the_suites_topic_only(
    intake: Intake, kafka_bootstrap: str
) -> None:
    key = await intake.new_key()
    # On a fresh machine `make run` never made the stack's topic: make it (as the stack would)
    # so that the tail reads it and the absence below is seen, not assumed.
    await ensure_topics(kafka_bootstrap, ["intake.contacts"])
    async with (
        TopicTail(kafka_bootstrap, "intake.contacts") as stacks,
        TopicTail(kafka_bootstrap, topic("intake.contacts")) as suites,
    ):
        response = await intake.post(samples()[0], key)
        assert response.status_code == 202, response.text
        contact_id = response.json()["id"]
        await suites.wait_for(lambda records: has_contact(records, contact_id))
        # One outbox row is one send: seen on the suite's topic, it is not on the stack's.
        assert not has_contact(await stacks.poll(), contact_id)
