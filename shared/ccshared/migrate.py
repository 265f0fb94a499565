"""A service's migrations (the shared ones, then its own) as a step of their own.

Each service has a two-line `<service>/migrate.py`, so `python -m intake.migrate` applies intake's
migrations and exits: a deployment runs it as a Job before the new version rolls out, with
`<SERVICE>_MIGRATE_ON_START=false` on the service, which then only checks at start that the schema
is there. The local stack keeps migrating at start (the default).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.db import (
    Migration,
    MigrationMismatch,
    MigrationTimeout,
    load_migrations,
    make_engine,
    migrate,
    pending_migrations,
    shared_migrations,
)
from ccshared.logging import configure_logging
from ccshared.settings import ServiceSettings


class MigrationsPending(RuntimeError):
    """The service was told not to migrate, and its database lacks migrations it needs."""


def service_migrations(settings: ServiceSettings, package: str) -> list[Migration]:
    return shared_migrations() + load_migrations(settings.service_name, package)


async def apply_migrations(
    engine: AsyncEngine, settings: ServiceSettings, migrations: Sequence[Migration]
) -> list[str]:
    return await migrate(
        engine,
        migrations,
        lock_timeout_s=settings.migration_lock_timeout_s,
        statement_timeout_s=settings.migration_statement_timeout_s,
        lock_retries=settings.migration_lock_retries,
    )


async def require_migrated(engine: AsyncEngine, migrations: Sequence[Migration], cmd: str) -> None:
    pending = await pending_migrations(engine, migrations)
    if pending:
        names = ", ".join(f"{m.component}/{m.name}" for m in pending)
        raise MigrationsPending(
            f"{len(pending)} migration(s) not applied yet: {names}; run `{cmd}` "
            "(the deployment's migrate Job), or let the service migrate at start"
        )


def migration_settings(settings_class: type[ServiceSettings]) -> type[ServiceSettings]:
    """The service's shared settings only (database URL, logging, migration timeouts), read
    from its environment: a migrate Job needs none of its keys or secrets, and the service's own
    validation of those (refused outside development) must not stop it."""
    fields = settings_class.model_fields

    class MigrationSettings(ServiceSettings):
        model_config = SettingsConfigDict(
            env_prefix=settings_class.model_config.get("env_prefix") or "",
            extra="ignore",
            frozen=True,
        )
        service_name: str = fields["service_name"].default
        database_url: SecretStr = fields["database_url"].default

    return MigrationSettings


def main(
    settings_class: type[ServiceSettings], package: str, argv: Sequence[str] | None = None
) -> int:
    """The command line of `python -m <package>.migrate`; returns the exit status."""
    cmd = f"python -m {package}.migrate"
    parser = argparse.ArgumentParser(
        prog=cmd,
        description=f"Apply {package}'s database migrations (shared ones first) and exit. "
        f"Settings come from the service's environment variables ({package.upper()}_...).",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="apply nothing; list the pending migrations and exit 1 if there are any",
    )
    args = parser.parse_args(argv)
    try:
        settings = migration_settings(settings_class)()
    except ValidationError as exc:
        print(f"{cmd}: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    return asyncio.run(_run(settings, package, cmd, check=args.check))


async def _run(settings: ServiceSettings, package: str, cmd: str, *, check: bool) -> int:
    engine = make_engine(
        settings.database_url.get_secret_value(),
        pool_size=1,
        app_name=f"{settings.service_name}-migrate",
    )
    migrations = service_migrations(settings, package)
    try:
        if check:
            await require_migrated(engine, migrations, cmd)
            print(f"{package}: up to date ({len(migrations)} migrations)")
            return 0
        applied = await apply_migrations(engine, settings, migrations)
    except (MigrationsPending, MigrationMismatch, MigrationTimeout) as exc:
        print(f"{cmd}: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    for name in applied:
        print(f"applied {name}")
    print(f"{package}: up to date ({len(applied)} applied now, {len(migrations)} in all)")
    return 0
