"""Customers: one customer with their tickets and last contacts, a search by phone, e-mail or
name (an agent only customers of tickets they may read), and a supervisor's merge."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, Settings, Supervisor, User
from router.api.schemas import (
    CustomerContactOut,
    CustomerDetail,
    CustomerOut,
    CustomerPage,
    MergeIn,
    MergeOut,
    TicketOut,
)
from router.domain.customers import MAX_QUERY_CHARS
from router.domain.summary import subject_line
from router.handlers import customers
from router.settings import RouterSettings

router = APIRouter(
    prefix="/v1", dependencies=[Depends(principal)], responses=AUTH_RESPONSES, tags=["customers"]
)


@router.get(
    "/customers",
    response_model=CustomerPage,
    summary="Find customers by phone, e-mail or name, most recently in contact first",
    description="`q` is a phone number in any common format (read as E.164; without a country "
    "code in `ROUTER_PHONE_REGION`), an e-mail (exact, case-insensitive) or a name (a "
    "substring, case-insensitive; under three characters, a prefix). A supervisor finds every "
    "customer; an agent only customers of tickets they may read. Merged customers are left out.",
)
async def search_customers(
    q: str = Query(min_length=1, max_length=MAX_QUERY_CHARS),
    limit: int = Query(default=20, ge=1, le=100),
    cursor: str | None = None,
    user: Principal = User,
    engine: AsyncEngine = Engine,
    settings: RouterSettings = Settings,
) -> CustomerPage:
    page, next_cursor = await customers.search_customers(
        engine, user, q, phone_region=settings.phone_region, limit=limit, cursor=cursor
    )
    return CustomerPage(
        items=[CustomerOut.of(row, row["identities"]) for row in page], next_cursor=next_cursor
    )


@router.get(
    "/customers/{customer_id}",
    response_model=CustomerDetail,
    summary="A customer: name, e-mails, phones, handles, segment, tickets, last contacts",
    description="An agent reads only a customer of a ticket they may read, and sees only those "
    "tickets and their contacts; any other customer is a 404 like one that does not exist. A "
    "merged customer is a `308` to the customer it became (`Location`, and `merged_into` in "
    "the problem body).",
    responses={308: {"description": "The customer was merged into another (`Location`)"}},
)
async def get_customer(
    customer_id: uuid.UUID,
    tickets_limit: int = Query(default=20, ge=1, le=100),
    contacts_limit: int = Query(default=20, ge=1, le=100),
    user: Principal = User,
    engine: AsyncEngine = Engine,
) -> CustomerDetail:
    view = await customers.customer_view(
        engine, customer_id, user, tickets_limit=tickets_limit, contacts_limit=contacts_limit
    )
    return CustomerDetail(
        **CustomerOut.of(view.customer, view.identities).model_dump(),
        tickets=[TicketOut.of(t) for t in view.tickets],
        more_tickets=view.more_tickets,
        last_contacts=[
            CustomerContactOut(**c, preview=subject_line(c["subject"], c["text"]))
            for c in view.last_contacts
        ],
    )


@router.post(
    "/customers/{customer_id}/merge",
    response_model=MergeOut,
    summary="Merge this customer into another (supervisors): its tickets and identities follow",
    description="In one transaction: the customer's tickets and identities move to `into`, it "
    "is marked merged (reads of it are a `308` to `into`), and `customer.merged` is published "
    "(intake and feedback follow). Into itself is a 422, into a merged customer or merging one "
    "already merged a 409, an unknown `into` a 422; nothing is changed then.",
)
async def merge_customer(
    customer_id: uuid.UUID,
    body: MergeIn,
    user: Principal = Supervisor,
    engine: AsyncEngine = Engine,
) -> MergeOut:
    merged, moved = await customers.merge_customers(engine, customer_id, body.into, user)
    return MergeOut(
        customer_id=merged.customer_id,
        merged_customer_id=merged.merged_customer_id,
        ticket_ids=moved,
        at=merged.at,
    )
