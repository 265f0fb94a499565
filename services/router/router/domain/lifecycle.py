"""The ticket lifecycle: which action may move a ticket from which status to which, as one
table; `transition` applies an action or raises `InvalidTransition` with a readable reason."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, get_args

from ccshared.events.payloads import TicketStatus

Action = Literal[
    "queue",
    "offer",
    "assign",
    "accept",
    "reply",
    "set_pending_customer",
    "customer_replied",
    "resolve",
    "reopen",
    "close",
    "transfer",
]

STATUSES: Final[tuple[TicketStatus, ...]] = get_args(TicketStatus)
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
OPEN_STATUSES: Final[frozenset[TicketStatus]] = frozenset(
    {"new", "queued", "assigned", "in_progress", "pending_customer"}
)

# Three entries depend on more than (status, action) and are settled in `transition`:
# reopen of a resolved ticket, and transfer to a named agent instead of a queue.
_REOPEN_TO_OWNER: Final[TicketStatus] = "in_progress"
_TRANSFER_TO_AGENT: Final[TicketStatus] = "assigned"

TRANSITIONS: Final[Mapping[tuple[TicketStatus, Action], TicketStatus]] = MappingProxyType(
    {
        ("new", "queue"): "queued",
        ("new", "offer"): "assigned",
        ("new", "assign"): "assigned",  # straight to an agent, e.g. a follow-up to its owner
        ("new", "customer_replied"): "new",
        ("new", "close"): "closed",  # spam, duplicate
        ("queued", "offer"): "assigned",
        ("queued", "assign"): "assigned",
        ("queued", "transfer"): "queued",  # to another queue
        ("queued", "customer_replied"): "queued",
        ("queued", "close"): "closed",
        ("assigned", "accept"): "in_progress",
        ("assigned", "reply"): "in_progress",  # answering is starting work
        ("assigned", "queue"): "queued",  # offer declined or timed out
        ("assigned", "transfer"): "queued",
        ("assigned", "customer_replied"): "assigned",
        ("assigned", "close"): "closed",
        ("in_progress", "reply"): "in_progress",
        ("in_progress", "set_pending_customer"): "pending_customer",
        ("in_progress", "customer_replied"): "in_progress",
        ("in_progress", "queue"): "queued",  # agent signed off; back to the queue
        ("in_progress", "transfer"): "queued",
        ("in_progress", "resolve"): "resolved",
        ("in_progress", "close"): "closed",
        ("pending_customer", "customer_replied"): "in_progress",
        ("pending_customer", "reply"): "pending_customer",  # a reminder keeps it waiting
        ("pending_customer", "transfer"): "queued",
        ("pending_customer", "resolve"): "resolved",  # e.g. no answer within the wait limit
        ("pending_customer", "close"): "closed",
        ("resolved", "reopen"): "queued",  # in_progress when the owner is available
        ("resolved", "close"): "closed",
        # A closed ticket's owner is not assumed to remember it: it is routed afresh.
        ("closed", "reopen"): "queued",
    }
)

_ACTION_PHRASES: Final[dict[Action, str]] = {
    "queue": "queue",
    "offer": "offer",
    "assign": "assign",
    "accept": "accept",
    "reply": "reply to",
    "set_pending_customer": "wait for the customer on",
    "customer_replied": "take a customer reply on",
    "resolve": "resolve",
    "reopen": "reopen",
    "close": "close",
    "transfer": "transfer",
}
_STATUS_PHRASES: Final[dict[TicketStatus, str]] = {
    "new": "new",
    "queued": "queued",
    "assigned": "assigned",
    "in_progress": "in progress",
    "pending_customer": "waiting for the customer",
    "resolved": "resolved",
    "closed": "closed",
}


class InvalidTransition(ValueError):
    """The action is not allowed in the ticket's current status."""

    def __init__(self, current: TicketStatus, action: Action) -> None:
        message = f"cannot {_ACTION_PHRASES[action]} a ticket that is {_STATUS_PHRASES[current]}"
        if current in ("resolved", "closed") and action != "close":
            message += "; reopen it first"
        super().__init__(message)
        self.current = current
        self.action = action


def transition(
    current: TicketStatus,
    action: Action,
    *,
    owner_available: bool = False,
    to_agent: bool = False,
) -> TicketStatus:
    """The status after `action`. `owner_available` matters for reopening a resolved ticket
    (back to its owner, in progress, instead of the queue); `to_agent` for a transfer to a
    named agent (assigned) instead of a queue. A result equal to `current` means the action
    is allowed but changes no status (no status-change event is due)."""
    new = TRANSITIONS.get((current, action))
    if new is None:
        raise InvalidTransition(current, action)
    if action == "reopen" and current == "resolved" and owner_available:
        return _REOPEN_TO_OWNER
    if action == "transfer" and to_agent:
        return _TRANSFER_TO_AGENT
    return new


def allowed_actions(current: TicketStatus) -> frozenset[Action]:
    """What may be done to a ticket in `current` status (for the UI's buttons)."""
    return frozenset(action for (status, action) in TRANSITIONS if status == current)
