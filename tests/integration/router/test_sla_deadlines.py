"""Each ticket's next SLA deadline, from SLA's `sla.deadline_changed`: stored only forward (a
late, older event is ignored), and the waiting-ticket order uses it; and the ticket.opened the
SLA clocks start from carries when the customer wrote."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from ccshared.events import decode_event, new_event
from ccshared.events.catalog import ROUTER_TICKETS, SLA_EVENTS
from ccshared.events.payloads import SlaDeadlineChanged, TicketOpened
from ccshared.kafka import commit_group_at_end, ensure_topics
from router.app import create_app
from router.consumers.sla import apply_deadlines, apply_deadlines_in_bulk
from router.settings import RouterSettings
from tests.conftest import TOPIC_PREFIX, scratch_database, topic
from tests.helpers import as_supervisor, wait_until
from tests.integration.router.conftest import Router, contact
from tests.integration.sla.conftest import SlaFactory

NOW = datetime.now(UTC).replace(microsecond=0)


def moved(
    ticket_id: uuid.UUID, version: int, deadline: datetime | None, metric: Any = "first_response"
) -> SlaDeadlineChanged:
    return SlaDeadlineChanged(
        ticket_id=ticket_id,
        next_deadline=deadline,
        metric=metric if deadline else None,
        version=version,
        at=datetime.now(UTC),
    )


async def deliver(router: Router, *changes: SlaDeadlineChanged) -> None:
    """One event at a time, as the consumer's one-by-one path does."""
    handler = apply_deadlines(router.runtime)
    for change in changes:
        async with router.runtime.engine.begin() as conn:
            await handler(conn, new_event(change, producer="sla"), change)


async def deliver_fetch(router: Router, *changes: SlaDeadlineChanged) -> None:
    """A whole fetch at once, as the consumer's batch path does."""
    handler = apply_deadlines_in_bulk(router.runtime)
    async with router.runtime.engine.begin() as conn:
        await handler(conn, [(new_event(c, producer="sla"), c) for c in changes])


async def stored(router: Router, ticket_id: uuid.UUID) -> tuple[datetime | None, int]:
    (row,) = await router.sql(
        "SELECT sla_deadline, sla_deadline_version FROM tickets WHERE id = :t", t=ticket_id
    )
    return row.sla_deadline, row.sla_deadline_version


async def test_the_next_deadline_is_stored_and_cleared(router: Router) -> None:
    ticket_id = await router.receive(contact(uuid.uuid4()))
    assert await stored(router, ticket_id) == (None, 0)
    await deliver(router, moved(ticket_id, 1, NOW + timedelta(hours=1)))
    assert await stored(router, ticket_id) == (NOW + timedelta(hours=1), 1)
    await deliver(router, moved(ticket_id, 2, None))  # paused: no clock runs
    assert await stored(router, ticket_id) == (None, 2)
    await deliver(router, moved(uuid.uuid4(), 1, NOW))  # not our ticket: nothing, no error


async def test_an_older_deadline_delivered_late_is_ignored(router: Router) -> None:
    ticket_id = await router.receive(contact(uuid.uuid4()))
    latest = NOW + timedelta(hours=8)
    await deliver(router, moved(ticket_id, 3, latest, "resolution"))
    await deliver(router, moved(ticket_id, 2, NOW + timedelta(hours=1)))  # late
    await deliver(router, moved(ticket_id, 3, NOW))  # redelivered version: no second effect
    assert await stored(router, ticket_id) == (latest, 3)


async def test_a_fetch_keeps_each_tickets_latest_version_whatever_the_order(
    router: Router,
) -> None:
    first = await router.receive(contact(uuid.uuid4()))
    second = await router.receive(contact(uuid.uuid4()))
    await deliver(router, moved(second, 5, NOW))
    await deliver_fetch(
        router,
        moved(first, 2, NOW + timedelta(hours=2)),
        moved(first, 1, NOW + timedelta(hours=1)),
        moved(second, 4, NOW + timedelta(hours=4)),  # older than what is stored
        moved(uuid.uuid4(), 1, NOW),
    )
    assert await stored(router, first) == (NOW + timedelta(hours=2), 2)
    assert await stored(router, second) == (NOW, 5)


async def test_the_earlier_deadline_is_offered_first_among_equal_priority(router: Router) -> None:
    """Two tickets of one priority: the one that waited less but whose SLA deadline comes
    first is offered first, with deadlines arriving as SLA publishes them."""
    older = await router.receive(contact(uuid.uuid4(), channel="chat", text_="hello"))
    newer = await router.receive(contact(uuid.uuid4(), channel="chat", text_="hello"))
    (a, b) = await router.sql(
        "SELECT priority_rank FROM tickets WHERE id IN (:a, :b)", a=older, b=newer
    )
    assert a.priority_rank == b.priority_rank
    await deliver_fetch(
        router,
        moved(older, 1, NOW + timedelta(hours=2)),
        moved(newer, 1, NOW + timedelta(hours=2)),
        moved(newer, 2, NOW + timedelta(minutes=20)),  # e.g. re-matched to a stricter policy
    )
    # Without the deadlines the older would go first (the ticket that waited longest).
    await router.agent("solo", capacity={"chat": 1, "phone": 0, "email": 0, "social": 0})
    await router.assigner.tick()
    (offer,) = await router.offers("solo")
    assert uuid.UUID(offer["ticket_id"]) == newer


async def test_ticket_opened_carries_when_the_customer_wrote(router: Router) -> None:
    """The SLA clocks start from it: a contact received eight days ago (the router down or
    behind) opens a ticket now whose `received_at` is eight days back."""
    await router.runtime.relay.stop()  # the events stay in the outbox, to be read
    wrote = NOW - timedelta(days=8)
    ticket_id = await router.receive(contact(uuid.uuid4(), at=wrote))
    rows = await router.sql("SELECT value FROM outbox WHERE key = :t", t=str(ticket_id))
    (opened,) = [
        payload
        for envelope, payload in (decode_event(r.value) for r in rows)
        if envelope.event_type == "ticket.opened"
    ]
    assert isinstance(opened, TicketOpened)
    assert opened.received_at == wrote
    assert opened.opened_at > wrote + timedelta(days=7)


async def test_across_router_and_sla_an_old_contact_gets_an_overdue_deadline(
    kafka_bootstrap: str,
) -> None:
    """Router and SLA in one process on the real broker, each with its database: the router's
    ticket.opened (from a contact received eight days ago) reaches SLA, SLA's
    sla.deadline_changed comes back, and the router stores a deadline counted from when the
    customer wrote: days overdue, not hours ahead."""
    suffix = f".test-{uuid.uuid4().hex[:8]}"
    sla_name = f"sla-t{uuid.uuid4().hex[:10]}"
    await ensure_topics(kafka_bootstrap, prefix=TOPIC_PREFIX)
    await commit_group_at_end(kafka_bootstrap, f"{sla_name}.ticket-clocks", [topic(ROUTER_TICKETS)])
    await commit_group_at_end(kafka_bootstrap, f"router.sla-deadlines{suffix}", [topic(SLA_EVENTS)])
    async with scratch_database() as router_db, scratch_database() as sla_db:
        slas = SlaFactory(sla_db, kafka_bootstrap, sla_name)
        await slas.start()
        app = create_app(
            RouterSettings(
                database_url=SecretStr(router_db),
                kafka_bootstrap=kafka_bootstrap,
                log_json=False,
                consumer_group_suffix=suffix,
                assign_in_background=False,
                outbox_poll_interval_s=0.1,
            )
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://r", headers=as_supervisor()
        )
        try:
            router = Router(app, client)
            wrote = NOW - timedelta(days=8)
            ticket_id = await router.receive(contact(uuid.uuid4(), at=wrote))

            async def deadline_stored() -> Any:
                deadline, version = await stored(router, ticket_id)
                return deadline if version >= 1 else None

            deadline = await wait_until(deadline_stored, timeout=60)
            assert wrote < deadline < wrote + timedelta(hours=9)  # the longest default: 8 h
        finally:
            await client.aclose()
            await lifespan.__aexit__(None, None, None)
            for sla in list(slas.running):
                await slas.stop(sla)
