"""Delivers outbound messages: claims due ones (FOR UPDATE SKIP LOCKED, so replicas share the
work), sends each (e-mail over SMTP, the other channels to the integration's outbound URL,
signed), and records each outcome with its message.delivery_changed event in one transaction.

An attempt is counted when it is claimed, before it is sent: a crash after the claim never sends
that attempt again; the message is claimed as a new attempt once its lease has run out, and the
receiver dedupes it by the message id (the e-mail keeps its Message-ID, the webhook its
Idempotency-Key). Outcomes are recorded in groups (one statement for whatever finished
meanwhile), while the claim loop keeps up to `concurrency` attempts in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

import aiosmtplib
import asyncpg
import httpx

from ccshared.events import Envelope, new_event
from ccshared.events.payloads import MessageDeliveryChanged
from ccshared.webhook_transport import post_webhook
from ccshared.webhooks import AddressRefused, signature_header
from intake.db.outbound import AttemptRecord, ClaimedMessage, claim_due, record_attempts
from intake.domain.outbound import (
    ATTEMPT_HEADER,
    IDEMPOTENCY_HEADER,
    NOTIFICATION,
    SIGNATURE_HEADER,
    EmailRoute,
    Outcome,
    PermanentFailure,
    Refused,
    RetryPolicy,
    Sent,
    Step,
    TemporaryFailure,
    WebhookRoute,
    after_attempt,
    build_email,
    http_outcome,
    new_email_message_id,
    plan_delivery,
    smtp_outcome,
    truncate_reason,
    webhook_body,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str = ""
    password: str = ""
    start_tls: bool = False
    use_tls: bool = False
    timeout_s: float = 10.0
    connections: int = 4


class SmtpSender:
    """Sends e-mail over a few kept-open SMTP connections (a connection per message would cost
    a TCP and SMTP handshake each)."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(config.connections)

    async def _connect(self) -> aiosmtplib.SMTP:
        c = self._config
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            timeout=c.timeout_s,
            use_tls=c.use_tls,
            start_tls=c.start_tls,
            username=c.username or None,
            password=c.password or None,
        )
        await client.connect()
        return client

    async def send(self, mail: bytes, sender: str, recipient: str) -> Outcome:
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            try:
                if client is None or not client.is_connected:
                    client = await self._connect()
                errors, _ = await client.sendmail(sender, [recipient], mail)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                self._keep(client)
                refused = exc.recipients[0]
                return smtp_outcome(refused.code, refused.message)
            except aiosmtplib.SMTPResponseException as exc:
                self._keep(client)
                return smtp_outcome(exc.code, exc.message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await _close_quietly(client)
                return TemporaryFailure(truncate_reason(f"smtp {type(exc).__name__}: {exc}"))
            self._keep(client)
            if errors:
                code, message = next(iter(errors.values()))
                return smtp_outcome(code, message)
            return Sent()

    def _keep(self, client: aiosmtplib.SMTP | None) -> None:
        if client is not None and client.is_connected:
            self._idle.append(client)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await _close_quietly(client)


async def _close_quietly(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        with contextlib.suppress(Exception):
            await client.quit()
        client.close()


@dataclass(frozen=True)
class DeliveryConfig:
    default_mail_from: str
    reply_windows: dict[str, timedelta]
    policy: RetryPolicy
    timeout_s: float = 10.0
    batch: int = 64
    concurrency: int = 32
    poll_interval_s: float = 0.5

    @property
    def lease_s(self) -> float:
        # Longer than an attempt can take (the send's deadline) plus the wait to be recorded.
        return 3 * self.timeout_s + 30


class DeliveryTask:
    def __init__(
        self,
        pool: asyncpg.Pool,
        config: DeliveryConfig,
        http: httpx.AsyncClient,
        smtp: SmtpSender,
    ) -> None:
        self._pool = pool
        self._config = config
        self._http = http
        self._smtp = smtp
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._done: asyncio.Queue[AttemptRecord] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._rng = random.Random()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="delivery-claims"),
            asyncio.create_task(self._record_loop(), name="delivery-records"),
        ]

    def wake(self) -> None:
        """New messages were stored: claim now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Attempts in flight end within the send deadline; record what they got.
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self._config.timeout_s + 1)
        await self._record_pending()
        await self._smtp.close()

    async def _claim_loop(self) -> None:
        while True:
            try:
                claimed = await self._claim()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("claiming outbound messages failed: %s", exc)
                claimed = 0
            except Exception:  # never let the loop die: nothing would be delivered any more
                log.exception("claiming outbound messages failed")
                claimed = 0
            if claimed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._config.poll_interval_s)
                self._wake.clear()

    async def _claim(self) -> int:
        while len(self._in_flight) >= self._config.concurrency:
            self._slot_freed.clear()
            await self._slot_freed.wait()
        free = min(self._config.batch, self._config.concurrency - len(self._in_flight))
        claimed = await claim_due(self._pool, free, self._config.lease_s)
        for item in claimed:
            task = asyncio.create_task(self._attempt(item), name=f"deliver-{item.message.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(claimed)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def _attempt(self, item: ClaimedMessage) -> None:
        try:
            record = await self.attempt(item)
            self._done.put_nowait(record)
        except Exception:
            log.exception("delivering message %s failed", item.message.id)

    async def attempt(self, item: ClaimedMessage) -> AttemptRecord:
        """One attempt at one claimed message, and what to record of it."""
        message, config = item.message, self._config
        now = datetime.now(UTC)
        route = plan_delivery(
            message,
            item.contact,
            item.outbound,
            last_inbound_at=item.last_inbound_at,
            default_mail_from=config.default_mail_from,
            reply_windows=config.reply_windows,
            now=now,
        )
        target: str | None = None
        provider_id: str | None = None
        outcome: Outcome
        if message.attempts > config.policy.max_attempts:
            # The last attempt was cut short (a crash after its claim): no retries are left.
            outcome = PermanentFailure("interrupted: no attempts left")
        elif isinstance(route, Refused):
            outcome = PermanentFailure(route.reason)
        elif isinstance(route, EmailRoute):
            target = route.to
            provider_id = new_email_message_id(message.id, route.mail_from)
            mail = build_email(route, message, email_message_id=provider_id, at=now)
            sender = _address_of(route.mail_from)
            outcome = await self._smtp.send(mail, sender, route.to)
        else:
            target = route.url
            assert item.contact is not None
            outcome = await self._post(route, item, message.attempts)
        step = after_attempt(outcome, message.attempts, config.policy, now, self._rng)
        if isinstance(outcome, Sent) and outcome.provider_message_id:
            provider_id = outcome.provider_message_id
        return AttemptRecord(
            message_id=message.id,
            attempt=message.attempts,
            state=step.state,
            next_attempt_at=step.next_attempt_at,
            reason=step.reason,
            provider_message_id=provider_id,
            target=target,
            event=_event(item, step, provider_id),
        )

    async def _post(self, route: WebhookRoute, item: ClaimedMessage, attempt: int) -> Outcome:
        assert item.contact is not None
        body = webhook_body(item.message, item.contact, attempt=attempt, created_at=item.created_at)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(route.signing_secret, int(time.time()), body),
            IDEMPOTENCY_HEADER: str(item.message.id),
            ATTEMPT_HEADER: str(attempt),
        }
        try:
            status = await post_webhook(
                self._http, route.url, body, headers, self._config.timeout_s
            )
        except AddressRefused as exc:
            return PermanentFailure(truncate_reason(f"address refused: {exc}"))
        except TimeoutError:
            return TemporaryFailure("timeout")
        except httpx.HTTPError as exc:
            return TemporaryFailure(truncate_reason(f"{type(exc).__name__}: {exc}"))
        return http_outcome(status)

    async def _record_loop(self) -> None:
        while True:
            first = await self._done.get()
            records = [first]
            while not self._done.empty():
                records.append(self._done.get_nowait())
            await self._record(records)

    async def _record(self, records: list[AttemptRecord]) -> None:
        delay = 0.2
        while True:
            try:
                await record_attempts(self._pool, records)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # What was sent stays sent: keep trying to record it (a message whose lease
                # runs out meanwhile is attempted again, deduplicated by its id).
                log.warning("recording %d delivery outcomes failed: %s", len(records), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                # Not a passing outage: give these up (their messages are attempted again
                # once their lease has run out) rather than stop recording any.
                log.exception("recording %d delivery outcomes failed", len(records))
                return

    async def _record_pending(self) -> None:
        records: list[AttemptRecord] = []
        while not self._done.empty():
            records.append(self._done.get_nowait())
        if records:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(record_attempts(self._pool, records), 5)


def _event(item: ClaimedMessage, step: Step, provider_id: str | None) -> Envelope | None:
    if step.state == "queued":
        return None  # tried again later: nothing new for the conversation yet
    ticket_id = item.message.ticket_id
    if item.message.kind == NOTIFICATION or ticket_id is None:
        return None  # a notification is in no conversation: its state stays here
    return new_event(
        MessageDeliveryChanged(
            message_id=item.message.id,
            ticket_id=ticket_id,
            state=step.state,
            attempt=item.message.attempts,
            reason=step.reason,
            provider_message_id=provider_id,
            at=datetime.now(UTC),
        ),
        producer="intake",
    )


def _address_of(mailbox: str) -> str:
    """The envelope sender of a From such as `Support <support@example.com>`."""
    return parseaddr(mailbox)[1] or mailbox
