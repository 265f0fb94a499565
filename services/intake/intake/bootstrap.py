"""Assembles intake's own parts at start-up (`IntakeParts`: its settings, the asyncpg pool of the
hot path, the contact writer, the API-key verifier and the e-mail/JSON parse pool) and takes
them down at stop. Endpoints and consumers reach them through `parts_of`, typed."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ccshared.db import asyncpg_dsn
from ccshared.service import Runtime
from intake.db.api_keys import ApiKeyVerifier
from intake.db.writer import ContactWriter
from intake.settings import IntakeSettings
from intake.tasks.parse_pool import ParsePool


@dataclass
class IntakeParts:
    settings: IntakeSettings
    pool: asyncpg.Pool
    writer: ContactWriter
    verifier: ApiKeyVerifier
    parse_pool: ParsePool


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
    )


async def stop(runtime: Runtime) -> None:
    parts = parts_of(runtime)
    parts.parse_pool.close()
    await parts.writer.close()
    await parts.pool.close()
