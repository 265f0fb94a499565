"""Contacts taken a whole consumer batch at a time (`receive_contacts`) must land exactly as
if they had come one by one (`receive_contact`): the same threading, the same tickets, the same
history and the same events in the same order, including when contacts of one customer arrive
back to back inside one batch and when one reopens or follows up an earlier ticket."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text as sa_text

from ccshared.events import Envelope, decode_event, new_event
from ccshared.events.payloads import ContactReceived
from router.bootstrap import router_parts
from router.consumers.contacts import contacts_to_tickets_in_bulk
from router.handlers.contacts import receive_contacts
from tests.integration.router.conftest import Router, contact


def _script(world: str) -> tuple[list[ContactReceived], list[ContactReceived], dict[str, str]]:
    """(contacts before the batch, the batch, which earlier ticket to resolve or close) with
    customers and thread ids of this world only, so two worlds share one database."""
    maria, li, mallory, vip = (uuid.uuid5(uuid.NAMESPACE_URL, f"{world}/{n}") for n in range(4))
    t0 = datetime.now(UTC) - timedelta(minutes=30)

    def at(minutes: int) -> datetime:
        return t0 + timedelta(minutes=minutes)

    def mid(n: str) -> str:
        return f"<{n}.{world}@mail.example.com>"

    before = [
        contact(
            maria,
            channel="email",
            text_="Refund please",
            at=at(0),
            thread={"email_message_id": mid("r1")},
        ),
        contact(
            li,
            channel="email",
            text_="发票开错了",
            at=at(1),
            thread={"email_message_id": mid("c1")},
        ),
    ]
    batch = [
        # maria: a new e-mail thread, then a reply to it inside the same batch
        contact(
            maria,
            channel="email",
            text_="Where is my parcel?",
            at=at(2),
            thread={"email_message_id": mid("p1")},
        ),
        contact(
            maria,
            channel="email",
            text_="Any update?",
            at=at(3),
            thread={"email_message_id": mid("p2"), "email_in_reply_to": mid("p1")},
        ),
        # a chat burst of one session
        *[
            contact(li, text_=f"你好 {n}", at=at(4 + n), thread={"chat_session_id": f"s-{world}"})
            for n in range(3)
        ],
        # maria replies to her resolved ticket (reopen), li to her closed one (follow-up)
        contact(
            maria,
            channel="email",
            text_="Still no refund",
            at=at(8),
            thread={"email_message_id": mid("r2"), "email_in_reply_to": mid("r1")},
        ),
        contact(
            li,
            channel="email",
            text_="还是不对",
            at=at(9),
            thread={"email_message_id": mid("c2"), "email_in_reply_to": mid("c1")},
        ),
        # after the reopen, maria's next e-mail in that thread joins the reopened ticket
        contact(
            maria,
            channel="email",
            text_="Hello?",
            at=at(10),
            thread={"email_message_id": mid("r3"), "email_in_reply_to": mid("r2")},
        ),
        # a forged reference to maria's thread never joins her ticket
        contact(
            mallory,
            channel="email",
            text_="me too",
            at=at(11),
            thread={"email_message_id": mid("z1"), "email_in_reply_to": mid("p1")},
        ),
        # same customer, same channel, no reference, within the window: joins
        contact(mallory, channel="phone", text_="my order is late", at=at(12)),
        contact(mallory, channel="phone", text_="calling again", at=at(13)),
        contact(
            vip,
            channel="phone",
            text_="我要投诉，洗衣机漏水",
            at=at(14),
            metadata={"segment": "vip"},
        ),
    ]
    return before, batch, {"r1": "resolved", "c1": "closed"}


async def _ticket_of(router: Router, contact_id: uuid.UUID) -> str:
    rows = await router.sql(
        "SELECT ticket_id FROM ticket_contacts WHERE contact_id = :c", c=contact_id
    )
    return str(rows[0].ticket_id)


async def _shape(
    router: Router, before: list[ContactReceived], batch: list[ContactReceived]
) -> Any:
    """What happened, with ids replaced by the position of the contact that opened them."""
    contacts = [*before, *batch]
    tickets = [await _ticket_of(router, c.contact_id) for c in contacts]
    name = {t: f"T{tickets.index(t)}" for t in tickets}
    shape: list[Any] = []
    for t in dict.fromkeys(tickets):
        row = (
            await router.sql(
                "SELECT status, queue_id, category, priority, segment, follow_up_of::text AS f "
                "FROM tickets WHERE id = :t",
                t=uuid.UUID(t),
            )
        )[0]
        history = await router.sql(
            "SELECT action, from_status, to_status, actor LIKE 'customer:%' AS by_customer "
            "FROM ticket_history WHERE ticket_id = :t ORDER BY id",
            t=uuid.UUID(t),
        )
        events = await router.sql("SELECT value FROM outbox WHERE key = :t ORDER BY id", t=t)
        shape.append(
            (
                name[t],
                row.status,
                row.queue_id,
                row.category,
                row.priority,
                row.segment,
                name.get(row.f) if row.f else None,
                [tuple(h) for h in history],
                [decode_event(e.value)[0].event_type for e in events],
            )
        )
    return [name[t] for t in tickets], shape


async def _prepare(
    router: Router, world: str
) -> tuple[list[ContactReceived], list[ContactReceived]]:
    before, batch, fate = _script(world)
    for c in before:
        await router.receive(c)
    for ref, status in fate.items():
        ticket = await _ticket_of(router, before[0 if ref == "r1" else 1].contact_id)
        await router.sql(
            "UPDATE tickets SET status = :s, resolved_at = now() WHERE id = :t",
            s=status,
            t=uuid.UUID(ticket),
        )
    return before, batch


async def test_a_batch_lands_exactly_as_the_same_contacts_one_by_one(router: Router) -> None:
    await router.runtime.relay.stop()  # the events stay in the outbox, to be compared
    before, batch = await _prepare(router, "one-by-one")
    for c in batch:
        await router.receive(c)
    expected = await _shape(router, before, batch)

    before_b, batch_b = await _prepare(router, "in-bulk")
    handler = contacts_to_tickets_in_bulk(router.runtime)
    async with router.runtime.engine.begin() as conn:
        await handler(conn, [(_envelope(c), c) for c in batch_b])
    assert await _shape(router, before_b, batch_b) == expected

    grouping, shape = expected
    # The script exercises what it claims to: threads joined in the batch, a reopen, a
    # follow-up of a closed ticket, the window join, a forged reference kept apart, VIP care.
    assert grouping == [
        "T0",
        "T1",
        "T2",
        "T2",
        "T4",
        "T4",
        "T4",
        "T0",
        "T8",
        "T0",
        "T10",
        "T11",
        "T11",
        "T13",
    ]
    by_name = {s[0]: s for s in shape}
    assert "reopen" in [h[0] for h in by_name["T0"][7]]
    assert by_name["T8"][6] == "T1"  # the follow-up of li's closed ticket
    assert by_name["T13"][2] == "vip"


def _envelope(c: ContactReceived) -> Envelope:
    return new_event(c, producer="test")


async def test_a_batch_writes_one_statement_per_table_not_per_contact(router: Router) -> None:
    """New tickets of a batch are written together: the batch sends as many statements for 50
    new customers' contacts as for 5 (counted as SQLAlchemy sends them)."""
    counts = []
    for size in (5, 50):
        batch = [contact(uuid.uuid4(), channel="phone", text_="order late") for _ in range(size)]
        counts.append(await _statements(router, batch))
        opened = await router.sql(
            "SELECT count(*) AS n FROM ticket_contacts WHERE contact_id = ANY(:ids)",
            ids=[c.contact_id for c in batch],
        )
        assert opened[0].n == size
    assert counts[0] == counts[1]
    assert counts[1] <= 8


async def _statements_sent(router: Router, batch: list[ContactReceived]) -> list[str]:
    """The SQL the contacts' batch handler sends for `batch`, in order (as SQLAlchemy sends it)."""
    handler = contacts_to_tickets_in_bulk(router.runtime)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    async with router.runtime.engine.begin() as conn:
        sync = conn.sync_connection
        assert sync is not None
        sa_event.listen(sync, "before_cursor_execute", count)
        await handler(conn, [(_envelope(c), c) for c in batch])
        sa_event.remove(sync, "before_cursor_execute", count)
    return statements


async def _statements(router: Router, batch: list[ContactReceived]) -> int:
    return len(await _statements_sent(router, batch))


async def test_contacts_joining_tickets_the_batch_opened_cost_no_statements_of_their_own(
    router: Router,
) -> None:
    """A chat session's messages arriving back to back land in one fetch: the first opens the
    ticket, the others join it in memory. Only contacts joining a stored ticket go to the
    database one at a time."""
    start = datetime.now(UTC)
    lone = [contact(uuid.uuid4(), channel="chat", text_="hi") for _ in range(10)]
    sessions = []
    for _ in range(10):
        customer, session = uuid.uuid4(), {"chat_session_id": f"s-{uuid.uuid4()}"}
        sessions += [
            contact(customer, text_=f"message {m}", thread=session, at=start + timedelta(seconds=m))
            for m in range(3)
        ]
    assert await _statements(router, sessions) == await _statements(router, lone)
    rows = await router.sql(
        "SELECT c.ticket_id, count(*) AS n, max(c.received_at) AS last, "
        "  max(t.last_contact_at) AS ticket_last "
        "FROM ticket_contacts c JOIN tickets t ON t.id = c.ticket_id "
        "WHERE c.contact_id = ANY(:ids) GROUP BY c.ticket_id",
        ids=[c.contact_id for c in sessions],
    )
    assert sorted(r.n for r in rows) == [3] * 10  # each session one ticket of three contacts
    assert all(r.ticket_last == r.last for r in rows)

    # The next message of a session joins the stored ticket: that one costs statements.
    later = contact(
        sessions[0].customer_id,
        text_="still there?",
        thread={"chat_session_id": sessions[0].thread.chat_session_id},
        at=start + timedelta(minutes=1),
    )
    new = contact(uuid.uuid4(), channel="chat", text_="hi")
    assert await _statements(router, [later]) > await _statements(router, [new])
    joined = await router.sql(
        "SELECT ticket_id FROM ticket_contacts WHERE contact_id = ANY(:ids)",
        ids=[later.contact_id, sessions[0].contact_id],
    )
    assert len({r.ticket_id for r in joined}) == 1


async def test_a_ticket_resolved_while_the_batch_decided_is_reopened_not_joined(
    router: Router,
) -> None:
    """The batch looks at candidate tickets without locking them. A reply decided as "join"
    while an agent resolves that ticket must not land silently on the resolved ticket: the
    lock shows the new status and the contact is decided again, reopening it."""
    customer = uuid.uuid4()
    first = contact(
        customer, channel="email", text_="Refund please", thread={"email_message_id": "<q1@x>"}
    )
    ticket_id = await router.receive(first)
    await router.sql("UPDATE tickets SET status = 'in_progress' WHERE id = :t", t=ticket_id)
    reply = contact(
        customer,
        channel="email",
        text_="Any news?",
        thread={"email_message_id": "<q2@x>", "email_in_reply_to": "<q1@x>"},
    )
    handler = contacts_to_tickets_in_bulk(router.runtime)
    async with router.runtime.engine.connect() as agent:
        await agent.begin()
        await agent.execute(
            sa_text("SELECT 1 FROM tickets WHERE id = :t FOR UPDATE"), {"t": ticket_id}
        )

        async def batch() -> None:
            async with router.runtime.engine.begin() as conn:
                await handler(conn, [(_envelope(reply), reply)])

        running = asyncio.create_task(batch())
        await asyncio.sleep(0.5)  # the batch has decided "join" and waits for the lock
        assert not running.done()
        await agent.execute(
            sa_text("UPDATE tickets SET status = 'resolved' WHERE id = :t"), {"t": ticket_id}
        )
        await agent.commit()
    await asyncio.wait_for(running, 10)
    assert await _ticket_of(router, reply.contact_id) == str(ticket_id)
    status = await router.sql("SELECT status FROM tickets WHERE id = :t", t=ticket_id)
    assert status[0].status == "queued"
    actions = await router.sql(
        "SELECT action FROM ticket_history WHERE ticket_id = :t ORDER BY id", t=ticket_id
    )
    assert "reopen" in [a.action for a in actions]


async def test_a_batch_of_new_contacts_costs_three_statements(router: Router) -> None:
    """The customers' view, then one statement reading their candidate tickets, segments
    and earlier tickets (three before), then the write of the new tickets."""
    batch = [contact(uuid.uuid4(), channel="phone", text_="order late") for _ in range(20)]
    statements = await _statements_sent(router, batch)

    assert len(statements) == 3, statements
    assert "customer_segments" in statements[1]
    assert "thread_keys" in statements[1]
    opened = await router.sql(
        "SELECT count(DISTINCT ticket_id) AS n FROM ticket_contacts WHERE contact_id = ANY(:ids)",
        ids=[c.contact_id for c in batch],
    )
    assert opened[0].n == 20


async def test_a_batch_asks_the_model_for_the_contacts_opening_tickets_50_at_a_time(
    router: Router,
) -> None:
    """The trained model's verdicts for a batch come from `predict_many` over the texts of
    the contacts that open tickets, 50 at a time (a chat burst's later lines, joining the
    ticket its first opens in the batch, are guessed as openers too: a guess, at a verdict's
    cost), not from one `predict` per contact; a contact joining a stored ticket is not
    predicted."""
    parts = router_parts(router.runtime)
    policy, rules = await parts.policies.current(), await parts.rules.current()
    assert rules.model is not None
    calls: list[tuple[str, int]] = []
    real = rules.model

    class Spy:
        version = real.version

        def predict(self, text: str) -> Any:
            calls.append(("one", 1))
            return real.predict(text)

        def predict_many(self, texts: list[str]) -> Any:
            calls.append(("many", len(texts)))
            return real.predict_many(texts)  # type: ignore[attr-defined]

    spied = dataclasses.replace(rules, model=Spy())
    stored = contact(uuid.uuid4(), channel="chat", text_="hi", thread={"chat_session_id": "s-a"})
    await router.receive(stored)
    joining = contact(
        stored.customer_id, channel="chat", text_="still there?", thread={"chat_session_id": "s-a"}
    )
    fresh = [contact(uuid.uuid4(), channel="phone", text_=f"order {n} late") for n in range(60)]
    async with router.runtime.engine.begin() as conn:
        await receive_contacts(conn, [(None, c) for c in [joining, *fresh]], policy, spied)

    assert calls == [("many", 50), ("many", 10)]
    rows = await router.sql(
        "SELECT t.classification -> 'model' ->> 'version' AS v FROM tickets t "
        "JOIN ticket_contacts c ON c.ticket_id = t.id WHERE c.contact_id = ANY(:ids)",
        ids=[c.contact_id for c in fresh],
    )
    assert [r.v for r in rows] == [real.version] * 60
