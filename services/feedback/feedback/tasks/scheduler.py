"""The feedback scheduler: sends due surveys and their one reminder, turns due key-account
call-backs into follow-up requests, and delivers webhooks with retries.

Each step claims its rows with FOR UPDATE SKIP LOCKED, so several replicas may run it at once.
Database work and the events it announces commit together (outbox); webhook HTTP calls happen
outside any transaction and each attempt is recorded afterwards. Deliveries run as tasks of
their own, at most `webhook_concurrency` at a time and each within `webhook_timeout_s`: a round
claims only as many as there are free slots and does not wait for them, so a slow receiver
holds one slot for at most the timeout and never the surveys, reminders or call-backs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared import tracing
from ccshared.events import new_event
from ccshared.events.payloads import FollowUpRequested, SurveyRequested
from ccshared.outbox import enqueue
from ccshared.tasks import finish_or_cancel
from ccshared.webhook_transport import post_webhook
from feedback.db.facts import FactChanges, fold_rollup_deltas
from feedback.db.key_accounts import advance_callback, claim_due_callbacks, record_callback
from feedback.db.surveys import (
    claim_due_reminders,
    claim_due_surveys,
    drop_reminder,
    last_customer_message,
    last_message_at,
    mark_reminded,
    mark_sent,
    suppress_survey,
)
from feedback.db.webhooks import claim_due_deliveries, queue_deliveries, record_attempt
from feedback.domain.callbacks import next_callback_after
from feedback.domain.surveys import SurveyPolicy, may_send_now, reminder_due_at
from feedback.domain.texts import texts_for
from feedback.domain.tokens import issue_token
from feedback.domain.webhooks import (
    SIGNATURE_HEADER,
    AddressRefused,
    is_retryable_status,
    retry_delay,
    signature_header,
)
from feedback.metrics import SURVEYS_SENT, WEBHOOK_DELIVERIES
from feedback.settings import FeedbackSettings

log = logging.getLogger(__name__)

KPI_FOLD_BATCH = 5_000
"""KPI rollup deltas folded per transaction (feedback.db.facts.fold_rollup_deltas)."""


def survey_url(settings: FeedbackSettings, survey_id: uuid.UUID, expires_at: datetime) -> str:
    token = issue_token(survey_id, expires_at, settings.token_secret.get_secret_value().encode())
    return f"{settings.public_base_url.rstrip('/')}/v1/surveys/{token}"


@dataclass
class SchedulerStats:
    surveys_sent: int = 0
    surveys_skipped: int = 0
    reminders_sent: int = 0
    callbacks_requested: int = 0
    deliveries_attempted: int = 0
    deliveries_succeeded: int = 0
    ticks: int = 0
    failures: int = 0


class FeedbackScheduler:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: FeedbackSettings,
        http: httpx.AsyncClient,
        tracer: Tracer | None = None,
    ) -> None:
        self.engine = engine
        self.tracer = tracer  # the service's, when tracing is on: sending continues the trace
        self.settings = settings
        self.policy: SurveyPolicy = settings.survey_policy()
        self.http = http
        self.stats = SchedulerStats()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._more_due = False  # the last claim filled its slots: claim again when one frees

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="feedback-scheduler")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace_s: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        await finish_or_cancel(self._task, grace_s)
        # An unfinished delivery keeps its claim until the lease ends, then is sent again.
        if self._deliveries:
            _, unfinished = await asyncio.wait(self._deliveries, timeout=grace_s)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:  # the loop must outlive a failed round
                self.stats.failures += 1
                log.exception("scheduler round failed; retrying next round")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.scheduler_interval_s)

    async def tick(self) -> None:
        """One round of everything that may be due; repeats a step while it fills its batch."""
        self.stats.ticks += 1
        limit = self.settings.scheduler_batch
        while await self.send_due_surveys() >= limit:
            pass
        while await self.send_reminders() >= limit:
            pass
        while await self.request_due_callbacks() >= limit:
            pass
        while await self.deliver_webhooks() >= limit:
            pass
        while await self.fold_kpi_deltas() >= KPI_FOLD_BATCH:
            pass

    async def fold_kpi_deltas(self) -> int:
        """The KPI rollup deltas written since the last round, added into the rollup rows
        (reads add the pending ones themselves: this only keeps them few)."""
        async with self.engine.begin() as conn:
            return await fold_rollup_deltas(conn, KPI_FOLD_BATCH)

    # -- surveys ---------------------------------------------------------------------------

    async def _announce(
        self, conn: AsyncConnection, survey: dict[str, Any], expires_at: datetime, reminder: bool
    ) -> None:
        """survey.requested on Kafka, and a signed webhook to each integration of the channel;
        when traced, in a span continuing the trace of the contact whose ticket's resolution
        scheduled the survey (`surveys.traceparent`)."""
        if self.tracer is None or survey["traceparent"] is None:
            await self._enqueue_announcement(conn, survey, expires_at, reminder)
            return
        with tracing.continuing(
            survey["traceparent"],
            "survey reminder send" if reminder else "survey send",
            self.tracer,
            {"cc.survey_id": str(survey["id"]), "cc.ticket_id": str(survey["ticket_id"])},
        ):
            await self._enqueue_announcement(conn, survey, expires_at, reminder)

    async def _enqueue_announcement(
        self, conn: AsyncConnection, survey: dict[str, Any], expires_at: datetime, reminder: bool
    ) -> None:
        url = survey_url(self.settings, survey["id"], expires_at)
        payload = SurveyRequested(
            survey_id=survey["id"],
            ticket_id=survey["ticket_id"],
            customer_id=survey["customer_id"],
            channel=survey["channel"],
            language=survey["language"],
            url=url,
            expires_at=expires_at,
            reminder=reminder,
        )
        event = new_event(payload, producer="feedback")
        await enqueue(conn, event)
        texts = texts_for(survey["language"])
        body = orjson.dumps(
            {
                "type": "survey.requested",
                "event_id": str(event.event_id),
                **payload.model_dump(mode="json"),
                "title": texts.title,
                "message": (texts.reminder_intro + " " if reminder else "")
                + texts.message.format(url=url),
            }
        ).decode()
        await queue_deliveries(
            conn,
            channel=survey["channel"],
            survey_id=survey["id"],
            event_id=event.event_id,
            body=body,
            now=datetime.now(UTC),
        )

    async def _window_open(
        self, conn: AsyncConnection, survey: dict[str, Any], now: datetime
    ) -> bool:
        last = await last_customer_message(conn, survey["customer_id"], survey["channel"])
        return may_send_now(survey["channel"], now, last_message_at(last, survey), self.policy)

    async def send_due_surveys(self) -> int:
        now = datetime.now(UTC)
        sent_before = self.stats.surveys_sent
        async with self.engine.begin() as conn:
            due = await claim_due_surveys(conn, now, self.settings.scheduler_batch)
            facts = FactChanges(conn)
            for survey in due:
                if not await self._window_open(conn, survey, now):
                    await suppress_survey(conn, survey["id"], "reply_window_closed")
                    self.stats.surveys_skipped += 1
                    continue
                expires_at = now + self.policy.link_ttl
                await mark_sent(
                    conn, survey["id"], now, expires_at, reminder_due_at(now, self.policy)
                )
                await facts.update(survey["ticket_id"], {"survey_sent": True})
                await self._announce(conn, survey, expires_at, reminder=False)
                self.stats.surveys_sent += 1
            await facts.flush()
        SURVEYS_SENT.labels("survey").inc(self.stats.surveys_sent - sent_before)
        return len(due)

    async def send_reminders(self) -> int:
        now = datetime.now(UTC)
        sent_before = self.stats.reminders_sent
        async with self.engine.begin() as conn:
            due = await claim_due_reminders(conn, now, self.settings.scheduler_batch)
            for survey in due:
                if not await self._window_open(conn, survey, now):
                    await drop_reminder(conn, survey["id"])
                    continue
                await mark_reminded(conn, survey["id"], now)
                await self._announce(conn, survey, survey["expires_at"], reminder=True)
                self.stats.reminders_sent += 1
        SURVEYS_SENT.labels("reminder").inc(self.stats.reminders_sent - sent_before)
        return len(due)

    # -- key accounts --------------------------------------------------------------------

    async def request_due_callbacks(self) -> int:
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            due = await claim_due_callbacks(conn, now, self.settings.scheduler_batch)
            for account in due:
                follow_up_id = uuid.uuid4()
                if await record_callback(
                    conn, follow_up_id, account["customer_id"], account["next_callback_at"], now
                ):
                    await enqueue(
                        conn,
                        new_event(
                            FollowUpRequested(
                                follow_up_id=follow_up_id,
                                customer_id=account["customer_id"],
                                reason="key_account_callback",
                                channel=account["channel"],
                                language=account["language"],
                                note=f"Scheduled call-back for key account {account['name']}",
                                due_at=account["next_callback_at"],
                            ),
                            producer="feedback",
                        ),
                    )
                    self.stats.callbacks_requested += 1
                # Call-backs missed while the service was down collapse into this one.
                await advance_callback(
                    conn,
                    account["customer_id"],
                    next_callback_after(
                        account["relationship_started_at"], max(now, account["next_callback_at"])
                    ),
                )
        return len(due)

    # -- webhooks --------------------------------------------------------------------------

    async def deliver_webhooks(self) -> int:
        """Claims due deliveries for the free sending slots and starts them; returns how many.
        Does not wait for them: each records its own attempt."""
        free = min(
            self.settings.webhook_concurrency - len(self._deliveries), self.settings.scheduler_batch
        )
        if free <= 0:
            self._more_due = True
            return 0
        now = datetime.now(UTC)
        lease = timedelta(seconds=self.settings.webhook_timeout_s * 2 + 5)
        async with self.engine.begin() as conn:
            claimed = await claim_due_deliveries(conn, now, now + lease, free)
        self._more_due = len(claimed) == free
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery), name="feedback-webhook")
            self._deliveries.add(task)
            task.add_done_callback(self._delivery_done)
        return len(claimed)

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.stats.failures += 1
            log.error("webhook delivery failed", exc_info=exc)
        if self._more_due and not self._stopping.is_set():
            self.wake()  # a slot is free and more may be due

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        attempt: int = delivery["attempts"]
        status_code: int | None = None
        error: str | None = None
        refused = False
        started = time.perf_counter()
        at = datetime.now(UTC)
        if not delivery["active"]:
            error = "subscription deactivated"
        else:
            body = delivery["body"].encode()
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature_header(delivery["secret"], int(time.time()), body),
                "X-Feedback-Delivery": str(delivery["id"]),
                "X-Feedback-Event": "survey.requested",
                "X-Feedback-Attempt": str(attempt),
            }
            try:
                status_code = await post_webhook(
                    self.http, delivery["url"], body, headers, self.settings.webhook_timeout_s
                )
            except TimeoutError:
                error = f"no complete answer within {self.settings.webhook_timeout_s:g} s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
            except AddressRefused as exc:
                error, refused = f"address refused: {exc}"[:500], True
            except (httpx.InvalidURL, UnicodeError) as exc:  # never deliverable
                error, refused = f"invalid URL: {type(exc).__name__}: {exc}"[:500], True
        self.stats.deliveries_attempted += 1
        duration_ms = round((time.perf_counter() - started) * 1000)
        next_attempt_at: datetime | None = None
        if status_code is not None and 200 <= status_code < 300:
            outcome = "delivered"
            self.stats.deliveries_succeeded += 1
        elif (
            delivery["active"]
            and not refused  # pointing at an internal address is not a passing fault
            and (status_code is None or is_retryable_status(status_code))
            and attempt < self.settings.webhook_max_attempts
        ):
            outcome = "pending"
            next_attempt_at = datetime.now(UTC) + retry_delay(
                attempt,
                base=timedelta(seconds=self.settings.webhook_retry_base_s),
                cap=timedelta(seconds=self.settings.webhook_retry_cap_s),
                jitter=0.1,
            )
        else:
            outcome = "failed"
        async with self.engine.begin() as conn:
            await record_attempt(
                conn,
                delivery_id=delivery["id"],
                attempt=attempt,
                at=at,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
                outcome=outcome,
                next_attempt_at=next_attempt_at,
            )
        WEBHOOK_DELIVERIES.labels("retrying" if outcome == "pending" else outcome).inc()
        if next_attempt_at is not None and next_attempt_at - datetime.now(UTC) < timedelta(
            seconds=self.settings.scheduler_interval_s
        ):
            # A retry due before the next round: come back for it on time.
            asyncio.get_running_loop().call_later(
                max((next_attempt_at - datetime.now(UTC)).total_seconds(), 0), self.wake
            )
