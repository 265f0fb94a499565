"""Webhook URLs may not point into the service's own network: refused at registration (422
naming body.url) in every spelling, and again at delivery after resolving the name."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from ccshared import webhook_transport
from tests.helpers import wait_until
from tests.integration.feedback.conftest import Feedback, WebhookReceiver, now
from tests.integration.feedback.tickets import opened, resolved

INTERNAL_URLS = [
    "http://127.0.0.1:8004/v1/kpis",
    "http://[::1]/x",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://0x7f000001/x",
    "http://2130706433/x",
    "http://017700000001/x",
    "http://127.1/x",
    "http://localhost:8002/v1/tickets",
    "http://LOCALHOST./x",
    "http://127.0.0.1:19092/",  # the broker
    "http://127.0.0.1:55432/",  # the database
    "http://10.0.0.8/x",
    "http://172.20.0.2/x",
    "http://192.168.0.1/admin",
    "http://100.64.0.1/x",
    "http://[fd00::1]/x",
    "http://[fe80::1]/x",
    "http://224.0.0.1/x",
    "http://0.0.0.0:8001/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://[::ffff:a9fe:a9fe]/x",
    "https://metadata.google.internal/computeMetadata/v1/",
]


async def test_internal_webhook_urls_are_refused_at_registration_naming_the_field(
    feedback_factory: Callable[..., Awaitable[Feedback]],
) -> None:
    feedback = await feedback_factory(webhook_allow_hosts="")
    for url in INTERNAL_URLS:
        response = await feedback.client.post("/v1/webhooks", json={"channel": "email", "url": url})
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["field"] == "body.url"
        assert "not allowed" in error["message"], url
    # A name httpx cannot decode would fail every delivery: refused as well.
    undeliverable = await feedback.client.post(
        "/v1/webhooks", json={"channel": "email", "url": "http://\u2603.net/"}
    )
    assert undeliverable.status_code == 422
    assert undeliverable.json()["errors"][0]["field"] == "body.url"
    assert (await feedback.client.get("/v1/webhooks")).json() == []


async def test_changing_a_webhook_url_to_an_internal_address_is_refused(
    feedback_factory: Callable[..., Awaitable[Feedback]],
) -> None:
    feedback = await feedback_factory(webhook_allow_hosts="")
    created = await feedback.client.post(
        "/v1/webhooks", json={"channel": "email", "url": "https://hooks.example/x"}
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    for url in ("http://169.254.169.254/", "http://0x7f000001/"):
        response = await feedback.client.patch(f"/v1/webhooks/{hook['id']}", json={"url": url})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.url"
    stored = await feedback.client.get(f"/v1/webhooks/{hook['id']}")
    assert stored.json()["url"] == "https://hooks.example/x"


async def test_name_resolving_to_a_private_address_at_delivery_fails_without_retries(
    feedback_factory: Callable[..., Awaitable[Feedback]],
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feedback = await feedback_factory(webhook_max_attempts=5)
    port = receiver.base_url.rsplit(":", 1)[1]
    # Unknown to DNS at registration (accepted: delivery checks again); at delivery the name
    # resolves to a public and a private address.
    created = await feedback.client.post(
        "/v1/webhooks", json={"channel": "email", "url": f"http://rebind.invalid:{port}/x"}
    )
    assert created.status_code == 201, created.text

    async def rebound(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"] if host == "rebind.invalid" else [host]

    monkeypatch.setattr(webhook_transport, "resolve_host", rebound)
    ticket, customer, t0 = uuid.uuid4(), uuid.uuid4(), now() - timedelta(hours=1)
    await feedback.publish(opened(ticket, customer, t0), resolved(ticket, customer, t0, now()))

    async def failed() -> dict | None:
        survey = await feedback.survey_of(ticket)
        deliveries = survey["deliveries"] if survey else []
        return deliveries[0] if deliveries and deliveries[0]["status"] == "failed" else None

    delivery = await wait_until(failed)
    [attempt] = delivery["attempt_log"]  # final at once: no retry of a refused address
    assert attempt["status_code"] is None
    assert "rebind.invalid resolves to 10.1.2.3" in attempt["error"]
    assert receiver.received == []
