"""Multi-step processes that touch several of the router's tables and publish ticket events:
a contact becoming (part of) a ticket, and every status change of a ticket."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.db import array_params, insert_from_arrays, one_statement
from ccshared.events import Envelope, new_event
from ccshared.events.payloads import (
    ContactReceived,
    TicketContactAdded,
    TicketOpened,
    TicketReopened,
    TicketRouted,
    TicketStatusChanged,
)
from ccshared.ids import uuid7
from ccshared.logging import correlation_id
from ccshared.outbox import OUTBOX_PART, enqueue, outbox_params
from ccshared.problems import Conflict
from router.db.rules import DEFAULT_RULE_SET, RuleSet
from router.db.tickets import HISTORY_COLUMNS, Ticket, get_ticket
from router.domain.classification import (
    PRIORITY_RANK,
    Classification,
    TicketFacts,
    classify,
)
from router.domain.lifecycle import Action, InvalidTransition, transition
from router.domain.policy import RoutingPolicy, StepMatch, first_matching_step, routing_attributes
from router.domain.threading import (
    ContactThread,
    OpenTicketCandidate,
    ThreadDecision,
    decide_thread,
    lookup_keys,
    thread_keys,
)

ROUTER = "router"


async def publish(conn: AsyncConnection, *payloads: BaseModel) -> None:
    cid = correlation_id.get()
    await enqueue(conn, *(new_event(p, producer=ROUTER, correlation_id=cid) for p in payloads))


def segment_of(contact: ContactReceived) -> str | None:
    """The customer segment routing sees: stated by the integration in metadata, or a key
    account when the contact carries an account id."""
    stated = contact.metadata.get("segment")
    if isinstance(stated, str) and stated:
        return stated
    return "key_account" if contact.customer.account_id else None


def contact_thread(contact: ContactReceived) -> ContactThread:
    t = contact.thread
    return ContactThread(
        channel=contact.channel,
        customer_id=str(contact.customer_id),
        received_at=contact.received_at,
        email_message_id=t.email_message_id,
        email_in_reply_to=t.email_in_reply_to,
        email_references=tuple(t.email_references),
        chat_session_id=t.chat_session_id,
        social_platform=t.social_platform,
        social_post_id=t.social_post_id,
        social_parent_post_id=t.social_parent_post_id,
    )


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
_CANDIDATES_LOCKED = text(_CANDIDATES_SQL + " FOR UPDATE OF t")
_CANDIDATES = text(_CANDIDATES_SQL)


class StaleThreadDecision(Exception):
    """The ticket a contact was to join changed status after the (unlocked) look at it."""


async def _candidates(
    conn: AsyncConnection, customers: list[uuid.UUID], keys: list[str], *, lock: bool = True
) -> dict[str, dict[str, OpenTicketCandidate]]:
    """customer → ticket id → what threading needs of it: the customers' open tickets and
    those of their tickets any of `keys` points at, locked unless `lock` is False. Threading
    only ever joins a contact to its own customer's ticket, so no other customer's ticket is
    looked at."""
    sql = _CANDIDATES_LOCKED if lock else _CANDIDATES
    rows = await conn.execute(sql, {"keys": keys, "customers": customers})
    found: dict[str, dict[str, OpenTicketCandidate]] = {}
    for r in rows:
        candidate = OpenTicketCandidate(
            ticket_id=str(r.id),
            customer_id=str(r.customer_id),
            channel=r.channel,
            status=r.status,
            last_contact_at=r.last_contact_at,
            matched_keys=frozenset(r.keys),
        )
        found.setdefault(candidate.customer_id, {})[candidate.ticket_id] = candidate
    return found


async def receive_contact(
    conn: AsyncConnection,
    contact: ContactReceived,
    policy: RoutingPolicy,
    rules: RuleSet = DEFAULT_RULE_SET,
) -> tuple[uuid.UUID, ThreadDecision]:
    """Join the contact to its open ticket, reopen a resolved one, or open a new ticket."""
    thread = contact_thread(contact)
    found = await _candidates(conn, [contact.customer_id], lookup_keys(thread))
    decision = decide_thread(thread, list(found.get(thread.customer_id, {}).values()))
    if decision.action == "open_new":
        writes = TicketWrites()
        ticket_id = _plan_threaded_ticket(writes, contact, thread, decision, policy, rules)
        await writes.flush(conn)
    else:
        ticket_id = await _join(conn, contact, thread, decision)
    return ticket_id, decision


def _plan_threaded_ticket(
    writes: TicketWrites,
    contact: ContactReceived,
    thread: ContactThread,
    decision: ThreadDecision,
    policy: RoutingPolicy,
    rules: RuleSet,
) -> uuid.UUID:
    follow_up = uuid.UUID(decision.follow_up_of) if decision.follow_up_of else None
    ticket_id = plan_ticket(writes, contact, policy, rules, follow_up_of=follow_up, why=decision)
    writes.thread_keys.extend((key, ticket_id) for key in thread_keys(thread))
    return ticket_id


async def _join(
    conn: AsyncConnection,
    contact: ContactReceived,
    thread: ContactThread,
    decision: ThreadDecision,
    *,
    expect_status: str | None = None,
) -> uuid.UUID:
    assert decision.ticket_id is not None
    ticket_id = uuid.UUID(decision.ticket_id)
    await add_contact(
        conn, ticket_id, contact, decision, expect_status=expect_status, keys=thread_keys(thread)
    )
    return ticket_id


async def receive_contacts(
    conn: AsyncConnection,
    contacts: list[tuple[str | None, ContactReceived]],
    policy: RoutingPolicy,
    rules: RuleSet = DEFAULT_RULE_SET,
) -> None:
    """`receive_contact` for many contacts in order, as if one after the other (each given
    with the correlation id its events carry on): the same threading, and each ticket's rows
    and events in the same order (across tickets the order may differ: events are keyed by
    ticket). One query finds every customer's candidate tickets, and the batch's view of them
    is kept up to date as contacts are decided. New tickets, and contacts joining a ticket
    opened earlier in the batch, are gathered and written together; a contact joining a
    stored ticket locks it and is written at once."""
    threads = [contact_thread(c) for _, c in contacts]
    keys = list(dict.fromkeys(k for t in threads for k in lookup_keys(t)))
    # Not locked: a contact that opens a ticket does not depend on anything an agent could
    # change meanwhile (an open ticket can only close, which opens a new one too); one that
    # joins or reopens locks that ticket and checks its status is still the one decided on.
    customers = list({c.customer_id: None for _, c in contacts})
    pool = await _candidates(conn, customers, keys, lock=False)
    writes = TicketWrites()
    for n, ((cid, contact), thread) in enumerate(zip(contacts, threads, strict=True)):
        if n and not n % 25:
            await asyncio.sleep(0)  # planning is CPU: let the assigner and the relay run too
        token = correlation_id.set(cid)
        try:
            mine = pool.setdefault(thread.customer_id, {})
            decision = decide_thread(thread, list(mine.values()))
            added = frozenset(thread_keys(thread))
            if decision.action == "open_new":
                ticket_id = _plan_threaded_ticket(writes, contact, thread, decision, policy, rules)
                mine[str(ticket_id)] = OpenTicketCandidate(
                    ticket_id=str(ticket_id),
                    customer_id=thread.customer_id,
                    channel=contact.channel,
                    status="queued",
                    last_contact_at=contact.received_at,
                    matched_keys=added,
                )
                continue
            target = mine[decision.ticket_id or ""]
            if writes.plans(target.ticket_id):
                # A ticket this batch opened (queued, so joined, never reopened): rows only.
                writes.join(uuid.UUID(target.ticket_id), contact, decision, added)
                status = target.status
            else:
                try:
                    status = await add_contact(
                        conn,
                        uuid.UUID(target.ticket_id),
                        contact,
                        decision,
                        expect_status=target.status,
                        keys=sorted(added),
                    )
                except StaleThreadDecision:
                    await writes.flush(conn)  # it may now join a ticket of this batch
                    await receive_contact(conn, contact, policy, rules)  # decide again, locked
                    again = await _candidates(conn, [contact.customer_id], keys, lock=False)
                    pool[thread.customer_id] = again.get(thread.customer_id, {})
                    continue
            mine[target.ticket_id] = dataclasses.replace(
                target,
                status=status,
                last_contact_at=max(target.last_contact_at, contact.received_at),
                matched_keys=target.matched_keys | added,
            )
        finally:
            correlation_id.reset(token)
    await writes.flush(conn)


def _contact_row(ticket_id: uuid.UUID, c: ContactReceived) -> tuple[Any, ...]:
    return (c.contact_id, ticket_id, c.channel, c.received_at, c.subject, c.text)


def classification_document(result: Classification, rules_version: int) -> dict[str, Any]:
    return {
        "rules_version": rules_version,
        "category": result.category,
        "priority": result.priority,
        "language": result.language,
        "queue_hint": result.queue_hint,
        "category_rule": result.category_rule,
        "priority_rule": result.priority_rule,
        "matched_rules": [{"rule_id": m.rule_id, "reason": m.reason} for m in result.matched_rules],
    }


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
)
_CONTACT_COLUMNS = (
    ("contact_id", "uuid"),
    ("ticket_id", "uuid"),
    ("channel", "text"),
    ("received_at", "timestamptz"),
    ("subject", "text"),
    ("text", "text"),
)
_THREAD_KEY_COLUMNS = (("key", "text"), ("ticket_id", "uuid"))
_LAST_CONTACT = [name for name, _ in _TICKET_COLUMNS].index("last_contact_at")


@dataclasses.dataclass
class TicketWrites:
    """New tickets' rows and events, gathered so that many tickets are written with one
    statement per table (`flush`)."""

    tickets: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    contacts: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    history: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    thread_keys: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    events: list[Envelope] = dataclasses.field(default_factory=list)
    # ticket id → its row's index in `tickets`
    planned: dict[str, int] = dataclasses.field(default_factory=dict)

    def plans(self, ticket_id: str) -> bool:
        """Whether the ticket is one of those gathered here, not yet written."""
        return ticket_id in self.planned

    def join(
        self,
        ticket_id: uuid.UUID,
        contact: ContactReceived,
        decision: ThreadDecision,
        keys: Iterable[str],
    ) -> None:
        """The contact joins a ticket gathered here (queued, so no status changes): the rows
        and the event `add_contact` would write, in the order it would write them."""
        i = self.planned[str(ticket_id)]
        row = self.tickets[i]
        last = max(row[_LAST_CONTACT], contact.received_at)
        self.tickets[i] = (*row[:_LAST_CONTACT], last, *row[_LAST_CONTACT + 1 :])
        self.contacts.append(_contact_row(ticket_id, contact))
        self.history.append(_contact_history(ticket_id, contact, decision, datetime.now(UTC)))
        self.thread_keys.extend((key, ticket_id) for key in keys)
        self.events.append(
            new_event(
                _contact_added(ticket_id, contact),
                producer=ROUTER,
                correlation_id=correlation_id.get(),
            )
        )

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
        self.tickets, self.contacts, self.history, self.thread_keys, self.events = (
            [],
            [],
            [],
            [],
            [],
        )
        self.planned = {}


# Every table of `TicketWrites` as data-modifying CTEs of one statement. Foreign keys are
# checked at the end of the statement, so contacts, history and keys may name tickets written
# in it. A contact or thread key already stored (a redelivery) is left as it is.
_KNOWN = "ON CONFLICT DO NOTHING"
_INSERT_TICKETS = insert_from_arrays("tickets", _TICKET_COLUMNS, prefix="t_")
_INSERT_CONTACTS = insert_from_arrays(
    "ticket_contacts", _CONTACT_COLUMNS, prefix="c_", suffix=_KNOWN
)
_INSERT_HISTORY = insert_from_arrays("ticket_history", HISTORY_COLUMNS, prefix="h_")
_INSERT_KEYS = insert_from_arrays("thread_keys", _THREAD_KEY_COLUMNS, prefix="k_", suffix=_KNOWN)
_WRITE_TICKETS = text(
    one_statement(
        ("tickets", _INSERT_TICKETS),
        ("contacts", _INSERT_CONTACTS),
        ("history", _INSERT_HISTORY),
        ("keys", _INSERT_KEYS),
        OUTBOX_PART,
    )
)
# A contact joining a stored ticket: its row, the ticket's last contact, history, thread keys
# and (unless a status change writes it after its own) its event, in one statement.
_TOUCH = (
    "UPDATE tickets SET last_contact_at = greatest(last_contact_at, :at), updated_at = now() "
    "WHERE id = :id"
)
_ADD_CONTACT_PARTS = (
    ("contact", _INSERT_CONTACTS),
    ("ticket", _TOUCH),
    ("keys", _INSERT_KEYS),
    ("history", _INSERT_HISTORY),
)
_ADD_CONTACT = {
    True: text(one_statement(*_ADD_CONTACT_PARTS, OUTBOX_PART)),
    False: text(one_statement(*_ADD_CONTACT_PARTS)),
}


def _history_row(
    ticket_id: uuid.UUID,
    at: datetime,
    action: str,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    data: dict[str, Any],
    actor: str = ROUTER,
) -> tuple[Any, ...]:
    return (
        ticket_id,
        at,
        actor,
        action,
        from_status,
        to_status,
        reason,
        orjson.dumps(data).decode(),
    )


async def open_ticket(
    conn: AsyncConnection,
    contact: ContactReceived,
    policy: RoutingPolicy,
    rules: RuleSet = DEFAULT_RULE_SET,
    **options: Any,
) -> uuid.UUID:
    """Classify, route by the policy (or into `queue_id`) and queue a new ticket; the
    options are `plan_ticket`'s."""
    writes = TicketWrites()
    ticket_id = plan_ticket(writes, contact, policy, rules, **options)
    await writes.flush(conn)
    return ticket_id


def plan_ticket(
    writes: TicketWrites,
    contact: ContactReceived,
    policy: RoutingPolicy,
    rules: RuleSet = DEFAULT_RULE_SET,
    *,
    follow_up_of: uuid.UUID | None = None,
    why: ThreadDecision | None = None,
    ticket_id: uuid.UUID | None = None,
    category: str | None = None,
    owner_agent_id: str | None = None,
    queue_id: str | None = None,
) -> uuid.UUID:
    """A new ticket for the contact into `writes`: classified, routed by the policy (or into
    `queue_id`), queued, with its history and its events."""
    now = datetime.now(UTC)
    facts = TicketFacts(
        channel=contact.channel,
        text=contact.text or "",
        subject=contact.subject,
        language=contact.language,
        segment=segment_of(contact),
        metadata=contact.metadata,
    )
    result = classify(facts, rules.rules)
    if category is not None:
        result = dataclasses.replace(result, category=category, category_rule=None)
    step = first_matching_step(policy, routing_attributes(facts, result))
    if queue_id is not None:
        step = dataclasses.replace(
            step,
            queue_id=queue_id,
            timeout_s=None,
            reason=f"follow-up in the earlier ticket's queue {queue_id}",
        )
    priority = step.priority_override or result.priority
    ticket_id = ticket_id or uuid7()
    writes.planned[str(ticket_id)] = len(writes.tickets)
    writes.tickets.append(
        (
            ticket_id,
            contact.customer_id,
            contact.channel,
            "queued",
            result.category,
            priority,
            PRIORITY_RANK[priority],
            result.language,
            facts.segment,
            step.queue_id,
            orjson.dumps(classification_document(result, rules.version)).decode(),
            step.policy_version,
            step.step_id,
            _timeout_at(now, step),
            follow_up_of,
            now,
            now,
            contact.received_at,
            owner_agent_id,
        )
    )
    writes.contacts.append(_contact_row(ticket_id, contact))
    writes.history.append(
        _history_row(
            ticket_id,
            now,
            "open",
            to_status="new",
            reason=why.reason if why else None,
            data={"contact_id": str(contact.contact_id), "classification": result.category_rule},
        )
    )
    writes.history.append(
        _history_row(
            ticket_id,
            now,
            "queue",
            from_status="new",
            to_status="queued",
            reason=step.reason,
            data={
                "queue_id": step.queue_id,
                "policy_version": step.policy_version,
                "policy_step": step.step_id,
            },
        )
    )
    cid = correlation_id.get()
    writes.events.extend(
        new_event(p, producer=ROUTER, correlation_id=cid)
        for p in (
            TicketOpened(
                ticket_id=ticket_id,
                customer_id=contact.customer_id,
                contact_id=contact.contact_id,
                channel=contact.channel,
                category=result.category,
                priority=priority,
                language=result.language,
                segment=facts.segment,
                queue_id=step.queue_id,
                classification_rule=result.category_rule,
                follow_up_of=follow_up_of,
                opened_at=now,
            ),
            TicketStatusChanged(
                ticket_id=ticket_id,
                from_status="new",
                to_status="queued",
                actor=ROUTER,
                reason=step.reason,
                at=now,
            ),
            routed_event(
                ticket_id, step, priority, result.category, contact.channel, facts.segment, now
            ),
        )
    )
    return ticket_id


def routed_event(
    ticket_id: uuid.UUID,
    step: StepMatch,
    priority: Any,
    category: str,
    channel: Any,
    segment: str | None,
    at: datetime,
) -> TicketRouted:
    return TicketRouted(
        ticket_id=ticket_id,
        queue_id=step.queue_id,
        priority=priority,
        category=category,
        channel=channel,
        segment=segment,
        policy_version=step.policy_version,
        policy_step=step.step_id,
        reason=step.reason,
        at=at,
    )


def _timeout_at(now: datetime, step: StepMatch) -> datetime | None:
    return now + timedelta(seconds=step.timeout_s) if step.timeout_s else None


def _contact_history(
    ticket_id: uuid.UUID, contact: ContactReceived, decision: ThreadDecision, at: datetime
) -> tuple[Any, ...]:
    return _history_row(
        ticket_id,
        at,
        "contact",
        reason=decision.reason,
        data={"contact_id": str(contact.contact_id)},
        actor=f"customer:{contact.customer_id}",
    )


def _contact_added(ticket_id: uuid.UUID, contact: ContactReceived) -> TicketContactAdded:
    return TicketContactAdded(
        ticket_id=ticket_id,
        customer_id=contact.customer_id,
        contact_id=contact.contact_id,
        channel=contact.channel,
        received_at=contact.received_at,
    )


async def add_contact(
    conn: AsyncConnection,
    ticket_id: uuid.UUID,
    contact: ContactReceived,
    decision: ThreadDecision,
    *,
    expect_status: str | None = None,
    keys: Sequence[str] = (),
) -> str:
    """Add the contact (and its thread `keys`) to the ticket, reopening it if the decision
    says so, or taking it out of pending-customer; returns the ticket's status after.
    `expect_status`: the status the decision was made on without a lock; if the locked
    ticket has another, nothing is written and StaleThreadDecision is raised."""
    ticket = await get_ticket(conn, ticket_id, lock=True)
    if expect_status is not None and ticket.status != expect_status:
        raise StaleThreadDecision(f"ticket {ticket_id} is {ticket.status}, not {expect_status}")
    added = _contact_added(ticket_id, contact)
    if decision.action == "reopen":
        change: tuple[Action, str | None] | None = ("reopen", decision.reason)
    elif ticket.status == "pending_customer":
        change = ("customer_replied", "the customer answered")
    else:
        change = None
    # Its event follows the status change's, if any (written with them, below).
    cid = correlation_id.get()
    events = [] if change else [new_event(added, producer=ROUTER, correlation_id=cid)]
    await conn.execute(
        _ADD_CONTACT[bool(events)],
        {
            **array_params(_CONTACT_COLUMNS, [_contact_row(ticket_id, contact)], prefix="c_"),
            "id": ticket_id,
            "at": contact.received_at,
            **array_params(
                HISTORY_COLUMNS,
                [_contact_history(ticket_id, contact, decision, datetime.now(UTC))],
                prefix="h_",
            ),
            **array_params(_THREAD_KEY_COLUMNS, [(k, ticket_id) for k in keys], prefix="k_"),
            **outbox_params(events),
        },
    )
    if change:
        action, reason = change
        await change_status(conn, ticket, action, actor=ROUTER, reason=reason, also=[added])
    return ticket.status


async def change_status(
    conn: AsyncConnection,
    ticket: Ticket,
    action: Action,
    *,
    actor: str,
    reason: str | None = None,
    to_agent: bool = False,
    extra: dict[str, Any] | None = None,
    also: Sequence[BaseModel] = (),
) -> str:
    """Apply a lifecycle action to a locked ticket: new status, history, events. Invalid
    transitions raise a 409 problem with the domain's explanation. `also`: events of the
    caller's, published after the change's own, written with them."""
    try:
        owner_available = await _owner_available(conn, ticket) if action == "reopen" else False
        new_status = transition(
            ticket.status,  # type: ignore[arg-type]
            action,
            owner_available=owner_available,
            to_agent=to_agent,
        )
    except InvalidTransition as exc:
        raise Conflict(
            str(exc),
            slug="invalid-transition",
            extra={"ticket_status": ticket.status, "action": action},
        ) from None
    now = datetime.now(UTC)
    sets = {"status": new_status, **(extra or {})}
    # Answering an offered ticket takes it, as accepting the offer does: the offer counts as
    # accepted and the first agent to take a ticket owns it (first-contact ownership).
    taken_by_reply = (
        ticket.status == "assigned" and action == "reply" and new_status == "in_progress"
    )
    if taken_by_reply and ticket.owner_agent_id is None:
        sets.setdefault("owner_agent_id", ticket.assignee_agent_id)
    if new_status == "queued" and ticket.status != "queued":
        sets.update(queued_at=now, assignee_agent_id=None)
    if action == "reopen":
        sets.update(resolved_at=None, closed_at=None)
        if new_status == "in_progress":
            sets["assignee_agent_id"] = ticket.owner_agent_id
    if ticket.status == "assigned" and action != "accept":
        await _settle_pending_offers(conn, ticket, action, actor, taken_by_reply, sets, now)
    events: list[BaseModel] = []
    if action == "reopen":
        events.append(TicketReopened(ticket_id=ticket.id, actor=actor, reason=reason, at=now))
    if new_status != ticket.status:
        events.append(
            TicketStatusChanged(
                ticket_id=ticket.id,
                from_status=ticket.status,  # type: ignore[arg-type]
                to_status=new_status,
                actor=actor,
                reason=reason,
                at=now,
            )
        )
    events.extend(also)
    # The ticket's new values, its history row and its events: one statement, one round trip.
    cid = correlation_id.get()
    envelopes = [new_event(p, producer=ROUTER, correlation_id=cid) for p in events]
    history = [(ticket.id, now, actor, action, ticket.status, new_status, reason, "{}")]
    await conn.execute(
        _status_change_sql(tuple(sets), bool(envelopes)),
        {
            **{f"s_{column}": value for column, value in sets.items()},
            "id": ticket.id,
            **array_params(HISTORY_COLUMNS, history, prefix="h_"),
            **outbox_params(envelopes),
        },
    )
    ticket.status = new_status
    for column, value in sets.items():
        setattr(ticket, column, value)
    return new_status


@lru_cache(maxsize=64)
def _status_change_sql(columns: tuple[str, ...], events: bool) -> TextClause:
    """UPDATE of the ticket's `columns`, its history row and (if `events`) its events, in one
    statement. Column names are change_status's own, never input."""
    assignments = ", ".join(f"{column} = :s_{column}" for column in columns)
    update = f"UPDATE tickets SET {assignments}, updated_at = now() WHERE id = :id"  # noqa: S608
    parts = [("ticket", update), ("history", _INSERT_HISTORY)]
    if events:
        parts.append(OUTBOX_PART)
    return text(one_statement(*parts))


async def _settle_pending_offers(
    conn: AsyncConnection,
    ticket: Ticket,
    action: str,
    actor: str,
    taken_by_reply: bool,
    sets: dict[str, Any],
    now: datetime,
) -> None:
    """An offered ticket changes by something other than the offer's acceptance. If its agent
    answered it (a reply starts the work), the offer counts as accepted; if it leaves the
    offered state or goes to someone else (closed, transferred, moved by an escalation), the
    offer is void: rescinded, no longer shown to its agent nor acceptable. A decline or a
    timeout has answered the offer already, so nothing is pending then.

    The ticket is locked here and offers are locked after it, the reverse of accept, decline
    and expiry: SKIP LOCKED leaves an offer that one of those holds to them (they then find
    the ticket changed: a 409, or an expiry that leaves the ticket alone) instead of waiting
    on it, which could deadlock."""
    assignee = ticket.assignee_agent_id
    if taken_by_reply:
        status, reason, agent = "accepted", "the agent answered the ticket", assignee
    elif sets["status"] == "assigned" and sets.get("assignee_agent_id", assignee) == assignee:
        return  # still on offer to the same agent
    else:
        status, reason, agent = "rescinded", f"{action} by {actor}", None
    await conn.execute(
        text(
            "UPDATE offers SET status = :status, responded_at = :now, reason = :reason "
            "WHERE id IN (SELECT id FROM offers WHERE ticket_id = :id AND status = 'pending' "
            "AND (CAST(:agent AS text) IS NULL OR agent_id = :agent) FOR UPDATE SKIP LOCKED)"
        ),
        {"id": ticket.id, "now": now, "reason": reason, "status": status, "agent": agent},
    )


async def _owner_available(conn: AsyncConnection, ticket: Ticket) -> bool:
    if ticket.owner_agent_id is None:
        return False
    status = (
        await conn.execute(
            text("SELECT status FROM agents WHERE id = :id"), {"id": ticket.owner_agent_id}
        )
    ).scalar()
    return status == "available"
