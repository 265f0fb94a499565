"""POST/GET /v1/contacts against the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import pytest

from ccshared.events import decode_event
from ccshared.events.payloads import ContactReceived
from tests.conftest import topic
from tests.helpers import wait_until
from tests.integration.intake.conftest import FIXTURES, Intake, TopicTail, bad_samples, samples


def events_for(records: list[Any], contact_ids: set[str]) -> list[tuple[str, ContactReceived]]:
    found = []
    for record in records:
        _, payload = decode_event(record.value)
        assert isinstance(payload, ContactReceived)
        if str(payload.contact_id) in contact_ids:
            found.append((record.key.decode(), payload))
    return found


async def test_every_channel_sample_is_accepted_published_and_keyed_by_customer(
    intake: Intake, kafka_bootstrap: str
) -> None:
    key = await intake.new_key()
    async with TopicTail(kafka_bootstrap, topic("intake.contacts")) as tail:
        accepted = []
        for sample in samples():
            response = await intake.post(sample, key)
            assert response.status_code == 202, response.text
            body = response.json()
            assert body["status"] == "accepted"
            assert response.headers["location"] == f"/v1/contacts/{body['id']}"
            accepted.append(body)
        ids = {a["id"] for a in accepted}
        records = await tail.wait_for(lambda rs: len(events_for(rs, ids)) == len(ids))
    published = dict((str(p.contact_id), (k, p)) for k, p in events_for(records, ids))
    for body in accepted:
        kafka_key, payload = published[body["id"]]
        assert kafka_key == body["customer_id"] == str(payload.customer_id)
    assert {p.channel for _, p in published.values()} == {"phone", "email", "chat", "social"}


async def test_one_customer_is_recognized_across_contacts_and_hints_merge(intake: Intake) -> None:
    key = await intake.new_key()
    maria_1, maria_2 = samples()[1], samples()[2]  # same address, different case
    first = (await intake.post(maria_1, key)).json()
    second = (await intake.post(maria_2, key)).json()
    assert first["customer_id"] == second["customer_id"]

    # A call from a new number that also gives Maria's e-mail joins her, and the number too.
    call = {
        "channel": "phone",
        "external_id": "call-maria",
        "received_at": "2026-11-25T09:00:00Z",
        "customer": {"email": "MARIA.LOPEZ@example.com"},
        "phone": {"caller": "+34 612 345 678", "call_id": "c-m", "direction": "inbound"},
    }
    third = (await intake.post(call, key)).json()
    assert third["customer_id"] == first["customer_id"]
    later = {**call, "external_id": "call-maria-2", "customer": {}}
    fourth = (await intake.post(later, key)).json()
    assert fourth["customer_id"] == first["customer_id"]  # recognized by the phone alone now
    assert await intake.count("customers") == 1


async def test_threading_fields_are_carried_to_the_event(
    intake: Intake, kafka_bootstrap: str
) -> None:
    key = await intake.new_key()
    reply, chat = samples()[2], samples()[4]
    async with TopicTail(kafka_bootstrap, topic("intake.contacts")) as tail:
        ids = {
            (await intake.post(reply, key)).json()["id"],
            (await intake.post(chat, key)).json()["id"],
        }
        records = await tail.wait_for(lambda rs: len(events_for(rs, ids)) == 2)
    threads = {p.channel: p.thread for _, p in events_for(records, ids)}
    assert threads["email"].email_in_reply_to == "<reply-1@shop.example>"
    assert threads["email"].email_references == [
        "<CAF1a9x@mail.example.com>",
        "<reply-1@shop.example>",
    ]
    assert threads["chat"].chat_session_id == "s-44a1"


async def test_raw_rfc822_email_is_accepted_sanitized_and_threaded(intake: Intake) -> None:
    key = await intake.new_key(["email"])
    raw = (FIXTURES / "thread-reply.eml").read_bytes()
    response = await intake.client.post(
        "/v1/contacts",
        content=raw,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "message/rfc822"},
    )
    assert response.status_code == 202, response.text
    stored = (
        await intake.client.get(
            response.headers["location"], headers={"Authorization": f"Bearer {key}"}
        )
    ).json()
    email = stored["contact"]["email"]
    assert stored["external_id"] == "<CAF1c3z@mail.example.com>"
    assert email["in_reply_to"] == "<reply-1@shop.example>"
    assert "<script" not in email["html"]
    assert stored["contact"]["subject"] == "Re: Refund for order 88231 — still waiting"


async def test_sequential_retry_returns_the_original_and_publishes_nothing_new(
    intake: Intake,
) -> None:
    key = await intake.new_key()
    sample = samples()[0]
    first = await intake.post(sample, key, headers={"Idempotency-Key": "retry-1"})
    again = await intake.post(sample, key, headers={"Idempotency-Key": "retry-1"})
    natural = await intake.post(sample, key)  # no key: the channel's own id decides
    assert first.status_code == again.status_code == natural.status_code == 202
    assert first.json()["id"] == again.json()["id"] == natural.json()["id"]
    assert again.json()["status"] == natural.json()["status"] == "duplicate"
    assert again.headers["idempotent-replayed"] == "true"
    await wait_until(lambda: _drained(intake))
    assert await intake.count("contacts") == 1
    assert await intake.published() == 1


async def _drained(intake: Intake) -> bool:
    return await intake.count("outbox") == 0


async def test_concurrent_retries_create_one_contact(intake: Intake) -> None:
    key = await intake.new_key()
    sample = samples()[3]
    responses = await asyncio.gather(*(intake.post(sample, key) for _ in range(25)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sorted(r.json()["status"] for r in responses).count("accepted") == 1
    await wait_until(lambda: _drained(intake))
    assert await intake.count("contacts") == 1
    assert await intake.published() == 1


async def test_same_idempotency_key_with_another_body_is_a_conflict(intake: Intake) -> None:
    key = await intake.new_key()
    first = await intake.post(samples()[0], key, headers={"Idempotency-Key": "k-1"})
    identities = await intake.count("customer_identities")
    # Another customer entirely: the refused contact must not leave that customer behind.
    other = await intake.post(samples()[7], key, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409
    problem = other.json()
    assert problem["existing_contact_id"] == first.json()["id"]
    assert "Idempotency-Key" in problem["detail"]
    assert await intake.count("contacts") == 1
    assert await intake.count("customers") == 1
    assert await intake.count("customer_identities") == identities


async def test_same_channel_id_with_another_body_is_a_conflict(intake: Intake) -> None:
    key = await intake.new_key()
    sample = samples()[0]
    await intake.post(sample, key)
    changed = {**sample, "text": "A different call with the same id"}
    response = await intake.post(changed, key)
    assert response.status_code == 409
    assert sample["external_id"] in response.json()["detail"]
    assert await intake.count("contacts") == 1


@pytest.mark.parametrize("bad", bad_samples(), ids=lambda b: b["why"])
async def test_bad_contact_is_refused_naming_the_field_and_leaves_no_trace(
    intake: Intake, bad: dict[str, Any]
) -> None:
    key = await intake.new_key()
    response = await intake.post(bad["body"], key)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["errors"], problem
    assert all(e["field"].startswith("body") for e in problem["errors"])
    for table in ("contacts", "customers", "customer_identities", "outbox"):
        assert await intake.count(table) == 0


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(channel="fax"), "body.channel"),
        (lambda b: b["phone"].update(caller="12"), "body.phone.caller"),
        (lambda b: b.update(received_at="2099-01-01T00:00:00Z"), "body.received_at"),
        (lambda b: b.update(received_at="2026-11-25T01:02:03"), "body.received_at"),
        (lambda b: b.update(text={"$ne": 1}), "body.text"),
        (lambda b: b.update(text="nul\x00byte"), "body.text"),
        (lambda b: b.pop("external_id"), "body.external_id"),
        (lambda b: b["customer"].update(email="not-an-address"), "body.customer.email"),
        (lambda b: b.update(surprise=1), "body.surprise"),
    ],
)
async def test_each_bad_input_class_names_its_field(
    intake: Intake, mutate: Any, field: str
) -> None:
    key = await intake.new_key()
    body = copy.deepcopy(samples()[0])
    mutate(body)
    response = await intake.post(body, key)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["errors"]}
    assert await intake.count("contacts") == 0


async def test_non_json_body_wrong_type_and_oversized_body_are_refused(
    intake_factory: Any,
) -> None:
    intake = await intake_factory(max_body_bytes=4096)
    key = await intake.new_key()
    auth = {"Authorization": f"Bearer {key}"}
    garbage = await intake.client.post(
        "/v1/contacts", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert garbage.status_code == 422
    assert garbage.json()["errors"][0]["field"] == "body"
    form = await intake.client.post(
        "/v1/contacts", content=b"a=b", headers={**auth, "Content-Type": "text/plain"}
    )
    assert form.status_code == 415
    huge = {**samples()[0], "text": "漏水" * 5000}
    too_big = await intake.post(huge, key)
    assert too_big.status_code == 413
    assert await intake.count("contacts") == 0


async def test_missing_wrong_and_revoked_keys_are_401(intake: Intake) -> None:
    from intake.db.api_keys import revoke_key

    sample = samples()[0]
    missing = await intake.client.post("/v1/contacts", json=sample)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    key = await intake.new_key()
    forged = key[:-4] + "AAAA"
    assert (await intake.post(sample, forged)).status_code == 401
    assert (await intake.post(sample, "cck_nonsense")).status_code == 401
    await revoke_key(intake.db, key.split("_")[1])
    assert (await intake.post(sample, key)).status_code == 401
    assert await intake.count("contacts") == 0


async def test_key_may_post_only_its_channels(intake: Intake) -> None:
    key = await intake.new_key(["email"])
    response = await intake.post(samples()[0], key)  # a phone contact
    assert response.status_code == 403
    assert response.json()["allowed_channels"] == ["email"]
    assert await intake.count("contacts") == 0
    header_key = await intake.client.post(
        "/v1/contacts", json=samples()[1], headers={"X-API-Key": key}
    )
    assert header_key.status_code == 202


async def test_rate_limit_answers_429_with_retry_after(intake: Intake) -> None:
    key = await intake.new_key(rate=0.5, burst=2)
    sample = samples()[5]
    codes = [(await intake.post(sample, key)).status_code for _ in range(2)]
    limited = await intake.post(sample, key)
    assert codes == [202, 202]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["type"].endswith("/rate-limited")


async def test_batch_reports_each_item_and_stores_only_the_good_ones(intake: Intake) -> None:
    key = await intake.new_key(["phone", "email", "chat"])
    good = samples()
    await intake.post(good[1], key)  # already stored: a duplicate in the batch
    items = [good[0], bad_samples()[1]["body"], good[1], good[5], good[3]]
    response = await intake.client.post(
        "/v1/contacts:batch", json={"items": items}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    assert [r["status"] for r in results] == [
        "accepted",
        "invalid",
        "duplicate",
        "forbidden",
        "accepted",
    ]
    assert {e["field"] for e in results[1]["errors"]} >= {"phone.caller"}
    assert await intake.count("contacts") == 3


async def test_batch_larger_than_the_limit_is_refused_whole(intake_factory: Any) -> None:
    intake = await intake_factory(batch_max_items=2)
    key = await intake.new_key()
    response = await intake.client.post(
        "/v1/contacts:batch",
        json={"items": samples()[:3]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 422
    assert await intake.count("contacts") == 0


async def test_get_shows_the_ticket_once_the_router_placed_the_contact(
    intake: Intake, kafka_bootstrap: str
) -> None:
    from datetime import UTC, datetime

    from ccshared.events import new_event
    from ccshared.events.payloads import TicketOpened
    from ccshared.kafka import make_producer

    key = await intake.new_key()
    accepted = (await intake.post(samples()[0], key)).json()
    url = f"/v1/contacts/{accepted['id']}"
    auth = {"Authorization": f"Bearer {key}"}
    assert (await intake.client.get(url, headers=auth)).json()["ticket_id"] is None

    ticket_id = uuid.uuid4()
    opened = new_event(
        TicketOpened(
            ticket_id=ticket_id,
            customer_id=uuid.UUID(accepted["customer_id"]),
            contact_id=uuid.UUID(accepted["id"]),
            channel="phone",
            category="complaint",
            priority="high",
            opened_at=datetime.now(UTC),
        ),
        producer="router",
    )
    producer = make_producer(kafka_bootstrap, "fake-router")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic("router.tickets"),
            opened.to_bytes(),
            key=opened.key.encode(),
            headers=[("event_type", b"ticket.opened")],
        )
        await producer.send_and_wait(  # redelivered: still one effect
            topic("router.tickets"),
            opened.to_bytes(),
            key=opened.key.encode(),
            headers=[("event_type", b"ticket.opened")],
        )
    finally:
        await producer.stop()

    async def linked() -> bool:
        body = (await intake.client.get(url, headers=auth)).json()
        return body["ticket_id"] == str(ticket_id)

    await wait_until(linked, timeout=30)
    other_key = await intake.new_key(["email"])
    hidden = await intake.client.get(url, headers={"Authorization": f"Bearer {other_key}"})
    assert hidden.status_code == 404
    missing = await intake.client.get(f"/v1/contacts/{uuid.uuid4()}", headers=auth)
    assert missing.status_code == 404
