"""Contacts becoming (part of) tickets: a contact joins its open ticket, reopens a resolved
one, or opens a new ticket; a batch of them is decided in order and written together."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import ContactReceived, TicketStatus
from ccshared.logging import correlation_id
from router.db.contacts import (
    TicketWrites,
    add_contact_rows,
    batch_view,
    candidates,
    earlier_tickets,
)
from router.db.rules import DEFAULT_RULE_SET, RuleSet
from router.db.segments import segments_of
from router.db.tickets import agent_available, get_ticket, write_change
from router.domain import tickets
from router.domain.classification import ModelVerdicts, Predicted, predicted
from router.domain.opening import (
    NewTicket,
    Placement,
    contact_added,
    contact_history,
    contact_thread,
    facts_of,
    new_ticket,
)
from router.domain.policy import RoutingPolicy
from router.domain.threading import (
    ContactThread,
    OpenTicketCandidate,
    ThreadDecision,
    decide_thread,
    lookup_keys,
    thread_keys,
)
from router.domain.urgency import REPEAT_WINDOW, EarlierTicket
from router.handlers.tickets import decided


class StaleThreadDecision(Exception):
    """The ticket a contact was to join changed status after the (unlocked) look at it."""


async def receive_contact(
    conn: AsyncConnection,
    contact: ContactReceived,
    policy: RoutingPolicy,
    rules: RuleSet = DEFAULT_RULE_SET,
) -> tuple[uuid.UUID, ThreadDecision]:
    """Join the contact to its open ticket, reopen a resolved one, or open a new ticket."""
    thread = contact_thread(contact)
    found = await candidates(conn, [contact.customer_id], lookup_keys(thread))
    decision = decide_thread(thread, list(found.get(thread.customer_id, {}).values()))
    if decision.action == "open_new":
        writes = TicketWrites()
        segments = await segments_of(conn, [contact.customer_id])
        segment = segments.get(contact.customer_id)
        since = datetime.now(UTC) - REPEAT_WINDOW
        earlier = (await earlier_tickets(conn, [contact.customer_id], since)).get(
            thread.customer_id, []
        )
        opened = _open_threaded(writes, contact, thread, decision, policy, rules, segment, earlier)
        ticket_id = opened.id
        await writes.flush(conn)
    else:
        assert decision.ticket_id is not None
        ticket_id = uuid.UUID(decision.ticket_id)
        await add_contact(conn, ticket_id, contact, decision, keys=thread_keys(thread))
    return ticket_id, decision


def _open_threaded(
    writes: TicketWrites,
    contact: ContactReceived,
    thread: ContactThread,
    decision: ThreadDecision,
    policy: RoutingPolicy,
    rules: RuleSet,
    segment: str | None,
    earlier: Sequence[EarlierTicket] = (),
) -> NewTicket:
    follow_up = uuid.UUID(decision.follow_up_of) if decision.follow_up_of else None
    placement = Placement(follow_up_of=follow_up, reason=decision.reason)
    now = datetime.now(UTC)
    ticket = new_ticket(contact, policy, rules, now, placement, segment, earlier)
    writes.open(ticket, thread_keys(thread))
    return ticket


async def receive_contacts(
    conn: AsyncConnection,
    contacts: Sequence[tuple[str | None, ContactReceived]],
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
    # In one statement: their candidate tickets, their segments (the registry's, for new
    # tickets) and their earlier tickets (a repeated contact's priority is raised; kept up to
    # date with the tickets the batch opens).
    view = await batch_view(conn, customers, keys, datetime.now(UTC) - REPEAT_WINDOW)
    pool, segments, earlier_of = view.candidates, view.segments, view.earlier
    rules = await _with_batch_verdicts(rules, contacts, threads, pool, segments)
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
                segment = segments.get(contact.customer_id)
                earlier = earlier_of.setdefault(thread.customer_id, [])
                opened = _open_threaded(
                    writes, contact, thread, decision, policy, rules, segment, earlier
                )
                ticket_id = opened.id
                # As one after the other: a later contact of the batch sees this ticket too.
                earlier.insert(
                    0, EarlierTicket(str(ticket_id), opened.category, "queued", opened.opened_at)
                )
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
            target_id = uuid.UUID(target.ticket_id)
            if writes.plans(target.ticket_id):
                # A ticket this batch opened (queued, so joined, never reopened): rows only.
                history = contact_history(contact, decision.reason, datetime.now(UTC))
                writes.join(target_id, contact, history, contact_added(target_id, contact), added)
                status = target.status
            else:
                try:
                    status = await add_contact(
                        conn,
                        target_id,
                        contact,
                        decision,
                        expect_status=target.status,
                        keys=sorted(added),
                    )
                except StaleThreadDecision:
                    await writes.flush(conn)  # it may now join a ticket of this batch
                    await receive_contact(conn, contact, policy, rules)  # decide again, locked
                    again = await candidates(conn, [contact.customer_id], keys, lock=False)
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


_PREDICT_AT_ONCE = 50  # texts per `predict_many`: the loop runs others in between


async def _with_batch_verdicts(
    rules: RuleSet,
    contacts: Sequence[tuple[str | None, ContactReceived]],
    threads: Sequence[ContactThread],
    pool: dict[str, dict[str, OpenTicketCandidate]],
    segments: dict[uuid.UUID, str],
) -> RuleSet:
    """The rules with the model's verdicts on the texts of the contacts that look like opening
    a ticket, computed for them all at once (`classification.predicted`). A guess made on the
    batch's view before it is decided: a contact that then joins a ticket wasted its verdict,
    one that opens a ticket unexpectedly is predicted alone. The same classification either
    way. Done 50 texts at a time, letting the assigner and the relay run in between."""
    if rules.model is None:
        return rules
    texts = [
        facts_of(contact, segments.get(contact.customer_id)).full_text
        for (_, contact), thread in zip(contacts, threads, strict=True)
        if decide_thread(thread, list(pool.get(thread.customer_id, {}).values())).action
        == "open_new"
    ]
    if not texts:
        return rules
    verdicts: dict[str, ModelVerdicts] = {}
    for start in range(0, len(texts), _PREDICT_AT_ONCE):
        if start:
            await asyncio.sleep(0)
        verdicts.update(predicted(rules.model, texts[start : start + _PREDICT_AT_ONCE]).verdicts)
    return dataclasses.replace(rules, model=Predicted(rules.model, verdicts))


async def open_ticket(
    conn: AsyncConnection,
    contact: ContactReceived,
    policy: RoutingPolicy,
    rules: RuleSet = DEFAULT_RULE_SET,
    placement: Placement = Placement(),
) -> uuid.UUID:
    """Classify, route by the policy (or as placed) and queue a new ticket, with the
    customer's registered segment."""
    writes = TicketWrites()
    segment = (await segments_of(conn, [contact.customer_id])).get(contact.customer_id)
    ticket = new_ticket(contact, policy, rules, datetime.now(UTC), placement, segment)
    writes.open(ticket)
    await writes.flush(conn)
    return ticket.id


async def add_contact(
    conn: AsyncConnection,
    ticket_id: uuid.UUID,
    contact: ContactReceived,
    decision: ThreadDecision,
    *,
    expect_status: str | None = None,
    keys: Sequence[str] = (),
) -> TicketStatus:
    """Add the contact (and its thread `keys`) to the ticket, reopening it if the decision
    says so, or taking it out of pending-customer; returns the ticket's status after.
    `expect_status`: the status the decision was made on without a lock; if the locked
    ticket has another, nothing is written and StaleThreadDecision is raised."""
    ticket = await get_ticket(conn, ticket_id, lock=True)
    if expect_status is not None and ticket.status != expect_status:
        raise StaleThreadDecision(f"ticket {ticket_id} is {ticket.status}, not {expect_status}")
    added = contact_added(ticket_id, contact)
    now = datetime.now(UTC)
    reopens = decision.action == "reopen"
    owner_available = reopens and await agent_available(conn, ticket.owner_agent_id)
    change = decided(
        ticket,
        lambda: tickets.customer_contact(
            ticket, added, decision.reason, now, reopens=reopens, owner_available=owner_available
        ),
        "reopen" if reopens else "customer_replied",
    )
    # The contact's event follows the status change's, if any (written with it, below).
    history = contact_history(contact, decision.reason, now)
    await add_contact_rows(conn, ticket_id, contact, history, keys, [] if change else [added])
    if change is not None:
        await write_change(conn, change)
        tickets.apply(ticket, change)
    return ticket.status
