"""Follow-ups requested by feedback (a detractor's answer, a key account's call-back): one
follow-up ticket each, in the earlier ticket's queue, owned by its owner; with the customer's
registered segment, so a key account's call-back is routed as a key account's (VIP care); a
detractor's is told to that owner and the queue's supervisors."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import ContactReceived, CustomerHints, FollowUpRequested
from router.db.customers import known_customer
from router.db.notifications import queue_staff, write_notifications
from router.db.rules import RuleSet
from router.db.tickets import TicketNotFound, get_ticket, ticket_exists
from router.domain import notifications
from router.domain.notifications import QueueStaff
from router.domain.opening import Placement
from router.domain.policy import RoutingPolicy
from router.handlers.contacts import open_ticket


async def open_follow_up(
    conn: AsyncConnection, requested: FollowUpRequested, policy: RoutingPolicy, rules: RuleSet
) -> None:
    """The follow-up's id is the request's, so a repeated request opens nothing new."""
    if await ticket_exists(conn, requested.follow_up_id):
        return
    earlier = None
    if requested.ticket_id is not None:
        try:
            earlier = await get_ticket(conn, requested.ticket_id)
        except TicketNotFound:
            earlier = None
    what = (
        "customer was unhappy with the answer"
        if requested.reason == "detractor"
        else "scheduled call-back to a key account"
    )
    # The customer has a view (a key account may never have written), and a merged one's
    # follow-up goes to the customer it became.
    customer_id = await known_customer(conn, requested.customer_id, requested.due_at)
    contact = ContactReceived(
        contact_id=requested.follow_up_id,
        customer_id=customer_id,
        channel=requested.channel or (earlier.channel if earlier else "phone"),
        external_id=f"follow-up:{requested.follow_up_id}",
        received_at=requested.due_at,
        subject="Follow-up" if requested.language != "zh" else "回访",
        text=(requested.note or what),
        language=requested.language,
        customer=CustomerHints(name=earlier.customer_name if earlier else None),
        # The earlier ticket's segment as the integration stated it; a key account's comes
        # from the registry when the ticket opens (`open_ticket`), as it is now.
        metadata={"segment": earlier.segment} if earlier and earlier.segment else {},
    )
    placement = Placement(
        ticket_id=requested.follow_up_id,
        follow_up_of=requested.ticket_id,
        category="follow_up",
        owner_agent_id=earlier.owner_agent_id if earlier else None,
        queue_id=earlier.queue_id if earlier and earlier.queue_id else None,
    )
    await open_ticket(conn, contact, policy, rules, placement)
    if requested.reason == "detractor":
        opened = await get_ticket(conn, requested.follow_up_id)
        staff = await queue_staff(conn, [opened.queue_id])
        await write_notifications(
            conn,
            notifications.follow_up(
                opened.id,
                opened.owner_agent_id,
                staff.get(opened.queue_id or "", QueueStaff()),
                requested.reason,
                requested.ticket_id,
                opened.opened_at,
            ),
            by_email=True,
        )
