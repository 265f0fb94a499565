import uuid
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from ccshared.events import (
    CATALOG,
    EVENT_TYPES,
    TOPICS,
    Envelope,
    EventDecodeError,
    decode_event,
    new_event,
)
from ccshared.events.payloads import AgentStatusChanged, ContactReceived, TicketReopened

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def _contact(**overrides: object) -> ContactReceived:
    fields: dict[str, object] = {
        "contact_id": uuid.uuid4(),
        "customer_id": uuid.uuid4(),
        "channel": "chat",
        "external_id": "chat-1",
        "received_at": NOW,
        "text": "你好，请问会员积分怎么兑换？",
    }
    fields.update(overrides)
    return ContactReceived.model_validate(fields)


def test_new_event_is_keyed_by_the_topics_key_field() -> None:
    payload = _contact()
    event = new_event(payload, producer="intake", correlation_id="req-1")
    assert event.topic == "intake.contacts"
    assert event.key == str(payload.customer_id)
    assert event.schema_version == 1
    assert event.correlation_id == "req-1"


def test_event_round_trips_through_bytes_with_chinese_text() -> None:
    event = new_event(_contact(), producer="intake")
    envelope, payload = decode_event(event.to_bytes())
    assert envelope == event
    assert isinstance(payload, ContactReceived)
    assert payload.text == "你好，请问会员积分怎么兑换？"


def test_payload_outside_the_catalog_cannot_be_published() -> None:
    class Stray(BaseModel):
        ticket_id: uuid.UUID

    with pytest.raises(TypeError, match="not an event payload"):
        new_event(Stray(ticket_id=uuid.uuid4()), producer="router")


def test_invalid_payload_is_rejected_at_construction() -> None:
    with pytest.raises(ValidationError) as info:
        _contact(channel="fax")
    assert info.value.errors()[0]["loc"] == ("channel",)


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValidationError):
        TicketReopened(ticket_id=uuid.uuid4(), actor="a", at=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "tombstone"),
        (b"not json", "not a valid envelope"),
        (b'{"event_id": "x"}', "not a valid envelope"),
    ],
)
def test_undecodable_bytes_raise_decode_error(raw: bytes | None, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message):
        decode_event(raw)


def _mutated(**changes: object) -> bytes:
    event = new_event(_contact(), producer="intake")
    return Envelope.model_construct(**{**event.__dict__, **changes}).to_bytes()


def test_unknown_event_type_is_poison() -> None:
    with pytest.raises(EventDecodeError, match="unknown event type"):
        decode_event(_mutated(event_type="contact.teleported"))


def test_newer_schema_version_than_understood_is_poison() -> None:
    with pytest.raises(EventDecodeError, match="newer"):
        decode_event(_mutated(schema_version=99))


def test_payload_not_matching_its_type_is_poison() -> None:
    with pytest.raises(EventDecodeError, match=r"payload of contact\.received is invalid"):
        decode_event(_mutated(payload={"contact_id": "nope"}))


def test_an_agent_event_on_the_tickets_topic_is_keyed_by_the_agent() -> None:
    changed = AgentStatusChanged(
        agent_id="ann",
        from_status="available",
        to_status="away",
        reason="missed_offer",
        actor="router",
        at=datetime.now(UTC),
    )
    envelope = new_event(changed, producer="router")
    assert envelope.event_type == "agent.status_changed"
    assert envelope.key == "ann"
    assert EVENT_TYPES["agent.status_changed"].topic == "router.tickets"


def test_catalog_keys_every_event_by_a_field_of_its_payload() -> None:
    for spec in EVENT_TYPES.values():
        assert spec.partition_key_field in spec.payload.model_fields
        assert spec.key_field is None or spec.key_field != TOPICS[spec.topic].key_field


def test_catalog_names_a_dead_letter_topic_for_every_topic() -> None:
    names = CATALOG.all_topic_names()
    for topic in TOPICS:
        assert topic in names
        assert topic + ".dlq" in names
    assert [t.name for t in CATALOG.consumed_by("router")] == [
        "intake.contacts",
        "sla.events",
        "feedback.events",
        "intake.deliveries",
    ]
