"""The operator's command for parked outbox rows, against a scratch database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared import outbox_admin
from ccshared.db import asyncpg_dsn
from ccshared.outbox import OutboxRelay, pending_count
from tests.helpers import wait_until
from tests.integration.shared.test_outbox_parked import poison_row

_INSERT = text(
    "INSERT INTO outbox (topic, key, event_id, event_type, value, headers) "
    "VALUES (:topic, :key, :event_id, :event_type, :value, CAST(:headers AS jsonb))"
)


async def park(engine: AsyncEngine, url: str, *rows: dict[str, object]) -> None:
    """Rows for an invalid topic name, parked by a relay (no Kafka needed to refuse them)."""
    async with engine.begin() as conn:
        await conn.execute(_INSERT, list(rows))
    relay = OutboxRelay(asyncpg_dsn(url), lambda: _NoKafka())  # type: ignore[arg-type,return-value]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    parked = 0

    async def all_parked() -> bool:
        nonlocal parked
        parked += await relay.drain_once(conn)
        return parked == len(rows)

    try:
        await wait_until(all_parked)
    finally:
        await conn.close()


class _NoKafka:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


@pytest.fixture
async def db(engine: AsyncEngine, fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    yield conn
    await conn.close()


async def test_parked_rows_are_listed_and_shown_with_their_error(
    engine: AsyncEngine, fresh_database: str, db: asyncpg.Connection
) -> None:
    first, second = poison_row("bad topic!", b'{"a": 1}'), poison_row("bad topic?", b"x" * 5000)
    await park(engine, fresh_database, first, second)

    listed = await outbox_admin.list_parked(db)
    assert [r.event_id for r in listed] == [first["event_id"], second["event_id"]]
    assert listed[1].size == 5000
    assert all(r.error.startswith("InvalidTopicError") for r in listed)
    found = await outbox_admin.show_parked(db, listed[0].id)
    assert found is not None
    row, value = found
    assert (row.topic, value) == ("bad topic!", b'{"a": 1}')
    assert await outbox_admin.show_parked(db, 999_999) is None


async def test_republish_moves_the_row_back_into_the_outbox_and_discard_deletes_it(
    engine: AsyncEngine, fresh_database: str, db: asyncpg.Connection
) -> None:
    rows = [poison_row(f"bad topic {n}", b"{}") for n in range(3)]
    await park(engine, fresh_database, *rows)
    ids = [r.id for r in await outbox_admin.list_parked(db)]

    assert await outbox_admin.republish(db, [ids[0], 424242]) == [ids[0]]
    queued = await db.fetch("SELECT id, event_id, topic FROM outbox")
    assert [(q["event_id"], q["topic"]) for q in queued] == [
        (rows[0]["event_id"], rows[0]["topic"])
    ]
    assert queued[0]["id"] > max(ids)  # a new row: published after what is already waiting

    assert await outbox_admin.discard(db, [ids[1]]) == [ids[1]]
    assert [r.id for r in await outbox_admin.list_parked(db)] == [ids[2]]
    assert await outbox_admin.discard(db, everything=True) == [ids[2]]
    assert await outbox_admin.parked_count(db) == 0
    async with engine.connect() as conn:
        assert await pending_count(conn) == 1


async def test_the_command_line_lists_and_republishes(
    engine: AsyncEngine,
    fresh_database: str,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    row = poison_row("bad topic!", "客户".encode() * 10, key=str(uuid.uuid4()))
    await park(engine, fresh_database, row)
    cli = outbox_admin.parser()

    assert await outbox_admin._run(cli.parse_args(["--database-url", fresh_database, "list"])) == 0
    out = capsys.readouterr().out
    assert str(row["event_id"]) in out
    assert "InvalidTopicError" in out
    assert "1 parked row(s)" in out
    [parked] = await outbox_admin.list_parked(db)

    args = ["--database-url", fresh_database, "show", str(parked.id)]
    assert await outbox_admin._run(cli.parse_args(args)) == 0
    assert "客户" not in capsys.readouterr().out  # the value only on request
    assert await outbox_admin._run(cli.parse_args([*args, "--value"])) == 0
    assert "客户" in capsys.readouterr().out

    args = ["--database-url", fresh_database, "republish", "--all"]
    assert await outbox_admin._run(cli.parse_args(args)) == 0
    assert "re-published 1 row(s)" in capsys.readouterr().out
    assert await outbox_admin.parked_count(db) == 0


async def test_the_command_line_reads_the_database_url_from_the_services_variable(
    engine: AsyncEngine,
    fresh_database: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not from its arguments, which any user of the machine reads in `ps`."""
    row = poison_row("bad topic!", b"v", key=str(uuid.uuid4()))
    await park(engine, fresh_database, row)
    monkeypatch.setenv("INTAKE_DATABASE_URL", fresh_database)
    args = outbox_admin.parser().parse_args(["--service", "intake", "list"])
    assert await outbox_admin._run(args) == 0
    assert str(row["event_id"]) in capsys.readouterr().out

    monkeypatch.setenv("SOME_DSN", fresh_database)
    args = outbox_admin.parser().parse_args(["--database-url-env", "SOME_DSN", "list"])
    assert await outbox_admin._run(args) == 0
    assert str(row["event_id"]) in capsys.readouterr().out


def test_the_command_line_names_an_unset_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SLA_DATABASE_URL", raising=False)
    assert outbox_admin.main(["--service", "sla", "list"]) == 2
    assert "SLA_DATABASE_URL is not set" in capsys.readouterr().err


def test_make_outbox_passes_the_database_url_in_the_environment() -> None:
    makefile = (Path(__file__).parents[3] / "Makefile").read_text()
    recipe = makefile.split("\noutbox:", 1)[1].split("\n\n", 1)[0]
    assert "--database-url" not in recipe
    assert '$(SERVICE_ENV)_DATABASE_URL="$(SERVICE_DB)"' in recipe
    assert "--service $(SERVICE)" in recipe
