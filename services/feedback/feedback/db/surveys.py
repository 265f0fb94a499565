"""Survey rows: scheduling at resolution, cancelling, the reads the API needs, and the
scheduler's claims of due surveys and reminders (FOR UPDATE SKIP LOCKED, so replicas share
them) and what it records of each."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared import tracing
from ccshared.ids import uuid7
from feedback.db.facts import lock_customer
from feedback.domain.surveys import ResolvedTicketView, Scheduled, SurveyPolicy, schedule_survey
from feedback.domain.texts import survey_language

_OF_TICKET = text("SELECT id FROM surveys WHERE ticket_id = :ticket_id")
_LAST_SURVEYED = text(
    "SELECT max(due_at) FROM surveys "
    "WHERE customer_id = :customer_id AND status <> 'suppressed' AND ticket_id <> :ticket_id"
)
_LAST_MESSAGE = text(
    "SELECT max(received_at) FROM customer_contacts "
    "WHERE customer_id = :customer_id AND channel = :channel"
)
_INSERT = text(
    "INSERT INTO surveys (id, ticket_id, customer_id, channel, language, agent_id, status, "
    " suppression_reason, due_at, window_closes_at, traceparent) "
    "VALUES (:id, :ticket_id, :customer_id, :channel, :language, :agent_id, :status, "
    " :reason, :due_at, :window_closes_at, :traceparent) "
    "ON CONFLICT (ticket_id) DO NOTHING"
)


async def survey_of_ticket(conn: AsyncConnection, ticket_id: uuid.UUID) -> uuid.UUID | None:
    """The id of the ticket's survey (scheduled, sent or suppressed), if it has one."""
    survey_id: uuid.UUID | None = (
        await conn.execute(_OF_TICKET, {"ticket_id": ticket_id})
    ).scalar()
    return survey_id


async def last_customer_message(
    conn: AsyncConnection, customer_id: uuid.UUID, channel: str
) -> datetime | None:
    value: datetime | None = (
        await conn.execute(_LAST_MESSAGE, {"customer_id": customer_id, "channel": channel})
    ).scalar()
    return value


def last_message_at(last_on_channel: datetime | None, facts: dict[str, Any]) -> datetime | None:
    """The customer's last message for the reply window: the latest intake saw on the channel,
    or the message that opened the ticket if later (intake's event may not have arrived yet):
    when the customer wrote it, not when the router opened the ticket (rows from before that
    was known fall back to the opening)."""
    wrote = facts.get("customer_wrote_at") or facts.get("opened_at")
    candidates = [t for t in (last_on_channel, wrote) if t is not None]
    return max(candidates) if candidates else None


async def schedule_for_resolved_ticket(
    conn: AsyncConnection, facts: dict[str, Any], policy: SurveyPolicy
) -> None:
    """At most one survey per ticket; the decision (scheduled or why not) is kept as a row."""
    customer_id: uuid.UUID = facts["customer_id"]
    ticket_id: uuid.UUID = facts["ticket_id"]
    # Tickets of one customer arrive on different partitions: serialize their scheduling so
    # the quiet period holds when two of them resolve at once.
    await lock_customer(conn, customer_id)
    if await survey_of_ticket(conn, ticket_id) is not None:
        return
    ids = {"customer_id": customer_id, "ticket_id": ticket_id}
    last_surveyed = (await conn.execute(_LAST_SURVEYED, ids)).scalar()
    last_message = await last_customer_message(conn, customer_id, facts["channel"])
    decision = schedule_survey(
        ResolvedTicketView(
            channel=facts["channel"],
            resolved_at=facts["resolved_at"],
            resolution_code=facts["resolution_code"],
            close_reason=facts["close_reason"],
            customer_last_surveyed_at=last_surveyed,
            customer_last_message_at=last_message_at(last_message, facts),
        ),
        policy,
    )
    scheduled = isinstance(decision, Scheduled)
    await conn.execute(
        _INSERT,
        {
            **ids,
            "id": uuid7(),
            "channel": facts["channel"],
            "language": survey_language(facts["language"]),
            "agent_id": facts["agent_id"],
            "status": "scheduled" if scheduled else "suppressed",
            "reason": None if isinstance(decision, Scheduled) else decision.reason,
            "due_at": decision.due_at if isinstance(decision, Scheduled) else None,
            "window_closes_at": (
                decision.window_closes_at if isinstance(decision, Scheduled) else None
            ),
            # The span that took the resolution (None while tracing is off): the sending
            # continues the contact's trace.
            "traceparent": tracing.stored_traceparent() if scheduled else None,
        },
    )


async def cancel_unsent(conn: AsyncConnection, ticket_id: uuid.UUID) -> None:
    """A reopened ticket is not resolved any more: its unsent survey waits for the next
    resolution, which schedules it afresh."""
    await conn.execute(
        text("DELETE FROM surveys WHERE ticket_id = :t AND status = 'scheduled'"), {"t": ticket_id}
    )


async def suppress_unsent(conn: AsyncConnection, ticket_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        text(
            "UPDATE surveys SET status = 'suppressed', suppression_reason = :reason "
            "WHERE ticket_id = :t AND status = 'scheduled'"
        ),
        {"t": ticket_id, "reason": reason},
    )


_SURVEY_WITH_ANSWER = text(
    "SELECT s.*, a.csat, a.nps, a.solved_first_contact, a.comment, a.first_answered_at, "
    " a.updated_at AS answer_updated_at, a.revisions, a.followup_requested_at, "
    " a.praise_recorded_at, f.resolved_at, f.opened_at "
    "FROM surveys s LEFT JOIN answers a ON a.survey_id = s.id "
    "LEFT JOIN ticket_facts f ON f.ticket_id = s.ticket_id "
    "WHERE s.id = :id"
)


async def survey_with_answer(
    conn: AsyncConnection, survey_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    sql = _SURVEY_WITH_ANSWER.text + (" FOR UPDATE OF s" if for_update else "")
    row = (await conn.execute(text(sql), {"id": survey_id})).mappings().first()
    return None if row is None else dict(row)


_DUE_SURVEYS = text(
    "SELECT s.id, s.ticket_id, s.customer_id, s.channel, s.language, s.traceparent, "
    " f.opened_at, f.customer_wrote_at "
    "FROM surveys s LEFT JOIN ticket_facts f ON f.ticket_id = s.ticket_id "
    "WHERE s.status = 'scheduled' AND s.due_at <= :now "
    "ORDER BY s.due_at LIMIT :limit FOR UPDATE OF s SKIP LOCKED"
)
_MARK_SENT = text(
    "UPDATE surveys SET status = 'sent', sent_at = :now, expires_at = :expires_at, "
    " reminder_due_at = :reminder_due_at WHERE id = :id"
)
_SUPPRESS = text(
    "UPDATE surveys SET status = 'suppressed', suppression_reason = :reason WHERE id = :id"
)
_DUE_REMINDERS = text(
    "SELECT s.id, s.ticket_id, s.customer_id, s.channel, s.language, s.expires_at, "
    " s.traceparent, f.opened_at, f.customer_wrote_at "
    "FROM surveys s LEFT JOIN ticket_facts f ON f.ticket_id = s.ticket_id "
    "WHERE s.status = 'sent' AND s.reminded_at IS NULL AND s.reminder_due_at <= :now "
    " AND s.expires_at > :now AND NOT EXISTS (SELECT 1 FROM answers a WHERE a.survey_id = s.id) "
    "ORDER BY s.reminder_due_at LIMIT :limit FOR UPDATE OF s SKIP LOCKED"
)
_MARK_REMINDED = text("UPDATE surveys SET reminded_at = :now WHERE id = :id")
_NO_REMINDER = text("UPDATE surveys SET reminder_due_at = NULL WHERE id = :id")


async def claim_due_surveys(
    conn: AsyncConnection, now: datetime, limit: int
) -> list[dict[str, Any]]:
    """Scheduled surveys due by `now`, the earliest first, locked for this transaction (rows
    another replica holds are skipped), with the ticket facts their reply window needs."""
    rows = await conn.execute(_DUE_SURVEYS, {"now": now, "limit": limit})
    return [dict(r) for r in rows.mappings()]


async def mark_sent(
    conn: AsyncConnection,
    survey_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
    reminder_due_at: datetime | None,
) -> None:
    await conn.execute(
        _MARK_SENT,
        {"id": survey_id, "now": now, "expires_at": expires_at, "reminder_due_at": reminder_due_at},
    )


async def suppress_survey(conn: AsyncConnection, survey_id: uuid.UUID, reason: str) -> None:
    await conn.execute(_SUPPRESS, {"id": survey_id, "reason": reason})


async def claim_due_reminders(
    conn: AsyncConnection, now: datetime, limit: int
) -> list[dict[str, Any]]:
    """Sent, unanswered, unexpired surveys whose one reminder is due by `now`, locked as
    `claim_due_surveys` locks."""
    rows = await conn.execute(_DUE_REMINDERS, {"now": now, "limit": limit})
    return [dict(r) for r in rows.mappings()]


async def mark_reminded(conn: AsyncConnection, survey_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(_MARK_REMINDED, {"id": survey_id, "now": now})


async def drop_reminder(conn: AsyncConnection, survey_id: uuid.UUID) -> None:
    """The survey gets no reminder (its reply window closed)."""
    await conn.execute(_NO_REMINDER, {"id": survey_id})
