"""Ticket handlers (`router.handlers.tickets`) against an in-memory unit of work: who may do
what, which change is written, and that nothing is written when the action is refused."""

from __future__ import annotations

import uuid
from datetime import datetime
from types import TracebackType
from typing import Any

import pytest

from ccshared.auth import Principal
from ccshared.events.payloads import TicketTransferred
from ccshared.problems import Conflict, NotFound, Problem
from ccshared.user_auth import Forbidden
from router.db.tickets import TicketNotFound
from router.domain.conversation import ConversationRules, Message
from router.domain.notifications import Notification
from router.domain.tickets import ContactHistory, Ticket, TicketChange
from router.handlers import conversation
from router.handlers import tickets as handlers
from tests.unit.router.test_ticket_changes import ticket


class FakeTicketsUnitOfWork:
    """Tickets, agents and queues in dicts; changes are kept when the block commits."""

    def __init__(self, *stored: Ticket, agents: dict[str, str] | None = None) -> None:
        self.tickets = {t.id: t for t in stored}
        self.agents = agents or {}  # id → status
        self.queues = {"frontline", "billing"}
        self.wrap_ups: list[str | None] = []  # the agents whose wrap-up a resolve started
        self.readers: dict[uuid.UUID, set[str]] = {}  # ticket → agents serving its queue
        self.histories: dict[uuid.UUID, ContactHistory] = {}
        self.committed: list[TicketChange] = []
        self._pending: list[TicketChange] = []

    async def __aenter__(self) -> FakeTicketsUnitOfWork:
        self._pending = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.committed.extend(self._pending)
        self._pending = []

    async def ticket(self, ticket_id: uuid.UUID, *, lock: bool = False) -> Ticket:
        if ticket_id not in self.tickets:
            raise TicketNotFound(f"No ticket {ticket_id}.")
        return self.tickets[ticket_id]

    async def agent_may_read(self, ticket: Ticket, agent_id: str) -> bool:
        return agent_id in (ticket.assignee_agent_id, ticket.owner_agent_id) or (
            ticket.status == "queued" and agent_id in self.readers.get(ticket.id, set())
        )

    async def agent_available(self, agent_id: str | None) -> bool:
        return agent_id is not None and self.agents.get(agent_id) == "available"

    async def queue_exists(self, queue_id: str) -> bool:
        return queue_id in self.queues

    async def lock_agent(self, agent_id: str) -> bool:
        return agent_id in self.agents

    async def write(self, change: TicketChange) -> None:
        self._pending.append(change)

    async def traceparent(self, ticket_id: uuid.UUID) -> str | None:
        return None  # a ticket opened while tracing was off

    async def contact_history(self, ticket_id: uuid.UUID) -> ContactHistory:
        return self.histories.get(ticket_id, ContactHistory(1, transferred_or_reopened=False))

    async def start_wrap_up(self, ticket: Ticket, at: datetime) -> None:
        self.wrap_ups.append(ticket.assignee_agent_id)

    # The conversation: messages and notifications kept, like changes, when the block commits.
    last_contact_row: Any = None
    canned: frozenset[uuid.UUID] = frozenset()

    async def last_contact(self, ticket_id: uuid.UUID) -> Any:
        return self.last_contact_row

    async def canned_exists(self, canned_id: uuid.UUID) -> bool:
        return canned_id in self.canned

    async def add_message(self, message: Message) -> None:
        self._pending.append(message)  # type: ignore[arg-type]

    async def unknown_agents(self, agent_ids: list[str]) -> list[str]:
        return [a for a in agent_ids if a not in self.agents]

    async def notify(self, notifications: list[Notification]) -> None:
        self._pending.extend(notifications)  # type: ignore[arg-type]


SUPERVISOR = Principal(subject="lin", role="supervisor")


def agent(name: str) -> Principal:
    return Principal(subject=name, role="agent")


async def test_a_reply_is_written_as_one_change_and_returns_the_ticket_after_it() -> None:
    offered = ticket("assigned", assignee_agent_id="amy")
    uow = FakeTicketsUnitOfWork(offered)
    after = await handlers.reply(uow, offered.id, agent("amy"), "amy", None)
    assert after.status == "in_progress"
    assert after.owner_agent_id == "amy"
    [change] = uow.committed
    assert change.ticket_id == offered.id
    assert change.offers is not None


async def test_an_agent_cannot_touch_a_ticket_they_may_not_read_and_learns_nothing() -> None:
    others = ticket("in_progress", assignee_agent_id="bob")
    uow = FakeTicketsUnitOfWork(others)
    with pytest.raises(TicketNotFound):
        await handlers.close(uow, others.id, agent("amy"), "spam")
    assert uow.committed == []


async def test_an_agent_may_read_but_not_change_a_ticket_waiting_in_their_queue() -> None:
    waiting = ticket("queued")
    uow = FakeTicketsUnitOfWork(waiting)
    uow.readers[waiting.id] = {"amy"}
    with pytest.raises(Forbidden):
        await handlers.close(uow, waiting.id, agent("amy"), "spam")
    assert uow.committed == []


async def test_an_invalid_action_is_a_conflict_and_writes_nothing() -> None:
    waiting = ticket("queued")
    uow = FakeTicketsUnitOfWork(waiting)
    with pytest.raises(Conflict) as refused:
        await handlers.resolve(uow, waiting.id, SUPERVISOR, "answered", True)
    assert refused.value.extra == {"ticket_status": "queued", "action": "resolve"}
    assert uow.committed == []
    assert waiting.status == "queued"


async def test_reopening_gives_the_ticket_to_its_owner_when_available_and_nudges() -> None:
    resolved = ticket("resolved", owner_agent_id="amy", assignee_agent_id="amy")
    uow = FakeTicketsUnitOfWork(resolved, agents={"amy": "available"})
    nudged: list[bool] = []
    after = await handlers.reopen(uow, resolved.id, SUPERVISOR, None, lambda: nudged.append(True))
    assert (after.status, after.assignee_agent_id) == ("in_progress", "amy")
    assert nudged == [True]


async def test_a_transfer_to_an_unknown_queue_or_agent_is_a_404_and_writes_nothing() -> None:
    held = ticket("in_progress", assignee_agent_id="amy")
    uow = FakeTicketsUnitOfWork(held, agents={"amy": "available"})
    with pytest.raises(NotFound, match="No queue nowhere"):
        await handlers.transfer(
            uow, held.id, SUPERVISOR, "x", to_queue_id="nowhere", to_agent_id=None
        )
    with pytest.raises(NotFound, match="No agent zed"):
        await handlers.transfer(uow, held.id, SUPERVISOR, "x", to_queue_id=None, to_agent_id="zed")
    assert uow.committed == []


async def test_a_transfer_publishes_its_event_with_the_status_change() -> None:
    held = ticket("in_progress", assignee_agent_id="amy", owner_agent_id="amy")
    uow = FakeTicketsUnitOfWork(held)
    after = await handlers.transfer(
        uow, held.id, agent("amy"), "billing question", to_queue_id="billing", to_agent_id=None
    )
    assert (after.status, after.queue_id, after.owner_agent_id) == ("queued", "billing", "amy")
    [change] = uow.committed
    transferred: Any = change.events[-1]
    assert isinstance(transferred, TicketTransferred)
    assert transferred.from_agent_id == "amy"


async def test_an_agent_replies_in_the_name_of_their_token_when_no_agent_id_is_given() -> None:
    held = ticket("in_progress", assignee_agent_id="amy", owner_agent_id="amy")
    uow = FakeTicketsUnitOfWork(held)
    await handlers.reply(uow, held.id, agent("amy"), None, None)
    [change] = uow.committed
    assert change.history[0].actor == "agent:amy"
    assert change.events[-1].agent_id == "amy"  # type: ignore[attr-defined]


async def test_an_agent_naming_another_agent_in_a_reply_is_refused_and_nothing_is_written() -> None:
    held = ticket("in_progress", assignee_agent_id="amy", owner_agent_id="amy")
    uow = FakeTicketsUnitOfWork(held)
    with pytest.raises(Forbidden):
        await handlers.reply(uow, held.id, agent("amy"), "bob", None)
    assert uow.committed == []


async def test_a_supervisor_reply_must_name_the_agent_and_one_that_does_is_written() -> None:
    held = ticket("in_progress", assignee_agent_id="amy", owner_agent_id="amy")
    uow = FakeTicketsUnitOfWork(held)
    with pytest.raises(Problem) as refused:
        await handlers.reply(uow, held.id, SUPERVISOR, None, None)
    assert refused.value.status == 422
    assert uow.committed == []
    await handlers.reply(uow, held.id, SUPERVISOR, "amy", None)
    assert uow.committed[0].history[0].actor == "agent:amy"


@pytest.mark.parametrize(
    ("contacts", "moved", "follow_up", "expected"),
    [
        (1, False, False, True),
        (2, False, False, False),  # the customer wrote again
        (1, True, False, False),  # transferred or reopened
        (1, False, True, False),  # a follow-up of an earlier ticket
    ],
)
async def test_resolve_without_the_flag_decides_first_contact_resolution_from_the_ticket(
    contacts: int, moved: bool, follow_up: bool, expected: bool
) -> None:
    held = ticket(
        "in_progress",
        assignee_agent_id="amy",
        owner_agent_id="amy",
        follow_up_of=uuid.uuid4() if follow_up else None,
    )
    uow = FakeTicketsUnitOfWork(held)
    uow.histories[held.id] = ContactHistory(contacts, transferred_or_reopened=moved)
    after = await handlers.resolve(uow, held.id, agent("amy"), "answered", None)
    assert after.first_contact_resolution is expected
    assert uow.committed[0].events[-1].first_contact_resolution is expected  # type: ignore[attr-defined]


async def test_resolve_keeps_the_first_contact_resolution_flag_the_agent_gives() -> None:
    held = ticket("in_progress", assignee_agent_id="amy", owner_agent_id="amy")
    uow = FakeTicketsUnitOfWork(held)
    uow.histories[held.id] = ContactHistory(1, transferred_or_reopened=False)
    after = await handlers.resolve(uow, held.id, agent("amy"), "answered", False)
    assert after.first_contact_resolution is False


async def test_a_reply_with_text_stores_its_message_and_publishes_it_after_ticket_replied() -> None:
    held = ticket("in_progress", assignee_agent_id="amy")
    uow = FakeTicketsUnitOfWork(held)
    await handlers.reply(uow, held.id, agent("amy"), None, None, "您好 hello")
    message, change = uow.committed
    assert isinstance(message, Message)
    assert isinstance(change, TicketChange)
    assert (message.text, message.kind, message.delivery_state) == ("您好 hello", "reply", "queued")
    replied, outbound = change.events[-2:]
    assert replied.message_id == outbound.message_id == message.id  # type: ignore[attr-defined]
    assert outbound.text == "您好 hello"  # type: ignore[attr-defined]


async def test_a_refused_reply_stores_no_message() -> None:
    held = ticket("in_progress", assignee_agent_id="amy")
    uow = FakeTicketsUnitOfWork(held)
    rules = ConversationRules(max_bytes=5)
    for text, status in (("  ", 422), ("太长了", 413)):
        with pytest.raises(Problem) as refused:
            await handlers.reply(uow, held.id, agent("amy"), None, None, text, rules=rules)
        assert refused.value.status == status
    with pytest.raises(Problem) as unknown:
        await handlers.reply(uow, held.id, agent("amy"), None, None, "ok", uuid.uuid4())
    assert unknown.value.status == 422
    with pytest.raises(TicketNotFound):  # not his, nor may he read it
        await handlers.reply(uow, held.id, agent("bob"), "bob", None, "mine")
    assert uow.committed == []


async def test_a_note_notifies_the_agents_it_mentions_but_not_its_author() -> None:
    held = ticket("in_progress", assignee_agent_id="amy")
    uow = FakeTicketsUnitOfWork(held, agents={"amy": "busy", "bob": "offline"})
    note = await conversation.add_note(
        uow, held.id, agent("amy"), "@bob @amy 看看", ConversationRules()
    )
    assert note.mentions == ("bob", "amy")
    message, told = uow.committed
    assert message is note
    assert isinstance(told, Notification)
    assert (told.recipient, told.kind) == ("bob", "mention")
    with pytest.raises(Problem) as unknown:
        await conversation.add_note(uow, held.id, agent("amy"), "@nobody", ConversationRules())
    assert unknown.value.status == 422
    assert len(uow.committed) == 2
