"""Predicted breach: a waiting ticket whose SLA deadline comes before its queue's recent wait is
over goes ahead of its priority band, and its offer says why; switched off, the plain order."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from ccshared.events import new_event
from ccshared.events.payloads import SlaDeadlineChanged
from router.consumers.sla import apply_deadlines_in_bulk
from tests.integration.router.conftest import Router, contact

CHAT_ONLY = {"chat": 1, "phone": 0, "email": 0, "social": 0}


async def _two_waiting(router: Router) -> tuple[uuid.UUID, uuid.UUID, datetime]:
    """A high-priority ticket with no deadline, and a normal one due in 5 minutes, in one
    queue whose recent wait is 14 minutes. Returns (high, normal, its deadline)."""
    high = await router.receive(contact(uuid.uuid4(), channel="chat", text_="hello"))
    normal = await router.receive(contact(uuid.uuid4(), channel="chat", text_="hello"))
    await router.sql(
        "UPDATE tickets SET priority_rank = CASE WHEN id = :h THEN 1 ELSE 2 END, "
        "queue_id = 'frontline' WHERE id IN (:h, :n)",
        h=high,
        n=normal,
    )
    deadline = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    change = SlaDeadlineChanged(
        ticket_id=normal, next_deadline=deadline, metric="first_response", version=1, at=deadline
    )
    async with router.runtime.engine.begin() as conn:
        await apply_deadlines_in_bulk(router.runtime)(
            conn, [(new_event(change, producer="sla"), change)]
        )
    if router.assigner.waits is not None:
        router.assigner.waits.observe("frontline", timedelta(minutes=14))
    await router.agent("solo", capacity=CHAT_ONLY)
    await router.assigner.tick()
    return high, normal, deadline


async def test_a_ticket_predicted_to_breach_is_offered_ahead_of_its_priority_band(
    router: Router,
) -> None:
    high, normal, deadline = await _two_waiting(router)
    (offer,) = await router.offers("solo")
    assert uuid.UUID(offer["ticket_id"]) == normal
    history = (await router.ticket(normal))["history"]
    (offered,) = [h for h in history if h["action"] == "offer"]
    assert offered["reason"] == (
        f"offered to solo; predicted to breach first response at {deadline:%H:%M} UTC; "
        "queue wait 14 min"
    )
    assert (await router.ticket(high))["status"] == "queued"


async def test_without_prediction_priority_comes_first(
    router_factory: Callable[..., Awaitable[Router]],
) -> None:
    router = await router_factory(predict_breach=False)
    high, _normal, _deadline = await _two_waiting(router)
    (offer,) = await router.offers("solo")
    assert uuid.UUID(offer["ticket_id"]) == high


async def _vip_due_soon(router: Router) -> tuple[uuid.UUID, uuid.UUID, datetime]:
    """Two VIP tickets waiting in VIP care (whose step overflows to escalations after 5 min),
    nobody to take them, the queue's recent wait 14 min: one due in 5 min, one with no
    deadline. Returns (due, without deadline, the deadline)."""
    due, calm = [
        await router.receive(
            contact(uuid.uuid4(), channel="phone", text_="hello", metadata={"segment": "vip"})
        )
        for _ in range(2)
    ]
    deadline = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    change = SlaDeadlineChanged(
        ticket_id=due, next_deadline=deadline, metric="first_response", version=1, at=deadline
    )
    async with router.runtime.engine.begin() as conn:
        await apply_deadlines_in_bulk(router.runtime)(
            conn, [(new_event(change, producer="sla"), change)]
        )
    if router.assigner.waits is not None:
        router.assigner.waits.observe("vip", timedelta(minutes=14))
    await router.assigner.tick()
    return due, calm, deadline


async def test_a_ticket_predicted_to_breach_overflows_early_and_says_why(router: Router) -> None:
    due, calm, deadline = await _vip_due_soon(router)
    ticket = await router.ticket(due)
    assert ticket["queue_id"] == "escalations"
    assert ticket["policy_step"] == "vip-overflow"
    (moved,) = [h for h in ticket["history"] if h["action"] == "overflow"]
    assert moved["reason"].startswith(
        f"predicted to breach first response at {deadline:%H:%M} UTC; queue wait 14 min; "
        "overflowed early from 'vip' (step 'vip-care')"
    )
    assert (await router.ticket(calm))["queue_id"] == "vip"  # no deadline: waits its 5 min


async def test_no_early_overflow_to_a_queue_known_to_wait_as_long(router: Router) -> None:
    if router.assigner.waits is not None:
        router.assigner.waits.observe("escalations", timedelta(minutes=20))
    due, _calm, _deadline = await _vip_due_soon(router)
    assert (await router.ticket(due))["queue_id"] == "vip"


async def test_without_prediction_no_ticket_overflows_early(
    router_factory: Callable[..., Awaitable[Router]],
) -> None:
    router = await router_factory(predict_breach=False)
    due, _calm, _deadline = await _vip_due_soon(router)
    assert (await router.ticket(due))["queue_id"] == "vip"


async def test_a_ticket_overflowing_unoffered_counts_towards_its_queues_wait(
    router: Router,
) -> None:
    """Only offers fed a queue's wait, so a queue whose tickets all overflowed away looked
    quick; a ticket that waited its step's whole timeout says the wait is at least that."""
    ticket_id = await router.receive(
        contact(uuid.uuid4(), channel="phone", text_="hello", metadata={"segment": "vip"})
    )
    await router.sql(
        "UPDATE tickets SET queued_at = now() - interval '6 minutes', "
        "step_timeout_at = now() - interval '1 minute' WHERE id = :t",
        t=ticket_id,
    )
    assert router.assigner.waits is not None
    assert router.assigner.waits.expected("vip") is None
    await router.assigner.tick()
    assert (await router.ticket(ticket_id))["queue_id"] == "escalations"
    wait = router.assigner.waits.expected("vip")
    assert wait is not None
    assert timedelta(minutes=5, seconds=59) < wait < timedelta(minutes=6, seconds=10)
