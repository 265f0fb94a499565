"""Storing an answer: one per survey (a second answer within the window updates it), the ticket's
facts and KPIs, and the events that close the loop (follow-up for a detractor, praise)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events import new_event
from ccshared.events.payloads import FollowUpRequested, PraiseRecorded, SurveyAnswered
from ccshared.outbox import enqueue
from feedback.db.facts import FactChanges
from feedback.domain.answers import Answer, is_detractor, is_praise, may_update


class AnswerWindowClosed(Exception):
    """The survey was answered before and the window for changing the answer has passed."""


@dataclass(frozen=True)
class StoredAnswer:
    revision: int
    updated: bool
    follow_up_requested: bool
    praise_recorded: bool


_UPSERT = text(
    "INSERT INTO answers (survey_id, ticket_id, csat, nps, solved_first_contact, comment, "
    " first_answered_at, updated_at, followup_requested_at, praise_recorded_at) "
    "VALUES (:survey_id, :ticket_id, :csat, :nps, :solved, :comment, :now, :now, "
    " :followup_at, :praise_at) "
    "ON CONFLICT (survey_id) DO UPDATE SET csat = EXCLUDED.csat, nps = EXCLUDED.nps, "
    " solved_first_contact = EXCLUDED.solved_first_contact, comment = EXCLUDED.comment, "
    " updated_at = EXCLUDED.updated_at, revisions = answers.revisions + 1, "
    " followup_requested_at = coalesce(answers.followup_requested_at, "
    "   EXCLUDED.followup_requested_at), "
    " praise_recorded_at = coalesce(answers.praise_recorded_at, EXCLUDED.praise_recorded_at) "
    "RETURNING revisions"
)


def _note(answer: Answer) -> str:
    parts = []
    if answer.csat is not None:
        parts.append(f"CSAT {answer.csat}/5")
    if answer.nps is not None:
        parts.append(f"NPS {answer.nps}/10")
    if answer.solved_first_contact is not None:
        parts.append("solved on first contact: " + ("yes" if answer.solved_first_contact else "no"))
    note = ", ".join(parts)
    if answer.has_comment:
        note += f" — “{(answer.comment or '').strip()}”"
    return note


async def store_answer(
    conn: AsyncConnection,
    survey: dict[str, Any],
    answer: Answer,
    *,
    now: datetime,
    edit_window: timedelta,
) -> StoredAnswer:
    """`survey` comes from survey_with_answer(..., for_update=True), so answers of one survey
    are serialized and counted once."""
    answered_before = survey["first_answered_at"] is not None
    if answered_before and not may_update(survey["first_answered_at"], now, edit_window):
        raise AnswerWindowClosed(str(survey["id"]))
    ids = {"survey_id": survey["id"], "ticket_id": survey["ticket_id"]}
    follow_up = is_detractor(answer) and survey["followup_requested_at"] is None
    praise = is_praise(answer) and survey["praise_recorded_at"] is None
    revision = (
        await conn.execute(
            _UPSERT,
            {
                **ids,
                "csat": answer.csat,
                "nps": answer.nps,
                "solved": answer.solved_first_contact,
                "comment": answer.comment,
                "now": now,
                "followup_at": now if follow_up else None,
                "praise_at": now if praise else None,
            },
        )
    ).scalar_one()
    # An answered survey needs no reminder: take it out of the reminder index, so the
    # scheduler's scan does not grow with every answer ever given.
    await conn.execute(
        text(
            "UPDATE surveys SET reminder_due_at = NULL "
            "WHERE id = :id AND reminder_due_at IS NOT NULL"
        ),
        {"id": survey["id"]},
    )
    facts = FactChanges(conn)
    await facts.update(
        survey["ticket_id"],
        {
            "answered": True,
            "csat": answer.csat,
            "nps": answer.nps,
            "solved_first_contact": answer.solved_first_contact,
            # Praise once recorded stays recorded (the agent was told).
            "praised": praise or survey["praise_recorded_at"] is not None,
        },
    )
    await facts.flush()
    events = [
        new_event(
            SurveyAnswered(
                survey_id=survey["id"],
                ticket_id=survey["ticket_id"],
                customer_id=survey["customer_id"],
                csat=answer.csat,
                nps=answer.nps,
                solved_first_contact=answer.solved_first_contact,
                comment=answer.comment,
                answered_at=now,
            ),
            producer="feedback",
        )
    ]
    if follow_up:
        events.append(
            new_event(
                FollowUpRequested(
                    follow_up_id=uuid.uuid4(),
                    customer_id=survey["customer_id"],
                    ticket_id=survey["ticket_id"],
                    reason="detractor",
                    channel=survey["channel"],
                    language=survey["language"],
                    note=_note(answer),
                    due_at=now,
                ),
                producer="feedback",
            )
        )
    if praise:
        events.append(
            new_event(
                PraiseRecorded(
                    ticket_id=survey["ticket_id"],
                    customer_id=survey["customer_id"],
                    agent_id=survey["agent_id"],
                    comment=(answer.comment or "").strip(),
                    at=now,
                ),
                producer="feedback",
            )
        )
    await enqueue(conn, *events)
    return StoredAnswer(int(revision), answered_before, follow_up, praise)
