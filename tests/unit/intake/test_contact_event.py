"""The hand-built contact.received event equals the catalog's typed payload, for every sample."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ccshared.events import decode_event
from ccshared.events.payloads import ContactReceived, CustomerHints
from intake.domain.contact_models import derive_customer_hints, parse_contact
from intake.domain.contacts import (
    contact_document,
    contact_received_event,
    customer_identities,
    request_hash,
    thread_refs,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SAMPLES = [json.loads(line) for line in (FIXTURES / "contacts.jsonl").read_text().splitlines()]
CONTEXT = {"now": datetime(2026, 11, 25, 12, tzinfo=UTC)}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s["external_id"])
def test_event_bytes_decode_to_the_typed_payload(sample: dict[str, object]) -> None:
    contact = parse_contact(sample, context=CONTEXT)
    document = contact_document(contact)
    contact_id, customer_id = uuid.uuid4(), uuid.uuid4()
    event_id, raw = contact_received_event(
        contact, document, contact_id=contact_id, customer_id=customer_id, correlation_id="c-1"
    )
    envelope, payload = decode_event(raw)
    hints = derive_customer_hints(contact)
    expected = ContactReceived(
        contact_id=contact_id,
        customer_id=customer_id,
        channel=contact.channel,
        external_id=contact.external_id,
        received_at=contact.received_at,
        subject=contact.subject,
        text=contact.text,
        language=contact.language,
        customer=CustomerHints(
            name=hints.name,
            email=hints.email,
            phone=hints.phone,
            social_handle=hints.social_handle,
            account_id=hints.account_id,
        ),
        thread=thread_refs(contact),
        channel_data=document.get(contact.channel, {}),
        metadata=contact.metadata,
    )
    assert payload == expected
    assert envelope.event_id == event_id
    assert envelope.key == str(customer_id)
    assert envelope.topic == "intake.contacts"
    assert envelope.correlation_id == "c-1"


def test_request_hash_ignores_key_order_but_not_content() -> None:
    contact = parse_contact(SAMPLES[0], context=CONTEXT)
    reordered = parse_contact(dict(reversed(list(SAMPLES[0].items()))), context=CONTEXT)
    changed = parse_contact({**SAMPLES[0], "text": "另一个问题"}, context=CONTEXT)
    assert request_hash(contact_document(contact)) == request_hash(contact_document(reordered))
    assert request_hash(contact_document(contact)) != request_hash(contact_document(changed))


def test_identities_are_strongest_first_and_handles_carry_their_platform() -> None:
    key_account = parse_contact(SAMPLES[7], context=CONTEXT)
    assert customer_identities(key_account) == [("account", "ACME-0042"), ("phone", "+14155550132")]
    post = parse_contact(SAMPLES[5], context=CONTEXT)
    assert customer_identities(post) == [("handle", "weibo:@晨曦小鹿")]
