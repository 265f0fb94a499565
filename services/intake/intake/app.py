"""Builds the intake service's app; nothing runs at import time."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from ccshared.db import asyncpg_dsn
from ccshared.service import Runtime, create_service_app
from intake.api.endpoints import document_contact_schema, router
from intake.api.fast import IntakeApp
from intake.api.parse_pool import ParsePool
from intake.consumers.tickets import TICKET_LINKS
from intake.db.api_keys import ApiKeyVerifier
from intake.db.writer import ContactWriter
from intake.settings import IntakeSettings


async def _keep_session(conn: asyncpg.Connection) -> None:
    return None


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    async def on_start(runtime: Runtime) -> None:
        # The hot path talks to PostgreSQL through asyncpg directly: a few statements per
        # batch of contacts, no ORM.
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
        )
        parse_pool.start()
        runtime.extras.update(
            pool=pool,
            writer=writer,
            parse_pool=parse_pool,
            verifier=ApiKeyVerifier(
                pool,
                ttl_s=settings.api_key_cache_s,
                lease_s=settings.rate_lease_s,
                failure_limit=settings.auth_failure_limit,
                failure_window_s=settings.auth_failure_window_s,
            ),
        )

    async def on_stop(runtime: Runtime) -> None:
        runtime.extras["parse_pool"].close()
        await runtime.extras["writer"].close()
        await runtime.extras["pool"].close()

    app = create_service_app(
        settings,
        title="Contact center — Intake",
        description=(
            "The REST API that channel integrations (telephony, e-mail gateways, chat widgets, "
            "social connectors) post customer contacts to. Authenticate with the integration's "
            "API key (`Authorization: Bearer cck_...`); create keys with "
            "`python -m intake.keys create`."
        ),
        package="intake",
        routers=[router],
        consumers=[TICKET_LINKS],
        max_body_bytes=settings.max_body_bytes,
        on_start=on_start,
        on_stop=on_stop,
        app_class=IntakeApp,
    )
    document_contact_schema(app)
    return app
