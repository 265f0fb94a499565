"""Chat, social and phone: each message goes to the integration's registered outbound URL,
signed and deduplicable by its message id; reply windows, 4xx/5xx answers and the address
rules (at registration, and again after DNS at every delivery); the integration's delivery
reports."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from ccshared import webhook_transport
from ccshared.events.catalog import INTAKE_DELIVERIES
from ccshared.events.payloads import MessageOutbound
from ccshared.webhooks import SignatureError, verify_signature
from intake.db.outbound import claim_due
from tests.conftest import topic
from tests.helpers import wait_until
from tests.integration.feedback.conftest import WebhookReceiver
from tests.integration.intake.conftest import Intake, TopicTail, publish_outbound

FAST = {"delivery_retry_base_s": 0.05, "delivery_poll_interval_s": 0.05}


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    hook.server = await asyncio.start_server(hook._handle, "127.0.0.1", 0)
    yield hook
    hook.server.close()
    await hook.server.wait_closed()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _register(intake: Intake, key: str, url: str) -> str:
    response = await intake.client.put(
        "/v1/integration/outbound", json={"url": url}, headers=_auth(key)
    )
    assert response.status_code == 200, response.text
    secret: str = response.json()["signing_secret"]
    return secret


def _chat(received_at: datetime, session: str = "s-1") -> dict[str, Any]:
    return {
        "channel": "chat",
        "external_id": f"chat-{uuid.uuid4().hex[:8]}",
        "received_at": received_at.isoformat(),
        "customer": {"name": "Li Wei", "email": f"li.{uuid.uuid4().hex[:6]}@example.cn"},
        "text": "你好，请问会员积分怎么兑换？",
        "chat": {"session_id": session, "visitor_id": "v-1203"},
    }


def _social(received_at: datetime) -> dict[str, Any]:
    return {
        "channel": "social",
        "external_id": f"wb-{uuid.uuid4().hex[:8]}",
        "received_at": received_at.isoformat(),
        "customer": {"social_handle": f"@lu{uuid.uuid4().hex[:6]}"},
        "text": "客服在吗？",
        "social": {"platform": "weibo", "post_id": "5521998", "author": "@晨曦小鹿"},
    }


def _phone() -> dict[str, Any]:
    return {
        "channel": "phone",
        "external_id": f"call-{uuid.uuid4().hex[:8]}",
        "received_at": datetime.now(UTC).isoformat(),
        "customer": {"phone": "+86 138 0013 8000"},
        "text": "missed call",
        "phone": {"caller": "+86 138 0013 8000", "call_id": "c-1", "direction": "inbound"},
    }


async def _contact(intake: Intake, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await intake.post(body, key)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def _message(contact: dict[str, Any], channel: str, **fields: Any) -> MessageOutbound:
    values: dict[str, Any] = {
        "message_id": uuid.uuid4(),
        "ticket_id": uuid.uuid4(),
        "customer_id": uuid.UUID(contact["customer_id"]),
        "channel": channel,
        "author": "agent:amy",
        "text": "您好！积分可在会员中心兑换。",
        "reply_to_contact_id": uuid.UUID(contact["id"]),
        "created_at": datetime.now(UTC),
    }
    return MessageOutbound(**(values | fields))


async def _state(db: asyncpg.Pool, message_id: uuid.UUID, state: str) -> Any:
    return await db.fetchrow(
        "SELECT * FROM outbound_messages WHERE id = $1 AND state = $2", message_id, state
    )


def _deliveries(records: list[Any], message_id: uuid.UUID) -> list[dict[str, Any]]:
    payloads = [orjson.loads(r.value)["payload"] for r in records]
    return [p for p in payloads if p["message_id"] == str(message_id)]


def _reported(records: list[Any], message_id: uuid.UUID) -> list[dict[str, Any]]:
    # The `sent` event may reach the tail after it opened: the relay publishes it a little
    # after the state is stored.
    return [e for e in _deliveries(records, message_id) if e["state"] != "sent"]


async def test_chat_reply_is_posted_signed_with_its_message_id_as_idempotency_key(
    intake_factory: Callable[..., Awaitable[Intake]],
    receiver: WebhookReceiver,
    kafka_bootstrap: str,
) -> None:
    intake = await intake_factory(outbound_allow_hosts="127.0.0.1", **FAST)
    key = await intake.new_key(["chat"], name="widget")
    secret = await _register(intake, key, receiver.base_url + "/outbound")
    contact = await _contact(intake, key, _chat(datetime.now(UTC) - timedelta(minutes=5)))
    message = _message(contact, "chat")

    async with TopicTail(kafka_bootstrap, topic(INTAKE_DELIVERIES)) as deliveries:
        await publish_outbound(kafka_bootstrap, message, times=2)
        records = await deliveries.wait_for(lambda r: bool(_deliveries(r, message.message_id)))
    [sent] = _deliveries(records, message.message_id)
    assert sent["state"] == "sent"
    [request] = receiver.on("/outbound")
    assert request.headers["idempotency-key"] == str(message.message_id)
    assert request.headers["x-intake-attempt"] == "1"
    verify_signature(request.headers["x-intake-signature"], request.body, secret, int(time.time()))
    body = orjson.loads(request.body)
    assert body["message_id"] == str(message.message_id)
    assert body["kind"] == "reply"
    assert body["text"] == "您好！积分可在会员中心兑换。"
    assert body["in_reply_to"]["chat"]["session_id"] == "s-1"
    assert body["in_reply_to"]["external_id"] == contact["external_id"]


async def test_social_reply_within_its_window_is_posted_signed_with_its_message_id(
    intake_factory: Callable[..., Awaitable[Intake]],
    receiver: WebhookReceiver,
    kafka_bootstrap: str,
) -> None:
    intake = await intake_factory(outbound_allow_hosts="127.0.0.1", **FAST)
    key = await intake.new_key(["social"], name="weibo-connector")
    secret = await _register(intake, key, receiver.base_url + "/social")
    # Two hours ago: past chat's one-hour window, within social's 24 hours.
    contact = await _contact(intake, key, _social(datetime.now(UTC) - timedelta(hours=2)))
    message = _message(contact, "social", text="您好！已为您安排退换货。We have arranged it.")

    async with TopicTail(kafka_bootstrap, topic(INTAKE_DELIVERIES)) as deliveries:
        await publish_outbound(kafka_bootstrap, message, times=2)
        records = await deliveries.wait_for(lambda r: bool(_deliveries(r, message.message_id)))
    [sent] = _deliveries(records, message.message_id)
    assert sent["state"] == "sent"
    [request] = receiver.on("/social")
    assert request.headers["idempotency-key"] == str(message.message_id)
    assert request.headers["x-intake-attempt"] == "1"
    verify_signature(request.headers["x-intake-signature"], request.body, secret, int(time.time()))
    with pytest.raises(SignatureError):  # signed with this integration's secret, no other
        verify_signature(
            request.headers["x-intake-signature"], request.body, "whsec_other", int(time.time())
        )
    body = orjson.loads(request.body)
    assert body["message_id"] == body["idempotency_key"] == str(message.message_id)
    assert body["channel"] == "social"
    assert body["kind"] == "reply"
    assert body["text"] == "您好！已为您安排退换货。We have arranged it."
    assert body["in_reply_to"]["external_id"] == contact["external_id"]
    assert body["in_reply_to"]["social"]["platform"] == "weibo"
    assert body["in_reply_to"]["social"]["post_id"] == "5521998"


async def test_an_outbound_url_resolving_to_a_private_address_at_delivery_is_refused(
    intake_factory: Callable[..., Awaitable[Intake]],
    receiver: WebhookReceiver,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name resolved to a public address when it was registered, and to a
    private one when the reply is delivered. The delivery connects to nothing and fails at
    once (a refused address is not retried)."""
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["93.184.216.34"] if len(lookups) == 1 else ["93.184.216.34", "10.0.0.7"]

    monkeypatch.setattr(webhook_transport, "resolve_host", rebinding)
    intake = await intake_factory(**FAST)  # no development allow-list
    key = await intake.new_key(["chat"], name="widget")
    port = receiver.base_url.rsplit(":", 1)[1]
    await _register(intake, key, f"http://hooks.test:{port}/outbound")
    assert lookups == ["hooks.test"]  # registration checked the name, and let it through
    message = _message(await _contact(intake, key, _chat(datetime.now(UTC))), "chat")

    async with TopicTail(kafka_bootstrap, topic(INTAKE_DELIVERIES)) as deliveries:
        await publish_outbound(kafka_bootstrap, message)
        records = await deliveries.wait_for(lambda r: bool(_deliveries(r, message.message_id)))
    [failed] = _deliveries(records, message.message_id)
    assert failed["state"] == "failed"
    assert failed["reason"].startswith("address refused: "), failed["reason"]
    assert "10.0.0.7" in failed["reason"]
    row = await _state(intake.db, message.message_id, "failed")
    assert row["attempts"] == 1
    assert lookups == ["hooks.test", "hooks.test"]  # resolved again at delivery
    assert receiver.received == []


async def test_a_5xx_is_retried_with_the_same_idempotency_key_and_a_4xx_fails_at_once(
    intake_factory: Callable[..., Awaitable[Intake]],
    receiver: WebhookReceiver,
    kafka_bootstrap: str,
) -> None:
    intake = await intake_factory(outbound_allow_hosts="127.0.0.1", **FAST)
    flaky_key = await intake.new_key(["chat"], name="flaky")
    await _register(intake, flaky_key, receiver.base_url + "/flaky")
    refusing_key = await intake.new_key(["chat"], name="refusing")
    await _register(intake, refusing_key, receiver.base_url + "/refusing")
    receiver.script = {"/flaky": [503, 502], "/refusing": [404, 404]}
    now = datetime.now(UTC)
    retried = _message(await _contact(intake, flaky_key, _chat(now, "s-2")), "chat")
    refused = _message(await _contact(intake, refusing_key, _chat(now, "s-3")), "chat")

    await publish_outbound(kafka_bootstrap, retried, refused)
    row = await wait_until(lambda: _state(intake.db, retried.message_id, "sent"), timeout=30)
    assert row["attempts"] == 3
    keys = {r.headers["idempotency-key"] for r in receiver.on("/flaky")}
    assert keys == {str(retried.message_id)}
    assert [r.headers["x-intake-attempt"] for r in receiver.on("/flaky")] == ["1", "2", "3"]

    row = await wait_until(lambda: _state(intake.db, refused.message_id, "failed"), timeout=30)
    assert row["attempts"] == 1
    assert row["reason"] == "http 404"
    assert len(receiver.on("/refusing")) == 1


async def test_replies_outside_the_channels_reply_window_fail_as_reply_window_closed(
    intake_factory: Callable[..., Awaitable[Intake]],
    receiver: WebhookReceiver,
    kafka_bootstrap: str,
) -> None:
    intake = await intake_factory(outbound_allow_hosts="127.0.0.1", **FAST)
    key = await intake.new_key(["chat", "social"], name="messaging")
    await _register(intake, key, receiver.base_url + "/messaging")
    stale = datetime.now(UTC) - timedelta(hours=25)  # past social's 24 h and chat's 1 h
    social = _message(await _contact(intake, key, _social(stale)), "social")
    chat = _message(await _contact(intake, key, _chat(stale, "s-old")), "chat")

    async with TopicTail(kafka_bootstrap, topic(INTAKE_DELIVERIES)) as deliveries:
        await publish_outbound(kafka_bootstrap, social, chat)
        records = await deliveries.wait_for(
            lambda r: bool(_deliveries(r, social.message_id) and _deliveries(r, chat.message_id))
        )
    for message in (social, chat):
        [failed] = _deliveries(records, message.message_id)
        assert failed["state"] == "failed"
        assert failed["reason"] == "reply_window_closed"
    assert receiver.received == []


async def test_a_phone_call_back_request_goes_to_the_telephony_integrations_url(
    intake_factory: Callable[..., Awaitable[Intake]],
    receiver: WebhookReceiver,
    kafka_bootstrap: str,
) -> None:
    intake = await intake_factory(outbound_allow_hosts="127.0.0.1", **FAST)
    key = await intake.new_key(["phone"], name="telephony")
    await _register(intake, key, receiver.base_url + "/telephony")
    contact = await _contact(intake, key, _phone())
    message = _message(contact, "phone", kind="callback_request", text="请回电客户")

    await publish_outbound(kafka_bootstrap, message)
    await wait_until(lambda: _state(intake.db, message.message_id, "sent"), timeout=30)
    [request] = receiver.on("/telephony")
    body = orjson.loads(request.body)
    assert body["kind"] == "callback_request"
    assert body["in_reply_to"]["phone"]["caller"] == "+8613800138000"


async def test_outbound_urls_follow_the_webhook_address_rules(
    intake_factory: Callable[..., Awaitable[Intake]], receiver: WebhookReceiver
) -> None:
    intake = await intake_factory()  # no development allow-list
    key = await intake.new_key(["chat"])
    for url in (
        receiver.base_url,
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hook",
        "http://localhost:8080/hook",
    ):
        response = await intake.client.put(
            "/v1/integration/outbound", json={"url": url}, headers=_auth(key)
        )
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "body.url"
    assert await intake.count("integration_outbound") == 0
    assert (
        await intake.client.get("/v1/integration/outbound", headers=_auth(key))
    ).status_code == 404


async def test_a_registration_shows_its_secret_once_and_rotates_on_request(
    intake_factory: Callable[..., Awaitable[Intake]], receiver: WebhookReceiver
) -> None:
    intake = await intake_factory(outbound_allow_hosts="127.0.0.1")
    key = await intake.new_key(["chat"], name="widget")
    first = await _register(intake, key, receiver.base_url + "/a")
    again = await intake.client.put(
        "/v1/integration/outbound", json={"url": receiver.base_url + "/b"}, headers=_auth(key)
    )
    assert again.json()["signing_secret"] is None
    shown = (await intake.client.get("/v1/integration/outbound", headers=_auth(key))).json()
    assert shown == {
        "url": receiver.base_url + "/b",
        "mail_from": None,
        "signature_header": "X-Intake-Signature",
        "signing_secret": None,
    }
    rotated = await intake.client.put(
        "/v1/integration/outbound", json={"rotate_secret": True}, headers=_auth(key)
    )
    assert rotated.json()["signing_secret"] not in (None, first)
    assert (await intake.client.get("/v1/integration/outbound")).status_code == 401


async def test_delivery_reports_move_the_state_and_are_announced_only_for_own_messages(
    intake_factory: Callable[..., Awaitable[Intake]],
    receiver: WebhookReceiver,
    kafka_bootstrap: str,
) -> None:
    intake = await intake_factory(outbound_allow_hosts="127.0.0.1", **FAST)
    key = await intake.new_key(["chat"], name="widget")
    other_key = await intake.new_key(["chat"], name="someone-else")
    await _register(intake, key, receiver.base_url + "/outbound")
    message = _message(await _contact(intake, key, _chat(datetime.now(UTC))), "chat")
    await publish_outbound(kafka_bootstrap, message)
    await wait_until(lambda: _state(intake.db, message.message_id, "sent"), timeout=30)
    url = f"/v1/messages/{message.message_id}/delivery"

    async def stored() -> tuple[str, str | None]:
        row = await intake.db.fetchrow(
            "SELECT state, provider_message_id FROM outbound_messages WHERE id = $1",
            message.message_id,
        )
        return row["state"], row["provider_message_id"]

    # Another integration's message is not found, and nothing changes.
    other = await intake.client.post(url, json={"state": "delivered"}, headers=_auth(other_key))
    assert other.status_code == 404
    assert "changed" not in other.json()
    unknown = await intake.client.post(
        f"/v1/messages/{uuid.uuid4()}/delivery", json={"state": "read"}, headers=_auth(key)
    )
    assert unknown.status_code == 404
    # Malformed: 422 naming the field, nothing changed.
    for body, field in (
        ({"state": "bounced"}, "body.state"),
        ({}, "body.state"),
        ({"state": "delivered", "at": "yesterday"}, "body.at"),
        ({"state": "delivered", "colour": "red"}, "body.colour"),
    ):
        bad = await intake.client.post(url, json=body, headers=_auth(key))
        assert bad.status_code == 422, body
        assert field in [e["field"] for e in bad.json()["errors"]], bad.json()
    assert await stored() == ("sent", None)

    async with TopicTail(kafka_bootstrap, topic(INTAKE_DELIVERIES)) as deliveries:
        delivered = await intake.client.post(
            url, json={"state": "delivered", "provider_message_id": "wx-1"}, headers=_auth(key)
        )
        assert delivered.json() == {
            "message_id": str(message.message_id),
            "state": "delivered",
            "changed": True,
        }
        read = await intake.client.post(url, json={"state": "read"}, headers=_auth(key))
        assert read.json()["changed"] is True
        late = await intake.client.post(url, json={"state": "delivered"}, headers=_auth(key))
        assert late.json() == {
            "message_id": str(message.message_id),
            "state": "read",
            "changed": False,
        }
        contradiction = await intake.client.post(url, json={"state": "failed"}, headers=_auth(key))
        assert contradiction.status_code == 409
        records = await deliveries.wait_for(lambda r: len(_reported(r, message.message_id)) >= 2)
    reported = _reported(records, message.message_id)
    assert [e["state"] for e in reported] == ["delivered", "read"]
    assert reported[0]["provider_message_id"] == "wx-1"
    assert await stored() == ("read", "wx-1")


async def test_two_replicas_claiming_at_once_never_claim_the_same_message(
    intake_factory: Callable[..., Awaitable[Intake]],
) -> None:
    intake = await intake_factory(delivery_poll_interval_s=60)  # its own task stays idle
    contact = {"customer_id": str(uuid.uuid4()), "id": str(uuid.uuid4())}
    messages = [_message(contact, "chat") for _ in range(60)]
    await intake.db.executemany(
        "INSERT INTO outbound_messages (id, ticket_id, customer_id, channel, kind, payload) "
        "VALUES ($1, $2, $3, 'chat', 'reply', $4)",
        [(m.message_id, m.ticket_id, m.customer_id, m.model_dump_json()) for m in messages],
    )
    other = await asyncpg.create_pool(
        intake.database_url.replace("postgresql+asyncpg", "postgresql"), min_size=1, max_size=2
    )
    try:
        claims = await asyncio.gather(*(claim_due(pool, 7, 60) for pool in [intake.db, other] * 6))
    finally:
        await other.close()
    claimed = [c.message.id for batch in claims for c in batch]
    assert len(claimed) == len(set(claimed)) == 60
    assert (
        await intake.db.fetchval("SELECT count(*) FROM outbound_messages WHERE attempts = 1") == 60
    )


async def test_keys_cli_registers_an_outbound_url_within_the_address_rules(
    intake: Intake, receiver: WebhookReceiver
) -> None:
    env = {**os.environ, "INTAKE_DATABASE_URL": intake.database_url}

    async def keys(*args: str, **extra: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "intake.cli", "keys", *args, env=env | extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    key = await intake.new_key(["chat"], name="widget")
    prefix = key.split("_")[1]
    url = receiver.base_url + "/cli"
    refused = await keys("outbound", prefix, "--url", url)
    assert refused[0] == 2
    assert "loopback" in refused[2]
    assert await intake.count("integration_outbound") == 0

    done, secret, _ = await keys(
        "outbound", prefix, "--url", url, INTAKE_OUTBOUND_ALLOW_HOSTS="127.0.0.1"
    )
    assert done == 0
    assert secret.strip().startswith("whsec_")
    shown = await keys("outbound", prefix)
    assert shown[0] == 0
    assert shown[1] == ""  # the secret is never shown again
    assert url in shown[2]
    stored = await intake.db.fetchrow("SELECT url, signing_secret FROM integration_outbound")
    assert tuple(stored) == (url, secret.strip())
    assert (await keys("outbound", "000000000000"))[0] == 1


async def test_without_a_named_contact_the_customers_latest_on_the_channel_is_answered(
    intake_factory: Callable[..., Awaitable[Intake]],
    receiver: WebhookReceiver,
    kafka_bootstrap: str,
) -> None:
    intake = await intake_factory(outbound_allow_hosts="127.0.0.1", **FAST)
    key = await intake.new_key(["chat"], name="widget")
    await _register(intake, key, receiver.base_url + "/outbound")
    now = datetime.now(UTC)
    earlier = _chat(now - timedelta(minutes=10), "s-earlier")
    later = _chat(now - timedelta(minutes=1), "s-later")
    later["customer"] = earlier["customer"]  # the same customer, writing again
    first = await _contact(intake, key, earlier)
    second = await _contact(intake, key, later)
    assert first["customer_id"] == second["customer_id"]
    message = _message(first, "chat", reply_to_contact_id=None)

    await publish_outbound(kafka_bootstrap, message)
    row = await wait_until(lambda: _state(intake.db, message.message_id, "sent"), timeout=30)
    assert row["reply_to_contact_id"] == uuid.UUID(second["id"])
    [request] = receiver.on("/outbound")
    assert orjson.loads(request.body)["in_reply_to"]["chat"]["session_id"] == "s-later"
