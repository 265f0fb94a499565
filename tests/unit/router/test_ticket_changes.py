"""What each ticket action changes (`router.domain.tickets`): columns, history, events and
offers, decided without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccshared.events.payloads import (
    SlaEscalated,
    TicketClosed,
    TicketContactAdded,
    TicketReopened,
    TicketReplied,
    TicketRouted,
    TicketStatus,
    TicketStatusChanged,
    TicketTransferred,
)
from router.domain import tickets
from router.domain.lifecycle import ACTIONS, InvalidTransition, transition
from router.domain.policy import DEFAULT_POLICY
from router.domain.prediction import BreachForecast, overflow_helps
from router.domain.tickets import OfferSettlement, Ticket

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)


def ticket(status: TicketStatus = "queued", **fields: Any) -> Ticket:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "customer_id": uuid.uuid4(),
        "channel": "chat",
        "status": status,
        "category": "inquiry",
        "priority": "normal",
        "language": "en",
        "segment": None,
        "queue_id": "frontline",
        "owner_agent_id": None,
        "assignee_agent_id": None,
        "classification": {},
        "policy_version": 1,
        "policy_step": "frontline",
        "step_timeout_at": None,
        "sla_deadline": None,
        "follow_up_of": None,
        "resolution_code": None,
        "first_contact_resolution": None,
        "opened_at": T0,
        "queued_at": T0,
        "last_contact_at": T0,
        "first_response_at": None,
        "resolved_at": None,
        "closed_at": None,
        "updated_at": T0,
    }
    values.update(fields)
    return Ticket(**values)


def kinds(change: tickets.TicketChange) -> list[type]:
    return [type(e) for e in change.events]


def test_a_reply_to_an_offered_ticket_takes_it_and_accepts_the_offer() -> None:
    offered = ticket("assigned", assignee_agent_id="amy")
    change = tickets.reply(offered, "amy", None, LATER)
    assert change.sets["status"] == "in_progress"
    assert change.sets["owner_agent_id"] == "amy"  # first-contact ownership
    assert change.sets["first_response_at"] == LATER
    assert change.offers == OfferSettlement("accepted", "the agent answered the ticket", "amy")
    assert kinds(change) == [TicketStatusChanged, TicketReplied]
    replied = change.events[1]
    assert isinstance(replied, TicketReplied)
    assert replied.first_response
    assert replied.channel == "chat"


def test_a_reply_keeps_an_existing_owner_and_the_first_response_time() -> None:
    held = ticket(
        "in_progress", assignee_agent_id="bob", owner_agent_id="amy", first_response_at=T0
    )
    change = tickets.reply(held, "bob", "email", LATER)
    assert "owner_agent_id" not in change.sets
    assert change.sets["first_response_at"] == T0
    assert change.offers is None  # nothing was on offer
    assert kinds(change) == [TicketReplied]  # no status change, no status event


def test_a_ticket_back_in_the_queue_has_no_assignee_and_a_fresh_queued_time() -> None:
    offered = ticket("assigned", assignee_agent_id="amy", queued_at=T0)
    change = tickets.decline(offered, "amy", "on a break", LATER)
    assert change.sets == {"status": "queued", "queued_at": LATER, "assignee_agent_id": None}
    assert change.history[0].reason == "offer declined: on a break"
    assert change.offers is not None
    assert change.offers.status == "rescinded"


@pytest.mark.parametrize(
    ("available", "status", "assignee"), [(True, "in_progress", "amy"), (False, "queued", None)]
)
def test_a_reopened_resolved_ticket_goes_back_to_its_owner_only_when_available(
    available: bool, status: str, assignee: str | None
) -> None:
    resolved = ticket("resolved", owner_agent_id="amy", assignee_agent_id="amy", resolved_at=T0)
    change = tickets.change(
        resolved, "reopen", actor="supervisor:lin", at=LATER, owner_available=available
    )
    assert change.sets["status"] == status
    assert change.sets["assignee_agent_id"] == assignee
    assert change.sets["resolved_at"] is None
    assert change.sets["closed_at"] is None
    assert kinds(change) == [TicketReopened, TicketStatusChanged]


def test_closing_an_offered_ticket_rescinds_the_offer_and_publishes_the_close_last() -> None:
    offered = ticket("assigned", assignee_agent_id="amy")
    change = tickets.close(offered, "supervisor:lin", "spam", LATER)
    assert change.sets == {"status": "closed", "closed_at": LATER}
    assert change.offers == OfferSettlement("rescinded", "close by supervisor:lin", None)
    assert kinds(change) == [TicketStatusChanged, TicketClosed]


def test_a_transfer_records_its_details_after_the_status_change() -> None:
    held = ticket("in_progress", assignee_agent_id="amy", owner_agent_id="amy")
    change = tickets.transfer(held, "agent:amy", "needs billing", LATER, to_queue_id="billing")
    assert change.sets["queue_id"] == "billing"
    assert change.sets["step_timeout_at"] is None
    assert change.sets["assignee_agent_id"] is None
    assert [h.action for h in change.history] == ["transfer", "transfer"]
    assert change.history[1].data == {
        "from_agent": "amy",
        "to_agent": None,
        "to_queue": "billing",
        "owner": "amy",
    }
    assert kinds(change) == [TicketStatusChanged, TicketTransferred]


def test_a_transfer_of_an_offered_ticket_to_another_agent_rescinds_the_first_offer() -> None:
    offered = ticket("assigned", assignee_agent_id="amy")
    change = tickets.transfer(offered, "supervisor:lin", "vip", LATER, to_agent_id="bob")
    assert change.sets == {"status": "assigned", "assignee_agent_id": "bob"}
    assert change.offers is not None
    assert change.offers.status == "rescinded"
    assert kinds(change) == [TicketTransferred]  # still assigned: no status event


def test_an_invalid_action_is_refused_with_the_lifecycle_reason() -> None:
    with pytest.raises(InvalidTransition, match="resolve a ticket that is queued"):
        tickets.resolve(ticket("queued"), "agent:amy", "answered", True, LATER)


@given(st.lists(st.tuples(st.sampled_from(ACTIONS), st.booleans(), st.booleans()), max_size=30))
def test_any_run_of_actions_keeps_the_ticket_consistent(
    steps: list[tuple[Any, bool, bool]],
) -> None:
    current = ticket("new")
    for action, owner_available, to_agent in steps:
        before = current.status
        try:
            expected = transition(
                before, action, owner_available=owner_available, to_agent=to_agent
            )
        except InvalidTransition:
            with pytest.raises(InvalidTransition):
                tickets.change(current, action, actor="x", at=LATER)
            continue
        extra = {"assignee_agent_id": "bob"} if action in ("transfer", "offer") and to_agent else {}
        change = tickets.change(
            current,
            action,
            actor="x",
            at=LATER,
            owner_available=owner_available,
            to_agent=to_agent and action == "transfer",
            extra=extra,
        )
        tickets.apply(current, change)
        if action != "transfer" or not to_agent:
            assert current.status == expected
        assert change.history[0].from_status == before
        assert change.history[0].to_status == current.status
        status_events = [e for e in change.events if isinstance(e, TicketStatusChanged)]
        assert len(status_events) == (current.status != before)
        if current.status == "queued" and before != "queued":
            assert current.assignee_agent_id is None
            assert current.queued_at == LATER
        if action == "reopen":
            assert current.resolved_at is None
            assert current.closed_at is None
        if change.offers is not None:
            assert before == "assigned"


def _escalation(*actions: Any, to: Any = None, queue: str | None = None) -> SlaEscalated:
    return SlaEscalated(
        ticket_id=uuid.uuid4(),
        metric="first_response",
        level=2,
        actions=list(actions),
        raise_priority_to=to,
        escalation_queue_id=queue,
        at=LATER,
    )


def test_an_escalation_of_a_held_ticket_transfers_it_back_then_moves_it() -> None:
    held = ticket("in_progress", assignee_agent_id="amy", owner_agent_id="amy")
    escalated = _escalation(
        "raise_priority", "move_to_escalation_queue", "notify_manager", to="high"
    )
    changes = tickets.escalate(held, escalated, LATER)
    assert [c.sets for c in changes] == [
        {"priority": "high", "priority_rank": 1},
        {"status": "queued", "queued_at": LATER, "assignee_agent_id": None},
        {"queue_id": "escalations", "step_timeout_at": None},
        {},
    ]
    assert [h.action for c in changes for h in c.history] == [
        "raise_priority",
        "transfer",
        "escalate",
        "notify_manager",
    ]
    routed = changes[2].events[0]
    assert isinstance(routed, TicketRouted)
    assert routed.queue_id == "escalations"
    assert routed.priority == "high"
    assert held.owner_agent_id == "amy"
    assert held.queue_id == "escalations"


def test_an_escalation_never_lowers_priority_nor_moves_a_ticket_already_there() -> None:
    urgent = ticket("queued", priority="urgent", queue_id="escalations")
    escalated = _escalation("raise_priority", "move_to_escalation_queue", to="high")
    assert tickets.escalate(urgent, escalated, LATER) == []


def test_an_overflowing_ticket_moves_to_the_next_step_of_its_policy() -> None:
    vip = ticket("queued", queue_id="vip", policy_step="vip-care", segment="vip")
    change = tickets.overflow_change(vip, DEFAULT_POLICY, LATER)
    assert change is not None
    assert change.sets["queue_id"] == "escalations"
    assert change.history[0].data == {"from_queue": "vip", "to_queue": "escalations"}
    assert isinstance(change.events[0], TicketRouted)


def test_a_ticket_predicted_to_breach_overflows_early_and_says_why() -> None:
    vip = ticket("queued", queue_id="vip", policy_step="vip-care", segment="key_account")
    forecast = BreachForecast(
        datetime(2026, 12, 3, 10, 42, tzinfo=UTC), "first_response", timedelta(minutes=14)
    )
    change = tickets.overflow_change(vip, DEFAULT_POLICY, LATER, forecast)
    assert change is not None
    assert change.sets["queue_id"] == "escalations"
    assert change.history[0].data == {"from_queue": "vip", "to_queue": "escalations", "early": True}
    assert change.history[0].reason == (
        "predicted to breach first response at 10:42 UTC; queue wait 14 min; overflowed early "
        "from 'vip' (step 'vip-care'); step 'vip-overflow' matched: "
        'customer.segment in ["vip", "key_account"] || ticket.queue_hint == "vip"'
    )
    routed = change.events[0]
    assert isinstance(routed, TicketRouted)
    assert routed.reason == change.history[0].reason
    # A step with no timeout (frontline) has nowhere to overflow to, early or not.
    frontline = ticket("queued", queue_id="frontline", policy_step="frontline")
    assert tickets.overflow_change(frontline, DEFAULT_POLICY, LATER, forecast) is None


def test_overflow_early_only_where_the_target_is_not_known_to_wait_as_long() -> None:
    minutes = timedelta(minutes=1)
    assert overflow_helps(14 * minutes, None)
    assert overflow_helps(14 * minutes, 2 * minutes)
    assert not overflow_helps(14 * minutes, 14 * minutes)
    assert not overflow_helps(14 * minutes, 30 * minutes)


def test_a_ticket_routed_by_an_older_policy_does_not_overflow() -> None:
    old = ticket("queued", queue_id="vip", policy_step="vip-care", policy_version=0)
    assert tickets.overflow_change(old, DEFAULT_POLICY, LATER) is None


def _added(t: Ticket) -> TicketContactAdded:
    return TicketContactAdded(
        ticket_id=t.id,
        customer_id=t.customer_id,
        contact_id=uuid.uuid4(),
        channel="chat",
        received_at=LATER,
    )


def test_a_customer_answer_takes_a_ticket_out_of_waiting_and_publishes_the_contact_last() -> None:
    waiting = ticket("pending_customer", assignee_agent_id="amy")
    change = tickets.customer_contact(waiting, _added(waiting), "same chat", LATER, reopens=False)
    assert change is not None
    assert change.sets == {"status": "in_progress"}
    assert change.history[0].reason == "the customer answered"
    assert kinds(change) == [TicketStatusChanged, TicketContactAdded]


def test_a_customer_contact_on_a_ticket_in_progress_changes_no_status() -> None:
    held = ticket("in_progress", assignee_agent_id="amy")
    assert tickets.customer_contact(held, _added(held), "same chat", LATER, reopens=False) is None


def test_a_customer_reply_to_a_resolved_ticket_reopens_it_for_its_available_owner() -> None:
    resolved = ticket("resolved", owner_agent_id="amy", resolved_at=T0)
    change = tickets.customer_contact(
        resolved, _added(resolved), "reply to ticket", LATER, reopens=True, owner_available=True
    )
    assert change is not None
    assert (change.sets["status"], change.sets["assignee_agent_id"]) == ("in_progress", "amy")
    assert kinds(change) == [TicketReopened, TicketStatusChanged, TicketContactAdded]
