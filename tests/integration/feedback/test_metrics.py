"""Feedback's own counters on /metrics: surveys sent, and webhook deliveries by outcome
(delivered, retrying, failed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from tests.helpers import wait_until
from tests.integration.feedback.conftest import Feedback, WebhookReceiver
from tests.integration.feedback.tickets import opened, resolved


def _counts() -> dict[str, float]:
    found = {
        outcome: REGISTRY.get_sample_value(
            "cc_feedback_webhook_deliveries_total", {"outcome": outcome}
        )
        or 0.0
        for outcome in ("delivered", "retrying", "failed")
    }
    found["surveys"] = (
        REGISTRY.get_sample_value("cc_feedback_surveys_sent_total", {"kind": "survey"}) or 0.0
    )
    return found


async def test_surveys_sent_and_webhook_deliveries_are_counted_by_outcome(
    feedback: Feedback, receiver: WebhookReceiver
) -> None:
    for path in ("/flaky", "/refuses"):
        response = await feedback.client.post(
            "/v1/webhooks",
            json={"channel": "email", "url": receiver.base_url + path, "description": "test"},
        )
        assert response.status_code == 201, response.text
    receiver.script["/flaky"] = [503]
    receiver.script["/refuses"] = [400]
    before = _counts()
    ticket, customer = uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    await feedback.publish(
        opened(ticket, customer, t0), resolved(ticket, customer, t0, datetime.now(UTC))
    )

    async def settled() -> dict[str, float] | None:
        after = _counts()
        change = {k: after[k] - before[k] for k in after}
        return change if change["delivered"] + change["failed"] >= 2 else None

    assert await wait_until(settled) == {
        "delivered": 1,  # /flaky, at its second attempt
        "retrying": 1,  # /flaky's first
        "failed": 1,  # /refuses: a 4xx is final
        "surveys": 1,
    }
