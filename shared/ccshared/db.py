"""Async SQLAlchemy engine helpers and a small forward-only SQL migration runner.

Migrations are plain `NNNN_name.sql` files applied in order, each in its own transaction, recorded
in `schema_migrations`. An advisory lock serializes replicas that start together.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIGRATION_LOCK = 0x6363_6D69  # "ccmi"


def make_engine(database_url: str, *, pool_size: int = 10, app_name: str = "") -> AsyncEngine:
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        # Errors carry the statement but not its parameters: these are customer text, API-key
        # hashes and webhook secrets, and errors end up in logs and dead-letter headers.
        hide_parameters=True,
        connect_args={"server_settings": {"application_name": app_name}} if app_name else {},
    )


def asyncpg_dsn(database_url: str | URL) -> str:
    """The same database as a plain libpq URL, for asyncpg connections of our own (LISTEN)."""
    url = make_url(database_url) if isinstance(database_url, str) else database_url
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


# Column types that asyncpg cannot take as an array parameter directly: sent as text, cast.
_CAST_FROM_TEXT = frozenset({"jsonb", "json"})


Columns = Sequence[tuple[str, str]]


def insert_from_arrays(table: str, columns: Columns, *, prefix: str = "", suffix: str = "") -> str:
    """`INSERT INTO table (...) SELECT ... FROM unnest(:<prefix><column>, ...)`: many rows
    from one array per column (parameters from `array_params` with the same prefix), in the
    order given. A statement of its own, or one of several data-modifying CTEs of one
    statement. Table and column names are the caller's constants, never input."""
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(
        f"CAST(:{prefix}{name} AS {'text' if kind in _CAST_FROM_TEXT else kind}[])"
        for name, kind in columns
    )
    values = ", ".join(
        f"CAST(u.{name} AS {kind})" if kind in _CAST_FROM_TEXT else f"u.{name}"
        for name, kind in columns
    )
    return (
        f"INSERT INTO {table} ({names}) SELECT {values} "  # noqa: S608 - names are ours
        f"FROM unnest({arrays}) WITH ORDINALITY AS u({names}, ord) ORDER BY u.ord {suffix}"
    ).rstrip()


def one_statement(*parts: tuple[str, str]) -> str:
    """Several data-modifying statements as one (one round trip): each part but the last is a
    CTE named by its first element, the last is the main statement. Foreign keys are checked
    at the end of the whole statement, so rows may refer to rows inserted in another part.
    Leave out a part that has nothing to write where writing nothing still costs (an empty
    INSERT still fires statement triggers, such as the outbox's NOTIFY)."""
    *ctes, (_, main) = parts
    if not ctes:
        return main
    return "WITH " + ", ".join(f"{name} AS ({sql})" for name, sql in ctes) + " " + main


def array_params(
    columns: Columns, rows: Sequence[Sequence[Any]], *, prefix: str = ""
) -> dict[str, list[Any]]:
    """The parameters of `insert_from_arrays`: rows (tuples in `columns` order) as columns."""
    return {f"{prefix}{name}": [row[i] for row in rows] for i, (name, _) in enumerate(columns)}


@lru_cache(maxsize=64)
def _insert_many_sql(table: str, columns: tuple[tuple[str, str], ...], suffix: str) -> TextClause:
    return text(insert_from_arrays(table, columns, suffix=suffix))


async def insert_many(
    conn: AsyncConnection,
    table: str,
    columns: Columns,
    rows: Sequence[Sequence[Any]],
    *,
    suffix: str = "",
) -> None:
    """Insert `rows` (tuples in `columns` order; each column given as (name, SQL type)) in one
    statement and one round trip: every column travels as one array and `unnest` turns them
    back into rows, inserted in the order given (identity columns count up in that order).
    `suffix` is appended as is, e.g. "ON CONFLICT DO NOTHING". Table and column names are
    the caller's constants, never input."""
    if not rows:
        return
    await conn.execute(_insert_many_sql(table, tuple(columns), suffix), array_params(columns, rows))


class MigrationMismatch(RuntimeError):
    """The database's migration history disagrees with the migration files."""


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str


def load_migrations(component: str, package: str) -> list[Migration]:
    """Read `<package>/migrations/*.sql`; fails loudly on a badly named file."""
    folder = resources.files(package) / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_FILE.match(entry.name)
        if not match:
            raise ValueError(f"migration file {entry.name!r} must be named NNNN_snake_case.sql")
        found.append(Migration(component, int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{package}: two migrations share a version number")
    return found


async def migrate(engine: AsyncEngine, migrations: Sequence[Migration]) -> list[str]:
    """Apply what is not yet applied; returns the names applied now."""
    applied_now: list[str] = []
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
        try:
            await conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " component text NOT NULL, version int NOT NULL, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now(),"
                    " PRIMARY KEY (component, version))"
                )
            )
            await conn.commit()
            rows = await conn.execute(
                text("SELECT component, version, name FROM schema_migrations")
            )
            done = {(r.component, r.version): r.name for r in rows}
            await conn.commit()
            for migration in migrations:
                applied_as = done.get((migration.component, migration.version))
                if applied_as is not None and applied_as != migration.name:
                    raise MigrationMismatch(
                        f"{migration.component} migration {migration.version:04d} was applied as "
                        f"{applied_as!r} but the file is now {migration.name!r}: applied "
                        "migrations never change; add a new one (or, on a development machine, "
                        "start from an empty database: make reset)"
                    )
                if applied_as is not None:
                    continue
                await _apply(conn, migration)
                applied_now.append(f"{migration.component}/{migration.name}")
                log.info("applied migration %s/%s", migration.component, migration.name)
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.commit()
    return applied_now


async def _apply(conn: AsyncConnection, migration: Migration) -> None:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    # asyncpg runs a multi-statement script as one simple query; wrap it so it is atomic.
    async with driver.transaction():
        await driver.execute(migration.sql)
        await driver.execute(
            "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
            migration.component,
            migration.version,
            migration.name,
        )


def shared_migrations() -> list[Migration]:
    return load_migrations("ccshared", "ccshared")


def migrations_dir(package: str) -> Path:
    return Path(str(resources.files(package) / "migrations"))
