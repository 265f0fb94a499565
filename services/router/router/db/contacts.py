"""Contacts reaching tickets: the candidate tickets a contact may join, and the writes of new
tickets and of contacts joining tickets, many at once (`TicketWrites`) or one joining a stored
ticket (`add_contact_rows`), each in one statement with their history and events."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared import tracing
from ccshared.db import array_params, insert_from_arrays, one_statement
from ccshared.events import Envelope, new_event
from ccshared.events.payloads import ContactReceived
from ccshared.logging import correlation_id
from ccshared.outbox import OUTBOX_PART, outbox_params
from router.db.tickets import HISTORY_COLUMNS, INSERT_HISTORY, history_row
from router.domain.classification import PRIORITY_RANK
from router.domain.conversation import contact_attachments, contact_sender
from router.domain.opening import NewTicket
from router.domain.summary import customer_display_name, subject_line
from router.domain.threading import OpenTicketCandidate
from router.domain.tickets import ROUTER, HistoryEntry
from router.domain.urgency import EarlierTicket

_CANDIDATES_SQL = (
    "SELECT t.id, t.customer_id, t.channel, t.status, t.last_contact_at, "
    "  ARRAY(SELECT k.key FROM thread_keys k WHERE k.ticket_id = t.id "
    "        AND k.key = ANY(CAST(:keys AS text[]))) AS keys "
    "FROM tickets t "
    "WHERE t.customer_id = ANY(CAST(:customers AS uuid[])) "
    "  AND (t.status NOT IN ('resolved', 'closed') "
    "       OR t.id IN (SELECT ticket_id FROM thread_keys WHERE key = ANY(CAST(:keys AS text[])))) "
    "ORDER BY t.id"
)
_CANDIDATES = {True: text(_CANDIDATES_SQL + " FOR UPDATE OF t"), False: text(_CANDIDATES_SQL)}


async def candidates(
    conn: AsyncConnection, customers: list[uuid.UUID], keys: list[str], *, lock: bool = True
) -> dict[str, dict[str, OpenTicketCandidate]]:
    """customer → ticket id → what threading needs of it: the customers' open tickets and
    those of their tickets any of `keys` points at, locked unless `lock` is False. Threading
    only ever joins a contact to its own customer's ticket, so no other customer's ticket is
    looked at."""
    rows = await conn.execute(_CANDIDATES[lock], {"keys": keys, "customers": customers})
    found: dict[str, dict[str, OpenTicketCandidate]] = {}
    for r in rows:
        _add_candidate(found, r, r.last_contact_at)
    return found


def _add_candidate(
    found: dict[str, dict[str, OpenTicketCandidate]], r: Any, last_contact_at: datetime
) -> None:
    candidate = OpenTicketCandidate(
        ticket_id=str(r.id),
        customer_id=str(r.customer_id),
        channel=r.channel,
        status=r.status,
        last_contact_at=last_contact_at,
        matched_keys=frozenset(r.keys),
    )
    found.setdefault(candidate.customer_id, {})[candidate.ticket_id] = candidate


_EARLIER = text(
    "SELECT t.id, t.customer_id, t.category, t.status, t.opened_at, "
    "  COALESCE(t.resolved_at, t.closed_at) AS resolved_at "
    "FROM tickets t "
    "WHERE t.customer_id = ANY(CAST(:customers AS uuid[])) "
    "  AND (t.status NOT IN ('resolved', 'closed') "
    "       OR COALESCE(t.resolved_at, t.closed_at) >= :since) "
    "ORDER BY t.opened_at DESC"
)


async def earlier_tickets(
    conn: AsyncConnection, customers: list[uuid.UUID], since: datetime
) -> dict[str, list[EarlierTicket]]:
    """customer → their tickets still open or resolved (closed) since `since`, newest first:
    what a repeated contact is measured against (`urgency.repeated_from_history`)."""
    rows = await conn.execute(_EARLIER, {"customers": customers, "since": since})
    found: dict[str, list[EarlierTicket]] = {}
    for r in rows:
        found.setdefault(str(r.customer_id), []).append(
            EarlierTicket(str(r.id), r.category, r.status, r.opened_at, r.resolved_at)
        )
    return found


# What a batch of contacts needs to know before it is decided, in one statement: the
# candidates (as `candidates`, unlocked), the registered segments (as `segments_of`) and the
# earlier tickets (as `earlier_tickets`), as parts 1, 2 and 3, each in its own order.
_BATCH_VIEW = text(
    "SELECT 1 AS part, t.id, t.customer_id, t.channel, t.status, t.last_contact_at AS at, "
    "  CAST(NULL AS timestamptz) AS resolved_at, CAST(NULL AS text) AS category, "
    "  ARRAY(SELECT k.key FROM thread_keys k WHERE k.ticket_id = t.id "
    "        AND k.key = ANY(CAST(:keys AS text[]))) AS keys, "
    "  row_number() OVER (ORDER BY t.id) AS n "
    "FROM tickets t "
    "WHERE t.customer_id = ANY(CAST(:customers AS uuid[])) "
    "  AND (t.status NOT IN ('resolved', 'closed') "
    "       OR t.id IN (SELECT ticket_id FROM thread_keys WHERE key = ANY(CAST(:keys AS text[])))) "
    "UNION ALL "
    "SELECT 2, NULL, s.customer_id, NULL, NULL, NULL, NULL, s.segment, NULL, 0 "
    "FROM customer_segments s "
    "WHERE s.customer_id = ANY(CAST(:customers AS uuid[])) AND s.segment IS NOT NULL "
    "UNION ALL "
    "SELECT 3, t.id, t.customer_id, NULL, t.status, t.opened_at, "
    "  COALESCE(t.resolved_at, t.closed_at), t.category, NULL, "
    "  row_number() OVER (ORDER BY t.opened_at DESC) "
    "FROM tickets t "
    "WHERE t.customer_id = ANY(CAST(:customers AS uuid[])) "
    "  AND (t.status NOT IN ('resolved', 'closed') "
    "       OR COALESCE(t.resolved_at, t.closed_at) >= :since) "
    "ORDER BY part, n"
)


@dataclass
class BatchView:
    """`candidates` (unlocked), `segments_of` and `earlier_tickets` of a batch's customers."""

    candidates: dict[str, dict[str, OpenTicketCandidate]]
    segments: dict[uuid.UUID, str]
    earlier: dict[str, list[EarlierTicket]]


async def batch_view(
    conn: AsyncConnection, customers: list[uuid.UUID], keys: list[str], since: datetime
) -> BatchView:
    """What `candidates(..., lock=False)`, `segments_of` and `earlier_tickets(..., since)`
    return, read in one statement (one round trip instead of three)."""
    view = BatchView({}, {}, {})
    rows = await conn.execute(_BATCH_VIEW, {"keys": keys, "customers": customers, "since": since})
    for r in rows:
        if r.part == 1:
            _add_candidate(view.candidates, r, r.at)
        elif r.part == 2:
            view.segments[r.customer_id] = r.category
        else:
            view.earlier.setdefault(str(r.customer_id), []).append(
                EarlierTicket(str(r.id), r.category, r.status, r.at, r.resolved_at)
            )
    return view


_TICKET_COLUMNS = (
    ("id", "uuid"),
    ("customer_id", "uuid"),
    ("channel", "text"),
    ("status", "text"),
    ("category", "text"),
    ("priority", "text"),
    ("priority_rank", "int"),
    ("language", "text"),
    ("segment", "text"),
    ("queue_id", "text"),
    ("classification", "jsonb"),
    ("policy_version", "int"),
    ("policy_step", "text"),
    ("step_timeout_at", "timestamptz"),
    ("follow_up_of", "uuid"),
    ("opened_at", "timestamptz"),
    ("queued_at", "timestamptz"),
    ("last_contact_at", "timestamptz"),
    ("owner_agent_id", "text"),
    ("subject_line", "text"),
    ("customer_name", "text"),
    ("traceparent", "text"),
)
_CONTACT_COLUMNS = (
    ("contact_id", "uuid"),
    ("ticket_id", "uuid"),
    ("channel", "text"),
    ("received_at", "timestamptz"),
    ("subject", "text"),
    ("text", "text"),
    ("sender", "jsonb"),
    ("attachments", "jsonb"),
)
_THREAD_KEY_COLUMNS = (("key", "text"), ("ticket_id", "uuid"))
_LAST_CONTACT = [name for name, _ in _TICKET_COLUMNS].index("last_contact_at")
_CUSTOMER_NAME = [name for name, _ in _TICKET_COLUMNS].index("customer_name")


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _contact_row(ticket_id: uuid.UUID, c: ContactReceived) -> tuple[Any, ...]:
    return (
        c.contact_id,
        ticket_id,
        c.channel,
        c.received_at,
        c.subject,
        c.text,
        _json(contact_sender(c)),
        _json(contact_attachments(c)),
    )


def _ticket_row(t: NewTicket) -> tuple[Any, ...]:
    c = t.contact
    return (
        t.id,
        c.customer_id,
        c.channel,
        "queued",
        t.category,
        t.priority,
        PRIORITY_RANK[t.priority],
        t.language,
        t.segment,
        t.queue_id,
        orjson.dumps(t.classification).decode(),
        t.policy_version,
        t.policy_step,
        t.step_timeout_at,
        t.follow_up_of,
        t.opened_at,
        t.opened_at,  # queued at once
        c.received_at,
        t.owner_agent_id,
        subject_line(c.subject, c.text),
        customer_display_name(c.customer.name),
        # The span that took the contact (None while tracing is off): later actions on the
        # ticket continue its trace.
        tracing.stored_traceparent(),
    )


def _envelopes(payloads: Iterable[Any]) -> list[Envelope]:
    cid = correlation_id.get()
    return [new_event(p, producer=ROUTER, correlation_id=cid) for p in payloads]


class TicketWrites:
    """New tickets' rows and events, and contacts joining them, gathered so that many tickets
    are written with one statement (`flush`). Events take the correlation id in force when
    they are gathered."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.tickets: list[tuple[Any, ...]] = []
        self.contacts: list[tuple[Any, ...]] = []
        self.history: list[tuple[Any, ...]] = []
        self.thread_keys: list[tuple[Any, ...]] = []
        self.events: list[Envelope] = []
        self.planned: dict[str, int] = {}  # ticket id → its row's index in `tickets`

    def plans(self, ticket_id: str) -> bool:
        """Whether the ticket is one of those gathered here, not yet written."""
        return ticket_id in self.planned

    def open(self, ticket: NewTicket, keys: Iterable[str] = ()) -> None:
        self.planned[str(ticket.id)] = len(self.tickets)
        self.tickets.append(_ticket_row(ticket))
        self.contacts.append(_contact_row(ticket.id, ticket.contact))
        self.history.extend(history_row(ticket.id, entry) for entry in ticket.history)
        self.thread_keys.extend((key, ticket.id) for key in keys)
        self.events.extend(_envelopes(ticket.events))

    def join(
        self,
        ticket_id: uuid.UUID,
        contact: ContactReceived,
        history: HistoryEntry,
        added: Any,
        keys: Iterable[str],
    ) -> None:
        """The contact joins a ticket gathered here (queued, so no status changes): the rows
        and the event `add_contact_rows` would write, in the order it would write them."""
        i = self.planned[str(ticket_id)]
        row = self.tickets[i]
        values = list(row)
        values[_LAST_CONTACT] = max(row[_LAST_CONTACT], contact.received_at)
        values[_CUSTOMER_NAME] = row[_CUSTOMER_NAME] or customer_display_name(contact.customer.name)
        self.tickets[i] = tuple(values)
        self.contacts.append(_contact_row(ticket_id, contact))
        self.history.append(history_row(ticket_id, history))
        self.thread_keys.extend((key, ticket_id) for key in keys)
        self.events.extend(_envelopes([added]))

    async def flush(self, conn: AsyncConnection) -> None:
        """Write what was gathered in one statement (one round trip), then start over."""
        if not (self.tickets or self.contacts or self.history or self.thread_keys or self.events):
            return
        await conn.execute(
            _WRITE_TICKETS,
            {
                **array_params(_TICKET_COLUMNS, self.tickets, prefix="t_"),
                **array_params(_CONTACT_COLUMNS, self.contacts, prefix="c_"),
                **array_params(HISTORY_COLUMNS, self.history, prefix="h_"),
                **array_params(_THREAD_KEY_COLUMNS, self.thread_keys, prefix="k_"),
                **outbox_params(self.events),
            },
        )
        self._reset()


# Every table of `TicketWrites` as data-modifying CTEs of one statement. Foreign keys are
# checked at the end of the statement, so contacts, history and keys may name tickets written
# in it. A contact or thread key already stored (a redelivery) is left as it is.
_KNOWN = "ON CONFLICT DO NOTHING"
_INSERT_CONTACTS = insert_from_arrays(
    "ticket_contacts", _CONTACT_COLUMNS, prefix="c_", suffix=_KNOWN
)
_INSERT_KEYS = insert_from_arrays("thread_keys", _THREAD_KEY_COLUMNS, prefix="k_", suffix=_KNOWN)
_WRITE_TICKETS = text(
    one_statement(
        ("tickets", insert_from_arrays("tickets", _TICKET_COLUMNS, prefix="t_")),
        ("contacts", _INSERT_CONTACTS),
        ("history", INSERT_HISTORY),
        ("keys", _INSERT_KEYS),
        OUTBOX_PART,
    )
)
# A contact joining a stored ticket: its row, the ticket's last contact (and the customer's
# name, if the ticket had none), history, thread keys and (unless a status change writes it
# after its own) its event, in one statement.
_TOUCH = (
    "UPDATE tickets SET last_contact_at = greatest(last_contact_at, :at), "
    "customer_name = coalesce(customer_name, CAST(:name AS text)), updated_at = now() "
    "WHERE id = :id"
)
_ADD_CONTACT_PARTS = (
    ("contact", _INSERT_CONTACTS),
    ("ticket", _TOUCH),
    ("keys", _INSERT_KEYS),
    ("history", INSERT_HISTORY),
)
_ADD_CONTACT = {
    True: text(one_statement(*_ADD_CONTACT_PARTS, OUTBOX_PART)),
    False: text(one_statement(*_ADD_CONTACT_PARTS)),
}


async def add_contact_rows(
    conn: AsyncConnection,
    ticket_id: uuid.UUID,
    contact: ContactReceived,
    history: HistoryEntry,
    keys: Sequence[str],
    events: Sequence[Any],
) -> None:
    """The contact's row, the ticket's last contact, its history row and thread keys, and
    `events`, in one statement."""
    envelopes = _envelopes(events)
    await conn.execute(
        _ADD_CONTACT[bool(envelopes)],
        {
            **array_params(_CONTACT_COLUMNS, [_contact_row(ticket_id, contact)], prefix="c_"),
            "id": ticket_id,
            "at": contact.received_at,
            "name": customer_display_name(contact.customer.name),
            **array_params(HISTORY_COLUMNS, [history_row(ticket_id, history)], prefix="h_"),
            **array_params(_THREAD_KEY_COLUMNS, [(k, ticket_id) for k in keys], prefix="k_"),
            **outbox_params(envelopes),
        },
    )
