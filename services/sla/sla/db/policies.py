"""The sla_policies rows the API reads and changes (the in-process copy the consumer reads is
`sla.db.config`'s): a change is a new version; only the per-policy `active` flag is updated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from sla.db.config import dump
from sla.domain.definitions import PolicyDoc

_LATEST = text(
    "SELECT DISTINCT ON (id) id, version, body, active, created_at FROM sla_policies "
    "ORDER BY id, version DESC"
)
_LATEST_OF = text(
    "SELECT id, version, body, active, created_at FROM sla_policies WHERE id = :id "
    "ORDER BY version DESC LIMIT 1"
)
_VERSIONS = text(
    "SELECT id, version, body, active, created_at FROM sla_policies WHERE id = :id ORDER BY version"
)
_VERSION = text(
    "SELECT id, version, body, active, created_at FROM sla_policies "
    "WHERE id = :id AND version = :version"
)
_INSERT = text(
    "INSERT INTO sla_policies (id, version, body, active) "
    "VALUES (:id, :version, CAST(:body AS jsonb), :active) "
    "RETURNING id, version, body, active, created_at"
)
_DEACTIVATE = text("UPDATE sla_policies SET active = false WHERE id = :id")
# A deactivated policy stops escalating its tickets at once; a clock event recomputes their
# timers without escalations from then on.
_DROP_ESCALATIONS = text(
    "DELETE FROM sla_timers WHERE kind = 'escalation' AND ticket_id IN "
    "(SELECT ticket_id FROM sla_tickets WHERE policy_id = :id AND status = 'open')"
)


async def latest_policies(conn: AsyncConnection) -> list[Row[Any]]:
    """The latest version of every policy (id, version, body, active, created_at), by id."""
    return list((await conn.execute(_LATEST)).all())


async def latest_version(conn: AsyncConnection, policy_id: str) -> Row[Any] | None:
    return (await conn.execute(_LATEST_OF, {"id": policy_id})).first()


async def policy_versions(conn: AsyncConnection, policy_id: str) -> list[Row[Any]]:
    """Every version of the policy, the first first; empty when there is no such policy."""
    return list((await conn.execute(_VERSIONS, {"id": policy_id})).all())


async def policy_version(conn: AsyncConnection, policy_id: str, version: int) -> Row[Any] | None:
    return (await conn.execute(_VERSION, {"id": policy_id, "version": version})).first()


async def insert_version(
    conn: AsyncConnection, policy_id: str, version: int, doc: PolicyDoc, *, active: bool
) -> Row[Any] | None:
    """None when this version exists already (created, or saved by a concurrent change); the
    transaction is then failed: roll it back."""
    try:
        result = await conn.execute(
            _INSERT, {"id": policy_id, "version": version, "body": dump(doc), "active": active}
        )
    except sa_exc.IntegrityError:
        return None
    return result.one()


async def deactivate_policy(conn: AsyncConnection, policy_id: str) -> Row[Any] | None:
    """Every version inactive and the escalation timers of the policy's open tickets dropped;
    the latest version after, or None when there is no such policy (nothing changed)."""
    if (await conn.execute(_DEACTIVATE, {"id": policy_id})).rowcount == 0:
        return None
    await conn.execute(_DROP_ESCALATIONS, {"id": policy_id})
    return (await conn.execute(_LATEST_OF, {"id": policy_id})).one()
