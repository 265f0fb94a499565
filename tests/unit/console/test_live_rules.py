"""Who sees which live event (console.domain.live): one test per rule."""

from __future__ import annotations

from typing import Any

from console.domain.live import (
    Cursor,
    Queue,
    TicketFacts,
    Viewer,
    audience,
    facts_after,
    may_concern_anyone,
    parse_cursor,
    queues_served,
    replay_range,
    sees,
)

T = "0b5e4f3c-0000-4000-8000-000000000001"
SUP = Viewer(user_id="sam", subject="sam", supervisor=True)
AMY = Viewer(user_id="amy", subject="amy", supervisor=False, agent_id="amy")
BOB = Viewer(user_id="bob", subject="bob", supervisor=False, agent_id="bob")
BILLING_AGENT = Viewer(
    user_id="cat", subject="cat", supervisor=False, agent_id="cat", queues=frozenset({"billing"})
)


def offer(recipient: str) -> dict[str, Any]:
    return {"recipient_id": recipient, "kind": "new_offer", "ticket_id": T, "text": "offer"}


def who_sees(
    event_type: str, payload: dict[str, Any], before: TicketFacts | None = None
) -> set[str]:
    crowd = (SUP, AMY, BOB, BILLING_AGENT)
    return {v.user_id for v in crowd if sees(v, audience(event_type, payload, before))}


def test_an_agents_offer_notification_reaches_that_agent_only() -> None:
    assert who_sees("notification.created", offer("amy")) == {"amy"}
    assert who_sees("notification.created", offer("bob")) == {"bob"}


def test_agent_a_never_receives_agent_bs_offer_notification() -> None:
    assert not sees(AMY, audience("notification.created", offer("bob")))


def test_a_supervisor_gets_the_notifications_addressed_to_them_only() -> None:
    escalation = {"recipient_id": "sam", "kind": "escalation", "text": "x"}
    assert who_sees("notification.created", escalation) == {"sam"}
    other = {"recipient_id": "sue", "kind": "escalation", "text": "x"}
    assert who_sees("notification.created", other) == set()


def test_an_agent_linked_to_another_agent_id_is_addressed_by_that_agent_id() -> None:
    linked = Viewer(user_id="amy.w", subject="amy", supervisor=False, agent_id="amy")
    assert sees(linked, audience("notification.created", offer("amy")))
    assert not sees(linked, audience("notification.created", offer("amy.w")))


def test_supervisors_get_every_ticket_agent_and_sla_event() -> None:
    for event_type, payload in (
        ("ticket.opened", {"ticket_id": T}),
        ("ticket.replied", {"ticket_id": T, "agent_id": "amy"}),
        ("agent.status_changed", {"agent_id": "amy", "to_status": "away"}),
        ("sla.warning", {"ticket_id": T}),
        ("sla.breached", {"ticket_id": T}),
        ("sla.escalated", {"ticket_id": T}),
    ):
        assert sees(SUP, audience(event_type, payload)), event_type


def test_agents_get_no_sla_event() -> None:
    assert who_sees("sla.breached", {"ticket_id": T}) == {"sam"}


def test_an_agent_gets_the_ticket_events_naming_them_as_assignee_or_owner() -> None:
    assigned = {"ticket_id": T, "agent_id": "amy", "owner_agent_id": "bob", "queue_id": "q"}
    assert who_sees("ticket.assigned", assigned) == {"sam", "amy", "bob"}


def test_an_agent_gets_the_events_of_a_ticket_they_hold_that_do_not_name_them() -> None:
    held = facts_after(TicketFacts(), "ticket.assigned", {"ticket_id": T, "agent_id": "amy"})
    changed = {"ticket_id": T, "from_status": "assigned", "to_status": "pending_customer"}
    assert who_sees("ticket.status_changed", changed, held) == {"sam", "amy"}
    assert who_sees("ticket.status_changed", changed, None) == {"sam"}


def test_the_agents_of_a_transfer_both_get_it() -> None:
    transfer = {"ticket_id": T, "from_agent_id": "amy", "to_agent_id": "bob", "reason": "x"}
    assert who_sees("ticket.transferred", transfer) == {"sam", "amy", "bob"}


def test_an_agent_gets_the_tickets_routed_to_a_queue_they_serve() -> None:
    routed = {"ticket_id": T, "queue_id": "billing", "priority": "normal"}
    assert who_sees("ticket.routed", routed) == {"sam", "cat"}


def test_a_queues_agents_get_the_events_of_a_ticket_while_it_waits_there() -> None:
    waiting = facts_after(TicketFacts(), "ticket.routed", {"ticket_id": T, "queue_id": "billing"})
    reopened = {"ticket_id": T, "actor": "agent:x"}
    assert who_sees("ticket.reopened", reopened, waiting) == {"sam", "cat"}


def test_a_queues_agents_do_not_get_a_tickets_events_once_another_agent_holds_it() -> None:
    waiting = facts_after(TicketFacts(), "ticket.routed", {"ticket_id": T, "queue_id": "billing"})
    held = facts_after(waiting, "ticket.assigned", {"agent_id": "amy", "queue_id": "billing"})
    replied = {"ticket_id": T, "agent_id": "amy", "first_response": True}
    assert who_sees("ticket.replied", replied, held) == {"sam", "amy"}


def test_a_ticket_going_back_to_its_queue_reaches_the_queue_and_the_agent_who_had_it() -> None:
    held = TicketFacts(holder="amy", queue_id="billing", status="assigned")
    back = {"ticket_id": T, "from_status": "assigned", "to_status": "queued"}
    assert who_sees("ticket.status_changed", back, held) == {"sam", "amy", "cat"}
    assert facts_after(held, "ticket.status_changed", back).holder is None


def test_an_agent_gets_their_own_status_changes_only() -> None:
    assert who_sees("agent.status_changed", {"agent_id": "amy"}) == {"sam", "amy"}


def test_nobody_gets_events_outside_the_rules() -> None:
    for event_type in (
        "survey.answered",
        "message.outbound",
        "notification.email_requested",
        "customer.merged",
        "contact.received",
    ):
        assert audience(event_type, {"ticket_id": T, "agent_id": "amy"}).empty, event_type
        assert not may_concern_anyone(event_type)
    assert may_concern_anyone("ticket.opened")
    assert may_concern_anyone("notification.created")


def test_an_agent_serves_the_queues_whose_required_skills_they_all_have() -> None:
    queues = [
        Queue("general"),
        Queue("billing", frozenset({"billing"})),
        Queue("vip", frozenset({"billing", "vip"})),
    ]
    assert queues_served({"billing": 3}, queues) == {"general", "billing"}
    assert queues_served({}, queues) == {"general"}


def test_a_cursor_is_the_replica_epoch_and_a_sequence_number() -> None:
    assert parse_cursor("18c2f-41") == Cursor("18c2f", 41)
    assert str(Cursor("18c2f", 41)) == "18c2f-41"
    for made_up in (None, "", "41", "abc-", "abc-x1", "x" * 200):
        assert parse_cursor(made_up) is None


def test_a_reconnect_replays_what_it_missed_while_the_buffer_holds_it() -> None:
    assert replay_range(Cursor("e", 7), "e", first_seq=5, last_seq=9) == (8, 9)
    assert replay_range(Cursor("e", 4), "e", first_seq=5, last_seq=9) == (5, 9)
    assert replay_range(Cursor("e", 9), "e", first_seq=5, last_seq=9) == (10, 9)  # nothing


def test_a_gap_older_than_the_buffer_or_from_another_replica_reloads() -> None:
    assert replay_range(Cursor("e", 3), "e", first_seq=5, last_seq=9) is None
    assert replay_range(Cursor("other", 7), "e", first_seq=5, last_seq=9) is None
    assert replay_range(Cursor("e", 12), "e", first_seq=5, last_seq=9) is None


def test_an_offer_takes_the_ticket_out_of_its_queue_and_its_trace_reaches_the_agent_only() -> None:
    # The router publishes the status change (queued -> assigned) and then ticket.assigned.
    waiting = facts_after(TicketFacts(), "ticket.routed", {"ticket_id": T, "queue_id": "billing"})
    leaving = {"ticket_id": T, "from_status": "queued", "to_status": "assigned"}
    assert who_sees("ticket.status_changed", leaving, waiting) == {"sam", "cat"}
    offered = facts_after(waiting, "ticket.status_changed", leaving)
    assigned = {
        "ticket_id": T,
        "agent_id": "amy",
        "owner_agent_id": "amy",
        "queue_id": "billing",
        "candidates": [{"agent_id": "cat", "score": 0.4}],
    }
    assert who_sees("ticket.assigned", assigned, offered) == {"sam", "amy"}
