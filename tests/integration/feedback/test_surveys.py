"""Survey scheduling, suppression, webhook delivery (signing, retries, attempt record) and the
reminder, driven by real router.tickets events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import orjson
import pytest

from feedback.domain.webhooks import verify_signature
from tests.helpers import wait_until
from tests.integration.feedback.conftest import (
    Feedback,
    FeedbackEvents,
    SlowReceiver,
    WebhookReceiver,
    now,
)
from tests.integration.feedback.tickets import closed, contact, opened, reopened, resolved

H = timedelta(hours=1)


async def _subscribe(feedback: Feedback, url: str, channel: str = "email") -> dict:
    response = await feedback.client.post(
        "/v1/webhooks", json={"channel": channel, "url": url, "description": "test"}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_resolved_ticket_gets_one_survey_as_event_and_signed_webhook(
    feedback_factory: Callable[..., Awaitable[Feedback]],
    feedback_events: FeedbackEvents,
    receiver: WebhookReceiver,
) -> None:
    # The catalog's own router.tickets topic: other tickets may pass by, so look only at ours.
    feedback = await feedback_factory(private_topics=False)
    hook = await _subscribe(feedback, receiver.base_url + "/surveys")
    await _subscribe(feedback, receiver.base_url + "/chat-only", channel="chat")
    ticket, customer, t0 = uuid.uuid4(), uuid.uuid4(), now() - H
    await feedback.publish(opened(ticket, customer, t0), resolved(ticket, customer, t0, now()))

    [event] = await feedback_events.wait_event("survey.requested", ticket_id=ticket)
    payload = event["payload"]
    assert payload["customer_id"] == str(customer)
    assert payload["language"] == "en"
    assert payload["reminder"] is False
    assert payload["url"].startswith("http://feedback.test/v1/surveys/")
    assert event["key"] == str(customer)  # feedback.events is keyed by customer

    await wait_until(lambda: _delivered(feedback, ticket))
    [request] = [r for r in receiver.on("/surveys") if str(ticket).encode() in r.body]
    verify_signature(
        request.headers["x-feedback-signature"], request.body, hook["secret"], int(time.time())
    )
    body = orjson.loads(request.body)
    assert body["url"] == payload["url"]
    assert body["event_id"] == event["event_id"]
    assert "How did we do?" in body["message"]
    chat = [r for r in receiver.on("/chat-only") if str(ticket).encode() in r.body]
    assert chat == []  # another channel's integration is not called

    # The same resolution delivered again, and a reopen + second resolution: still one survey.
    await feedback.publish(reopened(ticket, now()), resolved(ticket, customer, t0, now()))
    ticket2 = uuid.uuid4()
    await feedback.publish(
        opened(ticket2, uuid.uuid4(), t0), resolved(ticket2, uuid.uuid4(), t0, now())
    )
    await feedback_events.wait_event("survey.requested", ticket_id=ticket2)
    assert len(feedback_events.events("survey.requested", ticket_id=ticket)) == 1
    rows = await feedback.db.fetchval("SELECT count(*) FROM surveys WHERE ticket_id = $1", ticket)
    assert rows == 1


async def _delivered(feedback: Feedback, ticket: uuid.UUID) -> bool:
    survey = await feedback.survey_of(ticket)
    return bool(
        survey and survey["deliveries"] and survey["deliveries"][0]["status"] == "delivered"
    )


async def test_customer_surveyed_recently_gets_no_second_survey(feedback: Feedback) -> None:
    customer, t0 = uuid.uuid4(), now() - H
    first, second = uuid.uuid4(), uuid.uuid4()
    await feedback.publish(opened(first, customer, t0), resolved(first, customer, t0, now()))
    await feedback.wait_survey(first, "sent")
    await feedback.publish(opened(second, customer, t0), resolved(second, customer, t0, now()))
    survey = await feedback.wait_survey(second, "suppressed")
    assert survey["suppression_reason"] == "customer_recently_surveyed"


async def test_spam_and_duplicate_tickets_get_no_survey(
    feedback_factory: Callable[..., Awaitable[Feedback]],
) -> None:
    # Phone surveys wait an hour here, so a later close as duplicate finds them unsent.
    feedback = await feedback_factory(survey_delay_phone_s=3600)
    t0 = now() - H
    spam, dup = uuid.uuid4(), uuid.uuid4()
    await feedback.publish(
        opened(spam, uuid.uuid4(), t0), resolved(spam, uuid.uuid4(), t0, now(), code="spam")
    )
    survey = await feedback.wait_survey(spam, "suppressed")
    assert survey["suppression_reason"] == "spam_or_duplicate"

    customer = uuid.uuid4()
    await feedback.publish(
        opened(dup, customer, t0, channel="phone"),
        resolved(dup, customer, t0, now(), channel="phone"),
    )
    scheduled = await feedback.wait_survey(dup, "scheduled")
    assert datetime.fromisoformat(scheduled["due_at"]) > now() + timedelta(minutes=50)
    await feedback.publish(closed(dup, now(), "duplicate"))
    survey = await feedback.wait_survey(dup, "suppressed")
    assert survey["suppression_reason"] == "spam_or_duplicate"


async def test_messaging_survey_outside_the_reply_window_is_not_sent(feedback: Feedback) -> None:
    customer, stale = uuid.uuid4(), uuid.uuid4()
    long_ago = now() - timedelta(hours=30)
    await feedback.publish(
        opened(stale, customer, long_ago, channel="chat"),
        resolved(stale, customer, long_ago, now(), channel="chat"),
    )
    survey = await feedback.wait_survey(stale, "suppressed")
    assert survey["suppression_reason"] == "reply_window_closed"

    # A recent message from the customer on the channel reopens the window.
    fresh, other = uuid.uuid4(), uuid.uuid4()
    await feedback.publish(contact(other, now() - H, channel="chat"), producer="intake")
    await wait_until(
        lambda: feedback.db.fetchval(
            "SELECT count(*) FROM customer_contacts WHERE customer_id = $1", other
        )
    )
    await feedback.publish(
        opened(fresh, other, long_ago, channel="chat"),
        resolved(fresh, other, long_ago, now(), channel="chat"),
    )
    await feedback.wait_survey(fresh, "sent")


async def test_the_reply_window_counts_from_when_the_customer_wrote_not_the_opening(
    feedback: Feedback,
) -> None:
    """A chat contact received eight days ago (the router down or behind) opens a ticket now:
    the customer's last message is eight days old, so the 24 h window is long closed, however
    fresh the ticket."""
    customer, ticket = uuid.uuid4(), uuid.uuid4()
    wrote = now() - timedelta(days=8)
    await feedback.publish(contact(customer, wrote, channel="chat"), producer="intake")
    await feedback.publish(
        opened(ticket, customer, now(), channel="chat", received_at=wrote),
        resolved(ticket, customer, now(), now(), channel="chat"),
    )
    survey = await feedback.wait_survey(ticket, "suppressed")
    assert survey["suppression_reason"] == "reply_window_closed"

    # Intake's event not (yet) seen: the ticket's own received_at is the customer's message.
    other, alone = uuid.uuid4(), uuid.uuid4()
    await feedback.publish(
        opened(alone, other, now(), channel="social", received_at=wrote),
        resolved(alone, other, now(), now(), channel="social"),
    )
    survey = await feedback.wait_survey(alone, "suppressed")
    assert survey["suppression_reason"] == "reply_window_closed"


async def test_failed_webhook_is_retried_with_backoff_and_every_attempt_recorded(
    feedback: Feedback, receiver: WebhookReceiver
) -> None:
    await _subscribe(feedback, receiver.base_url + "/flaky")
    await _subscribe(feedback, receiver.base_url + "/refuses")
    receiver.script["/flaky"] = [500, 503]
    receiver.script["/refuses"] = [400]
    ticket, customer, t0 = uuid.uuid4(), uuid.uuid4(), now() - H
    await feedback.publish(opened(ticket, customer, t0), resolved(ticket, customer, t0, now()))

    async def settled() -> list | None:
        survey = await feedback.survey_of(ticket)
        deliveries = survey["deliveries"] if survey else []
        done = len(deliveries) == 2 and all(d["status"] != "pending" for d in deliveries)
        return deliveries if done else None

    deliveries = await wait_until(settled)
    by_status = {d["status"]: d for d in deliveries}
    flaky, refused = by_status["delivered"], by_status["failed"]
    assert [a["status_code"] for a in flaky["attempt_log"]] == [500, 503, 200]
    assert [a["status_code"] for a in refused["attempt_log"]] == [400]  # 4xx is final
    times = [datetime.fromisoformat(a["at"]) for a in flaky["attempt_log"]]
    assert times[1] - times[0] >= timedelta(seconds=0.05)  # waited the backoff
    assert times[2] - times[1] >= timedelta(seconds=0.1)  # and twice as long next time
    assert len(receiver.on("/flaky")) == 3
    attempts = [r.headers["x-feedback-attempt"] for r in receiver.on("/flaky")]
    assert attempts == ["1", "2", "3"]
    assert len({r.headers["x-feedback-delivery"] for r in receiver.on("/flaky")}) == 1


async def test_unreachable_webhook_gives_up_after_the_configured_attempts(
    feedback_factory: Callable[..., Awaitable[Feedback]],
) -> None:
    feedback = await feedback_factory(webhook_max_attempts=3)
    await _subscribe(feedback, "http://127.0.0.1:9/nothing-listens")
    ticket, customer, t0 = uuid.uuid4(), uuid.uuid4(), now() - H
    await feedback.publish(opened(ticket, customer, t0), resolved(ticket, customer, t0, now()))

    async def failed() -> dict | None:
        survey = await feedback.survey_of(ticket)
        if survey and survey["deliveries"] and survey["deliveries"][0]["status"] == "failed":
            return survey["deliveries"][0]
        return None

    delivery = await wait_until(failed)
    assert delivery["attempts"] == 3
    assert all(a["status_code"] is None and a["error"] for a in delivery["attempt_log"])


async def test_receiver_dripping_its_answer_holds_its_delivery_only_until_the_timeout(
    feedback_factory: Callable[..., Awaitable[Feedback]],
    feedback_events: FeedbackEvents,
    slow_receiver: SlowReceiver,
) -> None:
    feedback = await feedback_factory(webhook_timeout_s=5)
    await _subscribe(feedback, slow_receiver.base_url + "/drip", channel="email")
    ticket, customer, t0 = uuid.uuid4(), uuid.uuid4(), now() - H
    await feedback.publish(opened(ticket, customer, t0), resolved(ticket, customer, t0, now()))

    async def receiving() -> bool:
        return slow_receiver.requests == 1

    await wait_until(receiving)
    # While that delivery is in flight, the scheduler's other work goes on: another ticket's
    # survey is sent before the first delivery has ended.
    other = uuid.uuid4()
    await feedback.publish(
        opened(other, uuid.uuid4(), t0, channel="chat"),
        resolved(other, uuid.uuid4(), t0, now(), channel="chat"),
    )
    await feedback_events.wait_event("survey.requested", ticket_id=other)
    assert await first_attempt(feedback, ticket) is None  # not ended yet

    attempt = await wait_until(lambda: first_attempt(feedback, ticket), timeout=10)
    assert attempt["status_code"] is None
    assert attempt["error"] == "no complete answer within 5 s"
    assert attempt["duration_ms"] < 5_500


async def test_receiver_streaming_without_end_gets_its_delivery_recorded_at_once(
    feedback_factory: Callable[..., Awaitable[Feedback]], slow_receiver: SlowReceiver
) -> None:
    feedback = await feedback_factory(webhook_timeout_s=5)
    await _subscribe(feedback, slow_receiver.base_url + "/endless", channel="email")
    ticket, customer, t0 = uuid.uuid4(), uuid.uuid4(), now() - H
    await feedback.publish(opened(ticket, customer, t0), resolved(ticket, customer, t0, now()))

    attempt = await wait_until(lambda: first_attempt(feedback, ticket))
    assert attempt["status_code"] == 200  # the status counts; the endless body is left unread
    assert attempt["duration_ms"] < 2_000


async def first_attempt(feedback: Feedback, ticket: uuid.UUID) -> dict | None:
    survey = await feedback.survey_of(ticket)
    deliveries = survey["deliveries"] if survey else []
    return deliveries[0]["attempt_log"][0] if deliveries and deliveries[0]["attempt_log"] else None


@pytest.mark.parametrize("language", ["zh-CN"])
async def test_unanswered_survey_gets_exactly_one_reminder(
    feedback_factory: Callable[..., Awaitable[Feedback]],
    feedback_events: FeedbackEvents,
    receiver: WebhookReceiver,
    language: str,
) -> None:
    feedback = await feedback_factory(reminder_after_s=0.3)
    await _subscribe(feedback, receiver.base_url + "/hook")
    ticket, customer, t0 = uuid.uuid4(), uuid.uuid4(), now() - H
    await feedback.publish(
        opened(ticket, customer, t0, language=language),
        resolved(ticket, customer, t0, now(), language=language),
    )
    first, reminder = await feedback_events.wait_event("survey.requested", 2, ticket_id=ticket)
    assert (first["payload"]["reminder"], reminder["payload"]["reminder"]) == (False, True)
    assert reminder["payload"]["url"] == first["payload"]["url"]
    assert first["payload"]["language"] == "zh"
    await feedback.scheduler_rounds(5)
    await feedback_events.poll()
    assert len(feedback_events.events("survey.requested", ticket_id=ticket)) == 2
    await wait_until(lambda: _requests(receiver, 2))
    messages = [orjson.loads(r.body)["message"] for r in receiver.on("/hook")]
    assert messages[0].startswith("您的问题已处理完毕")
    assert messages[1].startswith("温馨提醒")


async def _requests(receiver: WebhookReceiver, count: int) -> bool:
    return len(receiver.on("/hook")) >= count
