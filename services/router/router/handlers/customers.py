"""Customers: contacts adding to each customer's view (and a merged customer's contacts going
to the one it became), reading one customer and searching them (an agent only customers of
tickets they may read), and a supervisor's merge of two customers with its event."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.auth import Principal
from ccshared.events.payloads import ContactReceived, CustomerMerged
from ccshared.problems import FieldError, NotFound, Problem
from router.db import customers as db
from router.db.tickets import Ticket, page_of_tickets
from router.domain.customers import (
    InvalidQuery,
    MergeRefused,
    customer_query,
    like_pattern,
    plan_merge,
    sightings,
)
from router.handlers.tickets import decode_cursor, encode_cursor

# The moved tickets an event names at most (a customer with more keeps the event well under
# Kafka's message size; `tickets_moved` counts them all, and consumers act by customer id).
EVENT_TICKET_IDS = 1_000
# A customer merged while a batch was being recorded is followed to where it went; a chain of
# merges racing one batch longer than this is an error (the batch is retried).
_MAX_FOLLOWS = 5


class CustomerNotFound(NotFound):
    pass


class CustomerWasMerged(Problem):
    """A merged customer: `308 Permanent Redirect` to the customer it became, with a problem
    body naming it (`merged_into`), so a client that follows redirects lands there and one
    that does not knows where to go."""

    status = 308
    slug = "customer-merged"

    def __init__(self, customer_id: uuid.UUID, into: uuid.UUID) -> None:
        super().__init__(
            f"Customer {customer_id} was merged into {into}.",
            headers={"Location": f"/v1/customers/{into}"},
            extra={"merged_into": str(into)},
        )


def _not_found(customer_id: uuid.UUID) -> CustomerNotFound:
    return CustomerNotFound(f"No customer {customer_id}.")


async def note_contacts(
    conn: AsyncConnection, contacts: Sequence[ContactReceived]
) -> list[ContactReceived]:
    """Add contacts to their customers' views (one statement in the usual case) and return
    them, each of a merged customer given the customer it became (intake may still send a
    contact under the old id until it has applied the merge)."""
    where = {c.customer_id: c.customer_id for c in contacts}
    todo = set(where)
    for _ in range(_MAX_FOLLOWS):
        batch = [_as_of(c, where) for c in contacts if c.customer_id in todo]
        written = await db.record_sightings(conn, sightings(batch))
        todo = {c for c in todo if where[c] not in written}
        if not todo:
            return [_as_of(c, where) for c in contacts]
        targets = await db.merged_targets(conn, [where[c] for c in todo])
        for customer in todo:
            where[customer] = targets.get(where[customer], where[customer])
    raise RuntimeError(f"customers {sorted(map(str, todo))} kept being merged under a batch")


def _as_of(contact: ContactReceived, where: dict[uuid.UUID, uuid.UUID]) -> ContactReceived:
    now = where[contact.customer_id]
    if now == contact.customer_id:
        return contact
    return contact.model_copy(update={"customer_id": now})


# --- reading ------------------------------------------------------------------------------


@dataclass
class CustomerView:
    customer: dict[str, Any]
    identities: list[tuple[str, str]]
    tickets: list[Ticket]
    more_tickets: bool
    last_contacts: list[dict[str, Any]]


async def _readable(conn: AsyncConnection, customer_id: uuid.UUID, user: Principal) -> bool:
    return user.is_supervisor or await db.agent_may_read_customer(conn, customer_id, user.subject)


async def customer_view(
    engine: AsyncEngine,
    customer_id: uuid.UUID,
    user: Principal,
    *,
    tickets_limit: int,
    contacts_limit: int,
) -> CustomerView:
    """The customer with their identities, segment, tickets (newest first) and last contacts.
    An agent reads only a customer of a ticket they may read, and sees only such tickets and
    their contacts; any other customer is a 404 like one that does not exist. A merged
    customer is a 308 to the one it became (for an agent, only if they may read that one)."""
    async with engine.connect() as conn:
        customer = await db.get_customer(conn, customer_id)
        if customer is None:
            raise _not_found(customer_id)
        into = customer["merged_into"]
        if into is not None:
            if not await _readable(conn, into, user):
                raise _not_found(customer_id)
            raise CustomerWasMerged(customer_id, into)
        if not await _readable(conn, customer_id, user):
            raise _not_found(customer_id)
        reader = None if user.is_supervisor else user.subject
        identities = await db.identities_of(conn, customer_id)
        tickets = await page_of_tickets(
            conn, limit=tickets_limit + 1, reader=reader, customer_id=customer_id
        )
        contacts = await db.last_contacts(conn, customer_id, limit=contacts_limit, reader=reader)
    return CustomerView(
        customer=customer,
        identities=identities,
        tickets=tickets[:tickets_limit],
        more_tickets=len(tickets) > tickets_limit,
        last_contacts=contacts,
    )


def _invalid_query(exc: InvalidQuery) -> Problem:
    return Problem(
        f"The search text cannot be used: {exc}.",
        status=422,
        slug="validation-error",
        errors=[FieldError(field="query.q", message=str(exc), type="value_error")],
    )


async def search_customers(
    engine: AsyncEngine,
    user: Principal,
    q: str,
    *,
    phone_region: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Customers by phone (any common format, read as E.164), e-mail (exact, case-insensitive)
    or name (substring; a prefix under three characters), most recently in contact first; a
    page and the next page's cursor. An agent finds only customers they may read."""
    try:
        query = customer_query(q, phone_region)
    except InvalidQuery as exc:
        raise _invalid_query(exc) from exc
    after = decode_cursor(cursor) if cursor else None
    async with engine.connect() as conn:
        found = await db.search_customers(
            conn,
            query,
            pattern=like_pattern(query),
            limit=limit + 1,
            reader=None if user.is_supervisor else user.subject,
            after=after,
        )
    page = found[:limit]
    more = len(found) > limit
    return page, encode_cursor(page[-1]["last_contact_at"], page[-1]["id"]) if more else None


# --- merging ------------------------------------------------------------------------------


async def merge_customers(
    engine: AsyncEngine, source: uuid.UUID, target: uuid.UUID, user: Principal
) -> tuple[CustomerMerged, list[uuid.UUID]]:
    """Merge `source` into `target` (a supervisor's; the endpoint checks the role): in one
    transaction, both customers locked in id order, the source's tickets and identities move
    to the target, the source is marked merged, and `customer.merged` goes to the outbox.
    Refused with nothing changed: an unknown source (404) or target (422 naming body.into),
    into itself (422), a source already merged or a merged target (409). Returns the event
    and every moved ticket."""
    at = datetime.now(UTC)
    async with engine.begin() as conn:
        found = await db.lock_customers(conn, [source, target])
        if source not in found:
            raise _not_found(source)
        if target not in found:
            raise Problem(
                f"No customer {target} to merge into.",
                status=422,
                slug="validation-error",
                errors=[
                    FieldError(field="body.into", message="no such customer", type="value_error")
                ],
            )
        try:
            plan = plan_merge(found[source], found[target])
        except MergeRefused as exc:
            errors = None
            if exc.field:
                errors = [FieldError(field=exc.field, message=exc.reason, type="value_error")]
            raise Problem(
                f"Cannot merge: {exc.reason}.",
                status=exc.status,
                slug="validation-error" if exc.status == 422 else "conflict",
                errors=errors,
            ) from exc
        moved = await db.merge_customers(conn, plan, actor=user.actor, at=at)
        event = CustomerMerged(
            customer_id=target,
            merged_customer_id=source,
            actor=user.actor,
            ticket_ids=moved[:EVENT_TICKET_IDS],
            tickets_moved=len(moved),
            at=at,
        )
        await db.announce(conn, event)
    return event, moved
