"""User rows: create, find by id (with the password hash, for sign-in), list, change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from console.domain.users import User

_COLUMNS = "id, display_name, role, agent_id, language"


def user_of(row: Any) -> User:
    return User(
        id=row["id"],
        display_name=row["display_name"],
        role=row["role"],
        agent_id=row["agent_id"],
        language=row["language"],
    )


async def create_user(
    conn: AsyncConnection,
    *,
    user_id: str,
    display_name: str,
    role: str,
    agent_id: str | None,
    password_hash: str,
    language: str | None = None,
) -> bool:
    """False when the user id (or the agent) has a user already."""
    row = await conn.execute(
        text(
            "INSERT INTO users (id, display_name, role, agent_id, password_hash, language) "
            "VALUES (:id, :name, :role, :agent, :hash, :language) ON CONFLICT DO NOTHING "
            "RETURNING id"
        ),
        {
            "id": user_id,
            "name": display_name,
            "role": role,
            "agent": agent_id,
            "hash": password_hash,
            "language": language,
        },
    )
    return row.first() is not None


async def set_password(conn: AsyncConnection, user_id: str, password_hash: str) -> bool:
    """Sets the hash and signs the user out everywhere (their sessions are deleted)."""
    row = await conn.execute(
        text(
            "UPDATE users SET password_hash = :hash, password_changed_at = now() "
            "WHERE id = :id RETURNING id"
        ),
        {"id": user_id, "hash": password_hash},
    )
    if row.first() is None:
        return False
    await conn.execute(text("DELETE FROM sessions WHERE user_id = :id"), {"id": user_id})
    return True


async def set_password_hash_only(conn: AsyncConnection, user_id: str, password_hash: str) -> None:
    """The same password, hashed again with today's parameters (at sign-in)."""
    await conn.execute(
        text("UPDATE users SET password_hash = :hash WHERE id = :id"),
        {"id": user_id, "hash": password_hash},
    )


async def credentials_of(conn: AsyncConnection, user_id: str) -> tuple[User, str] | None:
    """The enabled user and their password hash; None when there is no such enabled user."""
    row = (
        (
            await conn.execute(
                text(
                    f"SELECT {_COLUMNS}, password_hash FROM users "  # noqa: S608 - fixed columns
                    "WHERE id = :id AND NOT disabled"
                ),
                {"id": user_id},
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else (user_of(row), row["password_hash"])


async def list_users(conn: AsyncConnection) -> list[User]:
    rows = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM users WHERE NOT disabled ORDER BY id")  # noqa: S608
    )
    return [user_of(r) for r in rows.mappings()]


async def set_language(conn: AsyncConnection, user_id: str, language: str) -> None:
    await conn.execute(
        text("UPDATE users SET language = :l WHERE id = :id"), {"id": user_id, "l": language}
    )
