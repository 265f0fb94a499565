"""Assembles intake's own parts at start-up (`IntakeParts`: its settings, the asyncpg pool of the
hot path, the contact writer, the API-key verifier, the e-mail/JSON parse pool and the delivery
task of outbound messages) and takes them down at stop. Endpoints and consumers reach them
through `parts_of`, typed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import httpx

from ccshared.db import asyncpg_dsn
from ccshared.service import Runtime
from ccshared.webhook_transport import webhook_client
from intake.db.api_keys import ApiKeyVerifier
from intake.db.writer import ContactWriter
from intake.domain.outbound import RetryPolicy
from intake.settings import IntakeSettings
from intake.tasks.delivery import DeliveryConfig, DeliveryTask, SmtpConfig, SmtpSender
from intake.tasks.parse_pool import ParsePool


@dataclass
class IntakeParts:
    settings: IntakeSettings
    pool: asyncpg.Pool
    writer: ContactWriter
    verifier: ApiKeyVerifier
    parse_pool: ParsePool
    delivery: DeliveryTask
    http: httpx.AsyncClient


def parts_of(runtime: Runtime) -> IntakeParts:
    """The running service's parts (set by `start`)."""
    parts = runtime.parts
    if not isinstance(parts, IntakeParts):
        raise RuntimeError("intake has not started")
    return parts


async def _keep_session(conn: asyncpg.Connection) -> None:
    return None


async def start(runtime: Runtime, settings: IntakeSettings) -> None:
    # The hot path talks to PostgreSQL through asyncpg directly: a few statements per batch of
    # contacts, no ORM.
    pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url.get_secret_value()),
        min_size=1,
        max_size=settings.writer_pool_size,
        server_settings={"application_name": "intake-writer"},
        # Our connections never change session state, so skip the reset query asyncpg
        # otherwise runs on every release (a round trip per batch on the hot path).
        reset=_keep_session,
    )
    writer = ContactWriter(
        pool,
        max_batch=settings.writer_max_batch,
        concurrency=settings.writer_concurrency,
        identity_cache_size=settings.identity_cache_size,
        linger_s=settings.writer_linger_s,
        max_event_bytes=settings.max_contact_bytes,
    )
    writer.start()
    parse_pool = ParsePool(
        workers=settings.parse_workers,
        budget_s=settings.parse_budget_s,
        max_pending=settings.parse_max_pending,
        max_pending_per_owner=settings.parse_max_pending_per_key or None,
        max_wait_s=settings.parse_max_wait_s,
    )
    parse_pool.start()
    http, delivery = _delivery(pool, settings)
    delivery.start()
    runtime.parts = IntakeParts(
        settings=settings,
        pool=pool,
        writer=writer,
        verifier=ApiKeyVerifier(
            pool,
            ttl_s=settings.api_key_cache_s,
            lease_s=settings.rate_lease_s,
            failure_limit=settings.auth_failure_limit,
            failure_window_s=settings.auth_failure_window_s,
        ),
        parse_pool=parse_pool,
        delivery=delivery,
        http=http,
    )


def _delivery(
    pool: asyncpg.Pool, settings: IntakeSettings
) -> tuple[httpx.AsyncClient, DeliveryTask]:
    # Outbound URLs are checked against the address rules at every connection (see
    # ccshared.webhook_transport), not only at registration.
    http = webhook_client(
        settings.outbound_address_rules(),
        user_agent="cc-intake/1",
        max_connections=settings.delivery_concurrency,
        # Every attempt in flight keeps its connection: a receiver gets a steady few.
        max_keepalive=settings.delivery_concurrency,
    )
    smtp = SmtpSender(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value(),
            start_tls=settings.smtp_starttls,
            use_tls=settings.smtp_use_tls,
            timeout_s=settings.delivery_timeout_s,
        )
    )
    config = DeliveryConfig(
        default_mail_from=settings.mail_from,
        reply_windows=settings.reply_windows(),
        policy=RetryPolicy(
            max_attempts=settings.delivery_max_attempts,
            base=timedelta(seconds=settings.delivery_retry_base_s),
            cap=timedelta(seconds=settings.delivery_retry_cap_s),
        ),
        timeout_s=settings.delivery_timeout_s,
        batch=settings.delivery_batch,
        concurrency=settings.delivery_concurrency,
        poll_interval_s=settings.delivery_poll_interval_s,
    )
    return http, DeliveryTask(pool, config, http, smtp)


async def stop(runtime: Runtime) -> None:
    parts = parts_of(runtime)
    await parts.delivery.close()
    await parts.http.aclose()
    parts.parse_pool.close()
    await parts.writer.close()
    await parts.pool.close()
