"""Migrations as a step of their own: `python -m <service>.migrate` (what a deployment's Job
runs) applies a service's migrations and is idempotent, and a service started with
`<SERVICE>_MIGRATE_ON_START=false` applies nothing itself but refuses to start on a database the
Job has not migrated."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from ccshared.db import asyncpg_dsn, make_engine
from ccshared.migrate import MigrationsPending, apply_migrations, service_migrations
from ccshared.service import create_service_app
from intake.settings import IntakeSettings


async def run_migrate(
    service: str, database_url: str, *args: str, **env_vars: str
) -> tuple[int, str, str]:
    env = {
        **os.environ,
        f"{service.upper()}_DATABASE_URL": database_url,
        f"{service.upper()}_LOG_JSON": "false",
        **env_vars,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"{service}.migrate",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def applied(database_url: str) -> set[tuple[str, str]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT component, name FROM schema_migrations")
    finally:
        await conn.close()
    return {(r["component"], r["name"]) for r in rows}


async def test_python_m_intake_migrate_applies_intakes_migrations_once(
    fresh_database: str,
) -> None:
    status, out, err = await run_migrate("intake", fresh_database, "--check")
    assert status == 1, (out, err)
    assert "intake/0001_contacts.sql" in err  # names what is pending

    status, out, err = await run_migrate("intake", fresh_database)
    assert status == 0, err
    assert "applied ccshared/0001_outbox_and_inbox.sql" in out
    assert "applied intake/0001_contacts.sql" in out
    first = await applied(fresh_database)
    assert ("intake", "0001_contacts.sql") in first

    status, out, err = await run_migrate("intake", fresh_database)  # the Job runs again
    assert status == 0, err
    assert "applied" not in out.replace("applied now", "")
    assert "0 applied now" in out
    assert await applied(fresh_database) == first

    status, out, err = await run_migrate("intake", fresh_database, "--check")
    assert status == 0, err


@pytest.mark.parametrize("service", ["router", "sla", "feedback"])
async def test_every_service_has_its_migrate_command_which_needs_no_keys(
    fresh_database: str, service: str
) -> None:
    # A Job has the database URL only: keys and secrets the service itself would check (and
    # refuse outside development) are neither needed nor read.
    env = {
        "CC_DEVELOPMENT": "0",
        f"{service.upper()}_AUTH_PUBLIC_KEY": "not a key",
        f"{service.upper()}_TOKEN_SECRET": "short",
    }
    status, _, err = await run_migrate(service, fresh_database, **env)
    assert status == 0, err
    components = {component for component, _ in await applied(fresh_database)}
    assert components == {"ccshared", service}


async def test_migrate_command_reports_bad_settings_without_a_traceback() -> None:
    status, _, err = await run_migrate("intake", "mysql://nope")
    assert status == 2
    assert "database_url" in err
    assert "Traceback" not in err


def _intake(database_url: str) -> tuple[IntakeSettings, FastAPI]:
    settings = IntakeSettings(
        database_url=SecretStr(database_url), log_json=False, migrate_on_start=False
    )
    app = create_service_app(
        settings, title="t", description="t", package="intake", startup_deadline_s=1
    )
    return settings, app


async def test_service_told_not_to_migrate_refuses_an_unmigrated_database(
    fresh_database: str,
) -> None:
    _, app = _intake(fresh_database)
    with pytest.raises(MigrationsPending, match=r"python -m intake\.migrate"):
        async with app.router.lifespan_context(app):
            pass
    with pytest.raises(asyncpg.UndefinedTableError):
        await applied(fresh_database)  # it applied nothing, not even the history table


async def test_service_told_not_to_migrate_starts_once_the_job_has_migrated(
    fresh_database: str,
) -> None:
    settings, app = _intake(fresh_database)
    engine = make_engine(fresh_database, pool_size=1)
    try:
        await apply_migrations(engine, settings, service_migrations(settings, "intake"))
    finally:
        await engine.dispose()
    async with app.router.lifespan_context(app):
        assert app.state.runtime is not None
