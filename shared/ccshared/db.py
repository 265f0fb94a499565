"""Async SQLAlchemy engine helpers and a small forward-only SQL migration runner.

Migrations are plain `NNNN_name.sql` files applied in order, each in its own transaction, recorded
in `schema_migrations`. An advisory lock serializes replicas that start together.

A migration waits at most `lock_timeout_s` for each lock: an `ALTER TABLE` queued behind a long
transaction would otherwise block every query on that table behind it for as long as it waits.
It gives up, the queries run again, and it is retried a few times with backoff; then the runner
fails naming the sessions whose open transactions are the likely holders. `statement_timeout_s`
bounds each statement (a table rewrite on a big table belongs in a maintenance window, not a
start-up). A file with the line `-- migrate: no-transaction` runs statement by statement outside a
transaction, for what PostgreSQL refuses inside one (`CREATE INDEX CONCURRENTLY`); it is recorded
only once every statement has run, so each statement must be safe to run again (`DROP INDEX
CONCURRENTLY IF EXISTS` before `CREATE INDEX CONCURRENTLY`: a failed build leaves an invalid index).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import TextClause, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool

log = logging.getLogger(__name__)

_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIGRATION_LOCK = 0x6363_6D69  # "ccmi"
_NO_TRANSACTION = re.compile(r"^--\s*migrate:\s*no-transaction\s*$", re.MULTILINE)


# A pooled connection idle at least this long is tested before use (see `ping_when_idle`).
PING_AFTER_IDLE_S = 2.0


def make_engine(
    database_url: str,
    *,
    pool_size: int = 10,
    app_name: str = "",
    ping_after_idle_s: float = PING_AFTER_IDLE_S,
) -> AsyncEngine:
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        # Errors carry the statement but not its parameters: these are customer text, API-key
        # hashes and webhook secrets, and errors end up in logs and dead-letter headers.
        hide_parameters=True,
        connect_args={"server_settings": {"application_name": app_name}} if app_name else {},
    )
    ping_when_idle(engine.sync_engine.pool, ping_after_idle_s)
    return engine


def ping_when_idle(pool: Pool, idle_s: float) -> None:
    """Test a pooled connection before use only when it has sat in the pool `idle_s` or more;
    a dead one is replaced by a new connection before the caller sees it.

    In place of `pool_pre_ping`, which tests every checkout: with asyncpg a ping is BEGIN,
    `;`, ROLLBACK, three round trips per unit of work, a tenth of a service's CPU under load
    and as many statements for the database. Under load connections go back and out within
    milliseconds and are not tested; a connection that died in use (the database restarted
    mid-statement) fails that unit of work once, and SQLAlchemy then invalidates every
    connection the pool held, which the next checkouts replace (consumers retry what failed;
    an API request gets its 503)."""

    @event.listens_for(pool, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["cc_idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _test_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("cc_idle_since", None)
        if since is None or time.monotonic() - since < idle_s:
            return  # new, or back in the pool a moment ago
        try:
            dbapi_connection.ping()
        except Exception as exc:  # any failure: the pool connects anew
            raise DisconnectionError(f"pooled connection failed its test: {exc}") from exc


def asyncpg_dsn(database_url: str | URL) -> str:
    """The same database as a plain libpq URL, for asyncpg connections of our own (LISTEN)."""
    url = make_url(database_url) if isinstance(database_url, str) else database_url
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


# Column types that asyncpg cannot take as an array parameter directly: sent as text, cast.
_CAST_FROM_TEXT = frozenset({"jsonb", "json"})


Columns = Sequence[tuple[str, str]]


def insert_from_arrays(
    table: str,
    columns: Columns,
    *,
    prefix: str = "",
    suffix: str = "",
    first_param: int | None = None,
    where: str = "",
) -> str:
    """`INSERT INTO table (...) SELECT ... FROM unnest(:<prefix><column>, ...)`: many rows
    from one array per column (parameters from `array_params` with the same prefix), in the
    order given. A statement of its own, or one of several data-modifying CTEs of one
    statement. With `first_param`, the arrays are asyncpg's numbered parameters
    `$<first_param>`, `$<first_param + 1>`, ... in column order instead (values from
    `array_columns`). `where` keeps only some of the rows; it may name the array rows as `u`
    and their 1-based position as `u.ord`. Table and column names are the caller's
    constants, never input."""
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(
        f"CAST({_placeholder(i, name, prefix, first_param)} AS "
        f"{'text' if kind in _CAST_FROM_TEXT else kind}[])"
        for i, (name, kind) in enumerate(columns)
    )
    values = ", ".join(
        f"CAST(u.{name} AS {kind})" if kind in _CAST_FROM_TEXT else f"u.{name}"
        for name, kind in columns
    )
    condition = f"WHERE {where} " if where else ""
    return (
        f"INSERT INTO {table} ({names}) SELECT {values} "  # noqa: S608 - names are ours
        f"FROM unnest({arrays}) WITH ORDINALITY AS u({names}, ord) {condition}"
        f"ORDER BY u.ord {suffix}"
    ).rstrip()


def _placeholder(index: int, name: str, prefix: str, first_param: int | None) -> str:
    return f":{prefix}{name}" if first_param is None else f"${first_param + index}"


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


def array_columns(columns: Columns, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The numbered parameters of `insert_from_arrays(..., first_param=n)`, in order."""
    return [[row[i] for row in rows] for i in range(len(columns))]


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


async def update_row(
    conn: AsyncConnection,
    table: str,
    key: tuple[str, Any],
    changes: Mapping[str, Any],
    *,
    updatable: Collection[str],
    returning: str,
) -> dict[str, Any] | None:
    """`UPDATE table SET <changed columns>, updated_at = now() WHERE <key column> = <key>
    RETURNING <returning>`: a PATCH's partial change. Only the `updatable` columns of `changes`
    are written (others are ignored); returns the row after the change, or None when no row
    has the key. Table and column names are the caller's constants, never input."""
    column, value = key
    written = {k: v for k, v in changes.items() if k in updatable}
    sets = ", ".join([*(f"{k} = :{k}" for k in written), "updated_at = now()"])
    sql = f"UPDATE {table} SET {sets} WHERE {column} = :_key RETURNING {returning}"  # noqa: S608
    found = (await conn.execute(text(sql), {**written, "_key": value})).mappings().first()
    return None if found is None else dict(found)


class MigrationMismatch(RuntimeError):
    """The database's migration history disagrees with the migration files."""


class MigrationTimeout(RuntimeError):
    """A migration gave up waiting for a lock, or ran past the statement timeout."""


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def transactional(self) -> bool:
        """False for a file marked `-- migrate: no-transaction` (on a line of its own)."""
        return _NO_TRANSACTION.search(self.sql) is None


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


_CREATE_HISTORY = text(
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " component text NOT NULL, version int NOT NULL, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (component, version))"
)


async def migrate(
    engine: AsyncEngine,
    migrations: Sequence[Migration],
    *,
    lock_timeout_s: float = 5.0,
    statement_timeout_s: float = 300.0,
    lock_retries: int = 3,
    retry_base_s: float = 1.0,
) -> list[str]:
    """Apply what is not yet applied; returns the names applied now. A migration that times
    out waiting for a lock is retried `lock_retries` times, backing off from `retry_base_s`."""
    applied_now: list[str] = []
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
        try:
            await conn.execute(_CREATE_HISTORY)
            await conn.commit()
            for migration in await _pending(conn, migrations):
                for attempt in range(lock_retries + 1):
                    try:
                        await _apply(conn, migration, lock_timeout_s, statement_timeout_s)
                        break
                    except asyncpg.LockNotAvailableError:
                        if attempt == lock_retries:
                            holders = await _open_transactions(conn)
                            raise MigrationTimeout(
                                f"migration {migration.component}/{migration.name} gave up "
                                f"waiting for a lock after {attempt + 1} attempts of "
                                f"{lock_timeout_s:g}s each (lock timeout): another session holds "
                                "a lock on a table it changes. Open transactions on this "
                                f"database, oldest first: {holders or 'none now'}. Let them end "
                                "(or end them), then migrate again; <SERVICE>_MIGRATION_LOCK_"
                                "TIMEOUT_S sets the wait"
                            ) from None
                        delay = retry_base_s * 2**attempt * random.uniform(0.8, 1.2)
                        log.warning(
                            "migration %s/%s timed out waiting for a lock (attempt %d of %d), "
                            "retrying in %.1fs",
                            migration.component,
                            migration.name,
                            attempt + 1,
                            lock_retries + 1,
                            delay,
                        )
                        await asyncio.sleep(delay)
                    except asyncpg.QueryCanceledError as exc:
                        raise MigrationTimeout(
                            f"migration {migration.component}/{migration.name} ran past the "
                            f"statement timeout ({statement_timeout_s:g}s) and was "
                            f"{'rolled back' if migration.transactional else 'stopped'} ({exc}); "
                            "run a long migration in a maintenance window with a longer "
                            "<SERVICE>_MIGRATION_STATEMENT_TIMEOUT_S"
                        ) from None
                applied_now.append(f"{migration.component}/{migration.name}")
                log.info("applied migration %s/%s", migration.component, migration.name)
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.commit()
    return applied_now


async def pending_migrations(
    engine: AsyncEngine, migrations: Sequence[Migration]
) -> list[Migration]:
    """What `migrate` would apply now (all of them on an empty database)."""
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('schema_migrations') IS NOT NULL"))
        return await _pending(conn, migrations) if exists else list(migrations)


async def _pending(conn: AsyncConnection, migrations: Sequence[Migration]) -> list[Migration]:
    rows = await conn.execute(text("SELECT component, version, name FROM schema_migrations"))
    done = {(r.component, r.version): r.name for r in rows}
    await conn.commit()
    pending = []
    for migration in migrations:
        applied_as = done.get((migration.component, migration.version))
        if applied_as is not None and applied_as != migration.name:
            raise MigrationMismatch(
                f"{migration.component} migration {migration.version:04d} was applied as "
                f"{applied_as!r} but the file is now {migration.name!r}: applied "
                "migrations never change; add a new one (or, on a development machine, "
                "start from an empty database: make reset)"
            )
        if applied_as is None:
            pending.append(migration)
    return pending


async def _apply(
    conn: AsyncConnection, migration: Migration, lock_timeout_s: float, statement_timeout_s: float
) -> None:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    timeouts = (f"{round(lock_timeout_s * 1000)}ms", f"{round(statement_timeout_s * 1000)}ms")
    record = (
        "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
        migration.component,
        migration.version,
        migration.name,
    )
    if migration.transactional:
        # asyncpg runs a multi-statement script as one simple query; wrap it so it is atomic.
        # SET LOCAL: the timeouts end with the transaction, not on the pooled connection.
        async with driver.transaction():
            await driver.execute(_SET_TIMEOUTS.format(*timeouts, scope="LOCAL"))
            await driver.execute(migration.sql)
            await driver.execute(*record)
        return
    assert not driver.is_in_transaction()
    await driver.execute(_SET_TIMEOUTS.format(*timeouts, scope="SESSION"))
    try:
        for statement in split_statements(migration.sql):
            await driver.execute(statement)  # alone: its own implicit transaction
        await driver.execute(*record)
    finally:
        await driver.execute("RESET lock_timeout; RESET statement_timeout")


_SET_TIMEOUTS = "SET {scope} lock_timeout = '{}'; SET {scope} statement_timeout = '{}'"


async def _open_transactions(conn: AsyncConnection, limit: int = 5) -> str:
    """The oldest open transactions of other sessions on this database, described for a
    person (no query text: it may carry customer data)."""
    await conn.rollback()
    rows = await conn.execute(
        text(
            "SELECT pid, application_name, state,"
            " round(extract(epoch FROM now() - xact_start))::int AS age_s"
            " FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND xact_start IS NOT NULL ORDER BY xact_start LIMIT :limit"
        ),
        {"limit": limit},
    )
    described = [
        f"pid {r.pid} ({r.application_name or 'no application name'}, {r.state}, "
        f"transaction open {r.age_s}s)"
        for r in rows
    ]
    await conn.commit()
    return "; ".join(described)


def split_statements(sql: str) -> list[str]:
    """A script's statements, split at the semicolons outside string literals, quoted names,
    comments and dollar-quoted bodies; comment-only pieces are dropped."""
    statements: list[str] = []
    start = i = 0
    code = False  # the current piece has more than whitespace and comments
    n = len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if c in "'\"":
            end = i + 1
            while True:  # a doubled quote is the quote itself
                end = sql.find(c, end)
                if end < 0 or not sql.startswith(c, end + 1):
                    break
                end += 2
            i = n if end < 0 else end + 1
            code = True
            continue
        if c == "$":
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                end = sql.find(tag.group(0), tag.end())
                i = n if end < 0 else end + len(tag.group(0))
                code = True
                continue
        if c == ";":
            if code:
                statements.append(sql[start:i].strip())
            start, code = i + 1, False
        elif not c.isspace():
            code = True
        i += 1
    if code:
        statements.append(sql[start:].strip())
    return statements


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def shared_migrations() -> list[Migration]:
    return load_migrations("ccshared", "ccshared")


def migrations_dir(package: str) -> Path:
    return Path(str(resources.files(package) / "migrations"))
