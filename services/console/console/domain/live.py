"""Who sees which live event: the rules of the console's live stream, without I/O.

An event's *audience* is worked out once, when the replica reads it from Kafka (`audience`),
from its payload and from what the replica last learned of its ticket (`TicketFacts`, kept up
to date by `facts_after`, since most ticket events name neither the agent nor the queue). A
connected user (`Viewer`) then sees the event if `sees(viewer, audience)`:

- supervisors: every ticket.*, agent.* and sla.* event, and the notification.created addressed
  to them;
- agents: the notification.created addressed to them (their token subject, the agent id), the
  ticket.* events of tickets they hold or own (the payload's agent fields, or what the replica
  knows of the ticket) or that wait in a queue they serve (arriving there, leaving it), and
  their own agent.status_changed;
- nobody: anything else (surveys, outbound messages, e-mail requests, merges, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# The payload fields that name an agent a ticket event concerns (assignee, owner, the agents of
# a transfer).
_AGENT_FIELDS = ("agent_id", "owner_agent_id", "from_agent_id", "to_agent_id")
_SUPERVISOR_PREFIXES = ("ticket.", "agent.", "sla.")
NOTIFICATION = "notification.created"
AGENT_STATUS = "agent.status_changed"


@dataclass(frozen=True, slots=True)
class Viewer:
    """A connected user as the rules see them. `subject`: the id notifications are addressed
    to (the API token's subject: the agent's id for an agent, the user's own for a
    supervisor); `queues`: the queues an agent serves."""

    user_id: str
    subject: str
    supervisor: bool
    agent_id: str | None = None
    queues: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What the replica last learned of a ticket from its events."""

    holder: str | None = None  # the agent it is assigned (or offered) to
    owner: str | None = None  # its first-contact owner
    queue_id: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Audience:
    """Who may see one event: every supervisor, the users it is addressed to (by subject),
    the agents it concerns, the agents serving these queues."""

    supervisors: bool = False
    subjects: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.supervisors or self.subjects or self.agents or self.queues)


NOBODY = Audience()


@dataclass(frozen=True, slots=True)
class Queue:
    id: str
    required_skills: frozenset[str] = field(default_factory=frozenset)


def may_concern_anyone(event_type: str) -> bool:
    """False for the event types no rule passes (read from the record's header, so those are
    never decoded)."""
    return event_type == NOTIFICATION or event_type.startswith(_SUPERVISOR_PREFIXES)


def _strings(payload: Mapping[str, Any], names: Iterable[str]) -> set[str]:
    return {v for n in names if isinstance(v := payload.get(n), str) and v}


def audience(
    event_type: str, payload: Mapping[str, Any], before: TicketFacts | None = None
) -> Audience:
    """Who may see the event; `before`: what was known of its ticket before it."""
    if event_type == NOTIFICATION:
        recipient = payload.get("recipient_id")
        return Audience(subjects=frozenset({recipient})) if isinstance(recipient, str) else NOBODY
    if event_type.startswith("ticket."):
        known = before or TicketFacts()
        after = facts_after(known, event_type, payload)
        agents = _strings(payload, _AGENT_FIELDS)
        agents.update(a for a in (known.holder, known.owner) if a)
        # A queue's agents: while the ticket waits there (before or after this event, so they
        # also see it arrive and leave), as the router lets them read it; not once another
        # agent holds it (the router publishes the status change out of the queue first, so the
        # offer's ticket.assigned, with its routing trace, reaches only the agents it names).
        queues = frozenset(
            f.queue_id for f in (known, after) if f.status == "queued" and f.queue_id
        )
        return Audience(True, frozenset(), frozenset(agents), queues)
    if event_type == AGENT_STATUS:
        agent = payload.get("agent_id")
        itself = frozenset({agent}) if isinstance(agent, str) else frozenset()
        return Audience(supervisors=True, agents=itself)
    if event_type.startswith(_SUPERVISOR_PREFIXES):  # agent.* besides, sla.*
        return Audience(supervisors=True)
    return NOBODY


def sees(viewer: Viewer, audience: Audience) -> bool:
    """Whether the viewer may see an event with that audience."""
    if viewer.subject in audience.subjects:
        return True
    if viewer.supervisor:
        return audience.supervisors
    if viewer.agent_id is None:
        return False
    return viewer.agent_id in audience.agents or not viewer.queues.isdisjoint(audience.queues)


def facts_after(facts: TicketFacts, event_type: str, payload: Mapping[str, Any]) -> TicketFacts:
    """What is known of the ticket once the event has happened."""

    def text(name: str) -> str | None:
        value = payload.get(name)
        return value if isinstance(value, str) and value else None

    if event_type == "ticket.opened":
        queue = text("queue_id")
        return TicketFacts(queue_id=queue, status="queued" if queue else "new")
    if event_type == "ticket.routed":
        return replace(facts, holder=None, queue_id=text("queue_id"), status="queued")
    if event_type == "ticket.assigned":
        return TicketFacts(
            holder=text("agent_id"),
            owner=text("owner_agent_id") or facts.owner,
            queue_id=text("queue_id") or facts.queue_id,
            status="assigned",
        )
    if event_type == "ticket.transferred":
        to_agent, to_queue = text("to_agent_id"), text("to_queue_id")
        return TicketFacts(
            holder=to_agent,
            owner=text("owner_agent_id"),
            queue_id=to_queue or facts.queue_id,
            status="assigned" if to_agent else "queued",
        )
    if event_type == "ticket.reclassified":
        return replace(facts, queue_id=text("to_queue_id") or facts.queue_id)
    if event_type == "ticket.status_changed":
        status = text("to_status")
        if status in ("new", "queued"):  # back to waiting: nobody holds it any more
            return replace(facts, holder=None, status=status)
        return replace(facts, status=status)
    if event_type == "ticket.resolved":
        return replace(
            facts,
            holder=text("agent_id") or facts.holder,
            owner=text("owner_agent_id") or facts.owner,
            status="resolved",
        )
    if event_type == "ticket.closed":
        return replace(facts, status="closed")
    return facts


def queues_served(skills: Iterable[str], queues: Iterable[Queue]) -> frozenset[str]:
    """The queues an agent serves: those whose required skills the agent has all of (the
    router's rule for offers and for which waiting tickets an agent reads)."""
    have = set(skills)
    return frozenset(q.id for q in queues if q.required_skills <= have)


def ticket_of(payload: Mapping[str, Any]) -> str | None:
    ticket = payload.get("ticket_id")
    return ticket if isinstance(ticket, str) and ticket else None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a reconnecting stream was: the replica epoch and sequence number of the last
    event it got (its `Last-Event-ID`, "<epoch>-<seq>")."""

    epoch: str
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}-{self.seq}"


def parse_cursor(value: str | None) -> Cursor | None:
    """None when the value is not a cursor (absent, or made up)."""
    if not value or len(value) > 100:
        return None
    epoch, sep, seq = value.rpartition("-")
    if not sep or not epoch or not seq.isdigit():
        return None
    return Cursor(epoch, int(seq))


def replay_range(
    cursor: Cursor, epoch: str, first_seq: int, last_seq: int
) -> tuple[int, int] | None:
    """The sequence numbers (from, to, inclusive) a stream that last got `cursor` missed, when
    the buffer (holding first_seq..last_seq of this replica's `epoch`) still has all of them;
    None when it cannot catch up (another replica or an earlier run of this one, or a gap
    older than the buffer): the page reloads its data instead."""
    if cursor.epoch != epoch or cursor.seq > last_seq:
        return None
    if cursor.seq < first_seq - 1:
        return None
    return cursor.seq + 1, last_seq
