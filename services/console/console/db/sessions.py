"""Sign-in sessions (known by the SHA-256 of their cookie) and failed sign-ins."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from console.db.users import _COLUMNS, user_of
from console.domain.users import User


def session_hash(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode()).digest()


async def create_session(
    conn: AsyncConnection,
    *,
    cookie: str,
    user_id: str,
    csrf_token: str,
    expires_at: datetime,
    address: str | None,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, expires_at, address) "
            "VALUES (:h, :u, :csrf, :exp, :addr)"
        ),
        {
            "h": session_hash(cookie),
            "u": user_id,
            "csrf": csrf_token,
            "exp": expires_at,
            "addr": address,
        },
    )


async def session_user(
    conn: AsyncConnection, cookie: str, *, idle_s: float
) -> tuple[User, str] | None:
    """The signed-in user and the session's CSRF token; None when the session is unknown,
    expired, idle too long, or its user disabled. The session is marked seen at most once a
    minute (a read per request, a write per minute of use)."""
    row = (
        (
            await conn.execute(
                text(
                    "WITH s AS ("  # noqa: S608 - fixed column names
                    " SELECT user_id, csrf_token, last_seen_at FROM sessions WHERE id_hash = :h"
                    " AND expires_at > now()"
                    " AND last_seen_at > now() - make_interval(secs => :idle)), "
                    "touched AS ("
                    " UPDATE sessions SET last_seen_at = now() WHERE id_hash = :h"
                    " AND last_seen_at < now() - interval '60 seconds'"
                    " AND EXISTS (SELECT 1 FROM s)) "
                    f"SELECT {', '.join('u.' + c.strip() for c in _COLUMNS.split(','))}, "
                    "s.csrf_token FROM s JOIN users u ON u.id = s.user_id WHERE NOT u.disabled"
                ),
                {"h": session_hash(cookie), "idle": idle_s},
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else (user_of(row), row["csrf_token"])


async def delete_session(conn: AsyncConnection, cookie: str) -> None:
    await conn.execute(text("DELETE FROM sessions WHERE id_hash = :h"), {"h": session_hash(cookie)})


async def delete_stale(conn: AsyncConnection, *, idle_s: float, window_s: float) -> None:
    """Sessions expired or idle too long, and failed sign-ins older than the throttle window
    (every key's: an attacker spraying many names or addresses leaves at most a window's)."""
    await conn.execute(
        text(
            "DELETE FROM sessions WHERE expires_at <= now() "
            "OR last_seen_at <= now() - make_interval(secs => :idle)"
        ),
        {"idle": idle_s},
    )
    await conn.execute(
        text("DELETE FROM sign_in_failures WHERE at < now() - make_interval(secs => :w)"),
        {"w": window_s},
    )


async def failures(
    conn: AsyncConnection, *, account: str, address: str, window_s: float
) -> tuple[int, int]:
    """Failed sign-ins within the window for the account and for the address (older rows of
    both are deleted on the way)."""
    await conn.execute(
        text(
            "DELETE FROM sign_in_failures WHERE ((scope = 'account' AND key = :acc) "
            "OR (scope = 'address' AND key = :addr)) "
            "AND at < now() - make_interval(secs => :w)"
        ),
        {"acc": account, "addr": address, "w": window_s},
    )
    row = (
        await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE scope = 'account' AND key = :acc), "
                "count(*) FILTER (WHERE scope = 'address' AND key = :addr) "
                "FROM sign_in_failures WHERE (scope, key) IN (('account', :acc), "
                "('address', :addr))"
            ),
            {"acc": account, "addr": address},
        )
    ).one()
    return int(row[0]), int(row[1])


async def record_failure(conn: AsyncConnection, *, account: str, address: str) -> None:
    await conn.execute(
        text(
            "INSERT INTO sign_in_failures (scope, key) VALUES ('account', :acc), ('address', :addr)"
        ),
        {"acc": account, "addr": address},
    )


async def clear_account_failures(conn: AsyncConnection, account: str) -> None:
    await conn.execute(
        text("DELETE FROM sign_in_failures WHERE scope = 'account' AND key = :acc"),
        {"acc": account},
    )
