"""Parked outbox rows (the ones Kafka refused for good): list, show, re-publish, discard.

    python -m ccshared.outbox_admin --service intake list    # reads INTAKE_DATABASE_URL
    python -m ccshared.outbox_admin --service intake show ID [--value]
    python -m ccshared.outbox_admin --service intake republish ID... | --all
    python -m ccshared.outbox_admin --service intake discard ID... | --all

The database URL comes from the environment: `--service NAME` reads `<NAME>_DATABASE_URL` (the
service's own variable), `--database-url-env VAR` any other. `--database-url URL` still works
but puts the password in the process's arguments, which every user of the machine sees (`ps`).
`make outbox SERVICE=intake ARGS="list"` runs it against a service's database of the local stack
(or the one INTAKE_DATABASE_URL names).
Re-publishing moves the row back into the outbox as a new row (the relay publishes it after
everything already waiting, so after later events of its key); one Kafka still refuses is
parked again with the new error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from ccshared.db import asyncpg_dsn


@dataclass(frozen=True)
class ParkedRow:
    id: int
    topic: str
    key: str
    event_id: uuid.UUID
    event_type: str
    size: int
    error: str
    created_at: datetime
    parked_at: datetime
    headers: dict[str, Any]


_COLUMNS = (
    "id, topic, key, event_id, event_type, octet_length(value) AS size, error, created_at, "
    "parked_at, headers"
)

# One step: the rows leave outbox_parked and enter the outbox (new ids, in their old order).
_REPUBLISH = """
WITH moved AS (
    DELETE FROM outbox_parked WHERE id = ANY($1::bigint[]) OR $2
    RETURNING id, topic, key, event_id, event_type, value, headers
), queued AS (
    INSERT INTO outbox (topic, key, event_id, event_type, value, headers)
    SELECT topic, key, event_id, event_type, value, headers FROM moved ORDER BY id
)
SELECT id FROM moved ORDER BY id
"""


def _row(record: asyncpg.Record) -> ParkedRow:
    headers = record["headers"]
    return ParkedRow(
        id=record["id"],
        topic=record["topic"],
        key=record["key"],
        event_id=record["event_id"],
        event_type=record["event_type"],
        size=record["size"],
        error=record["error"],
        created_at=record["created_at"],
        parked_at=record["parked_at"],
        headers=orjson.loads(headers) if isinstance(headers, str) else dict(headers or {}),
    )


async def list_parked(conn: asyncpg.Connection, limit: int = 100) -> list[ParkedRow]:
    """The oldest parked rows first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM outbox_parked ORDER BY id LIMIT $1",  # noqa: S608 - constant
        limit,
    )
    return [_row(r) for r in rows]


async def parked_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox_parked"))


async def show_parked(conn: asyncpg.Connection, row_id: int) -> tuple[ParkedRow, bytes] | None:
    """The row and its value, or None."""
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS}, value FROM outbox_parked WHERE id = $1",  # noqa: S608 - constant
        row_id,
    )
    return None if record is None else (_row(record), bytes(record["value"]))


async def republish(
    conn: asyncpg.Connection, ids: Sequence[int] = (), *, everything: bool = False
) -> list[int]:
    """Move parked rows back into the outbox; returns the parked ids moved."""
    return [r["id"] for r in await conn.fetch(_REPUBLISH, list(ids), everything)]


async def discard(
    conn: asyncpg.Connection, ids: Sequence[int] = (), *, everything: bool = False
) -> list[int]:
    """Delete parked rows for good; returns the ids deleted."""
    rows = await conn.fetch(
        "DELETE FROM outbox_parked WHERE id = ANY($1::bigint[]) OR $2 RETURNING id",
        list(ids),
        everything,
    )
    return sorted(r["id"] for r in rows)


def _preview(value: bytes, limit: int) -> str:
    text = value[:limit].decode("utf-8", errors="replace")
    return text + (f"… ({len(value) - limit} more bytes)" if len(value) > limit else "")


def _summary(row: ParkedRow) -> str:
    return (
        f"{row.id}  {row.parked_at:%Y-%m-%d %H:%M:%S}  {row.topic}  {row.event_type}  "
        f"event_id={row.event_id}  key={row.key}  {row.size} bytes  {row.error}"
    )


async def _run(args: argparse.Namespace) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(database_url(args)))
    try:
        if args.command == "list":
            rows = await list_parked(conn, args.limit)
            total = await parked_count(conn)
            for row in rows:
                print(_summary(row))
            print(
                f"{total} parked row(s)"
                + (f", first {len(rows)} shown" if total > len(rows) else "")
            )
        elif args.command == "show":
            found = await show_parked(conn, args.id)
            if found is None:
                print(f"no parked row {args.id}", file=sys.stderr)
                return 1
            row, value = found
            print(_summary(row))
            print(f"created_at: {row.created_at:%Y-%m-%d %H:%M:%S%z}")
            print(f"headers: {orjson.dumps(row.headers).decode()}")
            if args.value:
                print(f"value: {_preview(value, args.max_bytes)}")
        else:
            if not args.ids and not args.all:
                print(f"{args.command}: give row ids or --all", file=sys.stderr)
                return 2
            act = republish if args.command == "republish" else discard
            done = await act(conn, args.ids, everything=args.all)
            missing = sorted(set(args.ids) - set(done))
            verb = "re-published" if args.command == "republish" else "discarded"
            print(f"{verb} {len(done)} row(s): {', '.join(map(str, done)) or '-'}")
            if missing:
                print(f"not parked (left alone): {', '.join(map(str, missing))}", file=sys.stderr)
                return 1
        return 0
    finally:
        await conn.close()


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m ccshared.outbox_admin", description=__doc__.split("\n")[0]
    )
    source = cli.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--service", help="read the service's database URL from <SERVICE>_DATABASE_URL"
    )
    source.add_argument("--database-url-env", metavar="VAR", help="read it from VAR")
    source.add_argument(
        "--database-url",
        help="the URL itself (SQLAlchemy or libpq): visible to every user in ps, prefer the above",
    )
    commands = cli.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="parked rows, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    show = commands.add_parser("show", help="one parked row")
    show.add_argument("id", type=int)
    show.add_argument("--value", action="store_true", help="print the value too (truncated)")
    show.add_argument("--max-bytes", type=int, default=2000)
    for name, what in (
        ("republish", "move rows back into the outbox"),
        ("discard", "delete rows for good"),
    ):
        command = commands.add_parser(name, help=what)
        command.add_argument("ids", type=int, nargs="*")
        command.add_argument("--all", action="store_true", help="every parked row")
    return cli


class UnsetVariable(Exception):
    pass


def database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    variable = args.database_url_env or f"{args.service.upper()}_DATABASE_URL"
    url = os.environ.get(variable)
    if not url:
        raise UnsetVariable(f"{variable} is not set: it names the service's database")
    return url


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return asyncio.run(_run(parser().parse_args(argv)))
    except UnsetVariable as exc:
        print(exc, file=sys.stderr)
        return 2
    except asyncpg.UndefinedTableError:
        print(
            "no outbox_parked table: start the service once with this version (its migrations "
            "create it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
