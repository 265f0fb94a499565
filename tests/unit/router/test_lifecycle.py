from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccshared.events.payloads import TicketStatus
from router.domain.lifecycle import (
    ACTIONS,
    OPEN_STATUSES,
    STATUSES,
    TRANSITIONS,
    Action,
    InvalidTransition,
    allowed_actions,
    transition,
)

actions = st.sampled_from(ACTIONS)
options = st.fixed_dictionaries({"owner_available": st.booleans(), "to_agent": st.booleans()})


def _reachable_from_new() -> set[TicketStatus]:
    seen: set[TicketStatus] = {"new"}
    todo: deque[TicketStatus] = deque(["new"])
    while todo:
        status = todo.popleft()
        for action in allowed_actions(status):
            for owner_available in (False, True):
                for to_agent in (False, True):
                    nxt = transition(
                        status, action, owner_available=owner_available, to_agent=to_agent
                    )
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
    return seen


@st.composite
def reachable_status(draw: st.DrawFn) -> TicketStatus:
    """A status reached from "new" by a random sequence of allowed actions."""
    status: TicketStatus = "new"
    for _ in range(draw(st.integers(0, 20))):
        allowed = sorted(allowed_actions(status))
        status = transition(status, draw(st.sampled_from(allowed)), **draw(options))
    return status


def test_happy_path_runs_new_to_closed() -> None:
    status: TicketStatus = "new"
    path: list[Action] = ["queue", "offer", "accept", "reply", "set_pending_customer"]
    path += ["customer_replied", "resolve", "close"]
    seen = [status]
    for action in path:
        status = transition(status, action)
        seen.append(status)
    assert seen == [
        "new",
        "queued",
        "assigned",
        "in_progress",
        "in_progress",
        "pending_customer",
        "in_progress",
        "resolved",
        "closed",
    ]


def test_reopen_of_resolved_ticket_goes_to_available_owner() -> None:
    assert transition("resolved", "reopen", owner_available=True) == "in_progress"


def test_reopen_of_resolved_ticket_without_available_owner_is_queued() -> None:
    assert transition("resolved", "reopen", owner_available=False) == "queued"


def test_reopen_of_closed_ticket_is_routed_afresh_even_with_owner_available() -> None:
    assert transition("closed", "reopen", owner_available=True) == "queued"


def test_transfer_goes_to_a_queue_or_to_the_named_agent() -> None:
    assert transition("in_progress", "transfer") == "queued"
    assert transition("in_progress", "transfer", to_agent=True) == "assigned"
    assert transition("pending_customer", "transfer", to_agent=True) == "assigned"


def test_declined_offer_returns_ticket_to_queue() -> None:
    assert transition("assigned", "queue") == "queued"


def test_reply_to_assigned_ticket_starts_work() -> None:
    assert transition("assigned", "reply") == "in_progress"


@pytest.mark.parametrize(
    ("current", "action", "message"),
    [
        ("closed", "resolve", "cannot resolve a ticket that is closed; reopen it first"),
        ("new", "accept", "cannot accept a ticket that is new"),
        ("pending_customer", "accept", "cannot accept a ticket that is waiting for the customer"),
        ("queued", "reply", "cannot reply to a ticket that is queued"),
        ("in_progress", "reopen", "cannot reopen a ticket that is in progress"),
        ("closed", "close", "cannot close a ticket that is closed"),
        (
            "resolved",
            "customer_replied",
            "cannot take a customer reply on a ticket that is resolved; reopen it first",
        ),
    ],
)
def test_invalid_transition_says_what_and_why_in_words(
    current: TicketStatus, action: Action, message: str
) -> None:
    with pytest.raises(InvalidTransition) as raised:
        transition(current, action)
    assert str(raised.value) == message
    assert (raised.value.current, raised.value.action) == (current, action)


def test_every_status_is_reachable_from_new() -> None:
    assert _reachable_from_new() == set(STATUSES)


def test_transition_table_mentions_only_known_statuses_and_actions() -> None:
    for (status, action), target in TRANSITIONS.items():
        assert status in STATUSES
        assert action in ACTIONS
        assert target in STATUSES


@given(reachable_status(), st.lists(st.tuples(actions, options), max_size=40))
def test_random_action_sequences_never_leave_the_status_set(
    start: TicketStatus, steps: list[tuple[Action, dict[str, bool]]]
) -> None:
    status = start
    for action, opts in steps:
        try:
            status = transition(status, action, **opts)
        except InvalidTransition:
            assert action not in allowed_actions(status)
        else:
            assert status in STATUSES


@given(reachable_status(), actions, options)
def test_an_action_is_allowed_exactly_when_it_is_in_allowed_actions(
    status: TicketStatus, action: Action, opts: dict[str, bool]
) -> None:
    try:
        transition(status, action, **opts)
    except InvalidTransition:
        assert action not in allowed_actions(status)
    else:
        assert action in allowed_actions(status)


@given(actions, options)
def test_closed_is_terminal_except_for_reopen(action: Action, opts: dict[str, bool]) -> None:
    if action == "reopen":
        assert transition("closed", action, **opts) == "queued"
    else:
        with pytest.raises(InvalidTransition):
            transition("closed", action, **opts)


@given(reachable_status())
def test_every_reachable_status_can_still_be_closed(status: TicketStatus) -> None:
    # No dead ends: from any status, some path of at most two actions closes the ticket.
    firsts = [status] + [transition(status, a) for a in allowed_actions(status)]
    assert any("close" in allowed_actions(s) for s in firsts)


@given(reachable_status(), actions, options)
def test_only_resolve_and_close_leave_the_open_statuses(
    status: TicketStatus, action: Action, opts: dict[str, bool]
) -> None:
    if status not in OPEN_STATUSES or action not in allowed_actions(status):
        return
    after = transition(status, action, **opts)
    assert (after in OPEN_STATUSES) == (action not in ("resolve", "close"))


@given(st.sampled_from(["resolved", "closed"]), actions, options)
def test_a_finished_ticket_becomes_open_only_by_reopen(
    status: TicketStatus, action: Action, opts: dict[str, bool]
) -> None:
    try:
        after = transition(status, action, **opts)
    except InvalidTransition:
        return
    assert (after in OPEN_STATUSES) == (action == "reopen")
