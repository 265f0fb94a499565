"""Key accounts: CRUD, and call-backs that become follow-up requests when due."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.integration.feedback.conftest import Feedback, FeedbackEvents, now


async def test_due_callback_becomes_a_follow_up_and_the_schedule_moves_on(
    feedback: Feedback, feedback_events: FeedbackEvents
) -> None:
    customer = uuid.uuid4()
    started = datetime(2025, 1, 31, 9, tzinfo=UTC)
    created = await feedback.client.post(
        "/v1/key-accounts",
        json={
            "customer_id": str(customer),
            "name": "Acme 公司",
            "relationship_started_at": started.isoformat(),
            "channel": "phone",
            "language": "zh",
            "first_callback_at": now().isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    [event] = await feedback_events.wait_event(
        "followup.requested", customer_id=customer, reason="key_account_callback"
    )
    assert event["payload"]["channel"] == "phone"
    assert "Acme 公司" in event["payload"]["note"]

    account = (await feedback.client.get(f"/v1/key-accounts/{customer}")).json()
    assert len(account["callbacks"]) == 1
    assert account["callbacks"][0]["follow_up_id"] == event["payload"]["follow_up_id"]
    next_due = datetime.fromisoformat(account["next_callback_at"])
    assert next_due > now()
    # More than a year in: quarterly, on the start's day of month (clamped).
    assert (next_due.year * 12 + next_due.month - (2025 * 12 + 1)) % 3 == 0
    assert next_due - now() <= timedelta(days=92)
    await feedback.scheduler_rounds(3)
    await feedback_events.poll()
    assert len(feedback_events.events("followup.requested", customer_id=customer)) == 1


async def test_new_relationship_is_called_back_monthly(feedback: Feedback) -> None:
    customer = uuid.uuid4()
    started = now() - timedelta(days=40)
    created = await feedback.client.post(
        "/v1/key-accounts",
        json={
            "customer_id": str(customer),
            "name": "New Co",
            "relationship_started_at": started.isoformat(),
        },
    )
    next_due = datetime.fromisoformat(created.json()["next_callback_at"])
    months = (next_due.year - started.year) * 12 + next_due.month - started.month
    assert months == 2  # the second monthly call-back; the first one is already past


async def test_key_account_crud_and_errors(feedback: Feedback) -> None:
    customer = uuid.uuid4()
    body = {
        "customer_id": str(customer),
        "name": "Globex",
        "relationship_started_at": "2020-01-15T00:00:00Z",
    }
    assert (await feedback.client.post("/v1/key-accounts", json=body)).status_code == 201
    assert (await feedback.client.post("/v1/key-accounts", json=body)).status_code == 409
    bad = await feedback.client.post(
        "/v1/key-accounts", json={**body, "relationship_started_at": "2020-01-15T00:00:00"}
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.relationship_started_at"
    patched = await feedback.client.patch(
        f"/v1/key-accounts/{customer}", json={"active": False, "name": "Globex Corp"}
    )
    assert (patched.json()["active"], patched.json()["name"]) == (False, "Globex Corp")
    listed = (await feedback.client.get("/v1/key-accounts")).json()
    assert [a["customer_id"] for a in listed] == [str(customer)]
    assert (await feedback.client.delete(f"/v1/key-accounts/{customer}")).status_code == 204
    assert (await feedback.client.get(f"/v1/key-accounts/{customer}")).status_code == 404


async def test_webhook_crud_returns_the_secret_once(feedback: Feedback) -> None:
    created = await feedback.client.post(
        "/v1/webhooks", json={"channel": "social", "url": "https://example.test/hook"}
    )
    assert created.status_code == 201
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    fetched = (await feedback.client.get(f"/v1/webhooks/{hook['id']}")).json()
    assert "secret" not in fetched
    patched = await feedback.client.patch(f"/v1/webhooks/{hook['id']}", json={"active": False})
    assert patched.json()["active"] is False
    listed = await feedback.client.get("/v1/webhooks", params={"channel": "social"})
    assert [h["id"] for h in listed.json()] == [hook["id"]]
    bad = await feedback.client.post("/v1/webhooks", json={"channel": "fax", "url": "nope"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"body.channel", "body.url"}
    assert (await feedback.client.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    assert (await feedback.client.get(f"/v1/webhooks/{hook['id']}")).status_code == 404


async def test_every_change_of_a_key_account_publishes_the_customers_segment_with_a_new_version(
    feedback: Feedback, feedback_events: FeedbackEvents
) -> None:
    """The registry is the one source of who is a key account: create, change, deactivate,
    remove and create again each publish customer.segment_changed (keyed by customer), with
    one more version each; a refused create publishes nothing."""
    customer = uuid.uuid4()
    account = {
        "customer_id": str(customer),
        "name": "Acme",
        "relationship_started_at": (now() - timedelta(days=10)).isoformat(),
    }
    assert (await feedback.client.post("/v1/key-accounts", json=account)).status_code == 201
    assert (await feedback.client.post("/v1/key-accounts", json=account)).status_code == 409
    path = f"/v1/key-accounts/{customer}"
    assert (await feedback.client.patch(path, json={"name": "Acme Ltd"})).status_code == 200
    assert (await feedback.client.patch(path, json={"active": False})).status_code == 200
    assert (await feedback.client.delete(path)).status_code == 204
    assert (await feedback.client.post("/v1/key-accounts", json=account)).status_code == 201
    events = await feedback_events.wait_event(
        "customer.segment_changed", count=5, customer_id=customer
    )
    assert [(e["payload"]["segment"], e["payload"]["version"]) for e in events] == [
        ("key_account", 1),
        ("key_account", 2),
        (None, 3),
        (None, 4),
        ("key_account", 5),
    ]
    assert {e["payload"]["source"] for e in events} == {"feedback.key_accounts"}
    keys = {r.key for r in feedback_events.records if str(customer).encode() in r.value}
    assert keys == {str(customer).encode()}
