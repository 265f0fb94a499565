"""The customer in view: one call shows who the customer is (name, e-mails, phones, handles,
segment, tickets, last contacts), a search finds them by phone in any format, e-mail or name
(Chinese and English), and a supervisor merges two customers (tickets and identities follow,
with an event). Agents read only customers of tickets they may read; others are a 404 with
nothing of them in the body."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text

from ccshared.events import new_event
from ccshared.events.payloads import ContactReceived, CustomerHints, FollowUpRequested, ThreadRefs
from router.consumers.contacts import contacts_to_tickets_in_bulk
from router.consumers.feedback import from_feedback
from tests.helpers import as_agent, as_supervisor
from tests.integration.router.conftest import Router, contact


def said(
    customer: uuid.UUID,
    *,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    handle: tuple[str, str] | None = None,
    text_: str = "你好，请问会员积分怎么兑换？",
    channel: str = "chat",
    at: datetime | None = None,
) -> ContactReceived:
    payload = contact(customer, channel=channel, text_=text_, at=at)
    thread = ThreadRefs(social_platform=handle[0]) if handle else payload.thread
    return payload.model_copy(
        update={
            "customer": CustomerHints(
                name=name, email=email, phone=phone, social_handle=handle[1] if handle else None
            ),
            "thread": thread,
        }
    )


async def customer_of(router: Router, customer: uuid.UUID, **headers: str) -> Any:
    return await router.client.get(f"/v1/customers/{customer}", headers=headers or None)


async def search(router: Router, q: str, who: dict[str, str] | None = None, **params: str) -> Any:
    return await router.client.get("/v1/customers", params={"q": q, **params}, headers=who)


def ids_of(response: Any) -> list[uuid.UUID]:
    assert response.status_code == 200, response.text
    return [uuid.UUID(item["id"]) for item in response.json()["items"]]


async def test_customer_view_shows_who_the_customer_is_and_their_tickets(router: Router) -> None:
    customer = uuid.uuid4()
    start = datetime.now(UTC) - timedelta(days=3)
    first = await router.receive(
        said(customer, name="张三", email="Zhang.San@Example.COM", phone="+8613800138000", at=start)
    )
    await router.receive(
        said(
            customer,
            name="张三丰",
            handle=("weibo", "zsf_1990"),
            channel="social",
            text_="订单还没到\n第二行",
            at=start + timedelta(days=1),
        )
    )
    await router.sql("UPDATE tickets SET status = 'closed' WHERE id = :t", t=first)
    third = await router.receive(said(customer, name=None, channel="email", at=start))
    await router.sql(
        "INSERT INTO customer_segments (customer_id, segment, source) VALUES (:c, 'vip', 'test')",
        c=customer,
    )

    response = await customer_of(router, customer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "张三丰"  # the latest name given; a contact without one keeps it
    assert body["emails"] == ["zhang.san@example.com"]
    assert body["phones"] == ["+8613800138000"]
    assert body["handles"] == [{"platform": "weibo", "handle": "zsf_1990"}]
    assert body["segment"] == "vip"
    assert body["contact_count"] == 3
    assert body["first_contact_at"].startswith(start.date().isoformat())
    assert len(body["tickets"]) == 3
    assert not body["more_tickets"]
    assert third in {uuid.UUID(t["id"]) for t in body["tickets"]}
    assert all(t["summary"]["channel"] for t in body["tickets"])
    contacts = body["last_contacts"]
    assert len(contacts) == 3
    assert contacts[0]["channel"] == "social"  # newest first
    assert contacts[0]["preview"] == "订单还没到"

    bounded = (
        await router.client.get(
            f"/v1/customers/{customer}", params={"tickets_limit": 1, "contacts_limit": 1}
        )
    ).json()
    assert len(bounded["tickets"]) == 1
    assert bounded["more_tickets"]
    assert len(bounded["last_contacts"]) == 1

    other = uuid.uuid4()
    await router.receive(said(other))
    plain = (await customer_of(router, other)).json()
    assert plain["segment"] is None
    assert plain["name"] is None
    assert plain["emails"] == []


async def test_unknown_customer_is_a_404(router: Router) -> None:
    response = await customer_of(router, uuid.uuid4())
    assert response.status_code == 404
    assert response.json()["type"].endswith("not-found")


async def test_search_finds_a_customer_by_phone_written_any_common_way(router: Router) -> None:
    customer, other = uuid.uuid4(), uuid.uuid4()
    await router.receive(said(customer, name="李四", phone="+8613800138000"))
    await router.receive(said(other, name="王五", phone="+8613900139000"))
    for typed in (
        "+86 138 0013 8000",
        "13800138000",
        "138-0013-8000",
        "(138) 0013 8000",
        "0086 138 0013 8000",
        "86 13800138000",
        "＋８６ １３８００１３８０００",
    ):
        assert ids_of(await search(router, typed)) == [customer], typed


async def test_search_by_email_is_exact_and_ignores_case(router: Router) -> None:
    customer = uuid.uuid4()
    await router.receive(said(customer, email="maria.lopez@example.com", name="Maria Lopez"))
    await router.receive(said(uuid.uuid4(), email="maria.lopez@example.org"))
    assert ids_of(await search(router, "Maria.Lopez@EXAMPLE.com")) == [customer]
    assert ids_of(await search(router, "maria.lopez@example")) == []


async def test_search_by_name_finds_chinese_and_english_substrings(router: Router) -> None:
    zhang, maria = uuid.uuid4(), uuid.uuid4()
    at = datetime.now(UTC)
    await router.receive(said(zhang, name="张三丰", at=at - timedelta(hours=1)))
    await router.receive(said(maria, name="Maria López", at=at))
    await router.receive(said(uuid.uuid4(), name="王小明"))
    assert ids_of(await search(router, "三丰")) == []  # two characters: a prefix
    assert ids_of(await search(router, "张三")) == [zhang]
    assert ids_of(await search(router, "张三丰")) == [zhang]
    assert ids_of(await search(router, "lópez")) == [maria]
    assert ids_of(await search(router, "ARIA L")) == [maria]
    assert ids_of(await search(router, "100%")) == []  # wildcards are text, not patterns
    await router.receive(said(uuid.uuid4(), name="张三丰 Jr", at=at - timedelta(hours=2)))
    first = await search(router, "张三丰", limit="1")
    assert ids_of(first) == [zhang]
    cursor = first.json()["next_cursor"]
    second = await search(router, "张三丰", limit="1", cursor=cursor)
    assert len(ids_of(second)) == 1
    assert ids_of(second) != [zhang]
    assert second.json()["next_cursor"] is None


async def test_name_search_uses_the_trigram_index(router: Router) -> None:
    await router.sql(
        "INSERT INTO customers (id, display_name, first_contact_at, last_contact_at) "
        "SELECT gen_random_uuid(), '客户' || n || ' Customer ' || n, now(), now() "
        "FROM generate_series(1, 5000) AS n"
    )
    await router.sql("ANALYZE customers")
    for pattern in ("%三丰a%", "%stomer 42%"):
        async with router.runtime.engine.begin() as conn:
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = await conn.execute(
                text(
                    "EXPLAIN SELECT id FROM customers "
                    "WHERE merged_into IS NULL AND lower(display_name) LIKE :p"
                ),
                {"p": pattern},
            )
            assert "customers_name_trgm" in " ".join(row[0] for row in plan), pattern


async def test_bad_search_and_merge_input_is_a_422_naming_the_field(router: Router) -> None:
    customer = uuid.uuid4()
    await router.receive(said(customer))
    for params, field in (
        ({"q": ""}, "query.q"),
        ({"q": "   "}, "query.q"),
        ({"q": "x" * 201}, "query.q"),
        ({"q": "+999 1234 5678"}, "query.q"),
        ({"q": "张三", "limit": "0"}, "query.limit"),
        ({"q": "张三", "cursor": "nope"}, "query.cursor"),
    ):
        response = await router.client.get("/v1/customers", params=params)
        assert response.status_code == 422, (params, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], params
    for body, field in (({}, "body.into"), ({"into": "not-a-uuid"}, "body.into")):
        response = await router.client.post(f"/v1/customers/{customer}/merge", json=body)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]


# --- who may read -------------------------------------------------------------------------


async def test_an_agent_reads_only_customers_of_tickets_they_may_read(router: Router) -> None:
    await router.agent("amy", skills={"technical": 3}, status="offline")
    mine, stranger = uuid.uuid4(), uuid.uuid4()
    readable = await router.receive(said(mine, name="Ada Mine", email="ada@mine.example"))
    await router.sql("UPDATE tickets SET queue_id = 'technical' WHERE id = :t", t=readable)
    hidden = await router.receive(said(mine, channel="email", text_="secret-billing-matter"))
    await router.sql("UPDATE tickets SET queue_id = 'billing' WHERE id = :t", t=hidden)
    strangers = await router.receive(
        said(stranger, name="Sam Stranger", email="sam@stranger.example")
    )
    await router.sql("UPDATE tickets SET queue_id = 'complaints' WHERE id = :t", t=strangers)

    view = await customer_of(router, mine, **as_agent("amy"))
    assert view.status_code == 200, view.text
    assert [t["id"] for t in view.json()["tickets"]] == [str(readable)]
    assert "secret-billing-matter" not in view.text
    assert str(hidden) not in view.text

    unknown = await customer_of(router, uuid.uuid4(), **as_agent("amy"))
    refused = await customer_of(router, stranger, **as_agent("amy"))
    assert refused.status_code == 404
    assert refused.json()["type"] == unknown.json()["type"]
    assert "Stranger" not in refused.text
    assert "stranger.example" not in refused.text

    assert ids_of(await search(router, "sam@stranger.example", as_agent("amy"))) == []
    assert ids_of(await search(router, "Sam Str", as_agent("amy"))) == []
    assert ids_of(await search(router, "Sam Str", as_supervisor())) == [stranger]
    assert ids_of(await search(router, "ada@mine.example", as_agent("amy"))) == [mine]


# --- merging ------------------------------------------------------------------------------


async def _merge(router: Router, source: uuid.UUID, into: uuid.UUID, who: Any = None) -> Any:
    return await router.client.post(
        f"/v1/customers/{source}/merge", json={"into": str(into)}, headers=who
    )


async def test_merge_moves_tickets_and_identities_and_publishes_the_event(router: Router) -> None:
    source, target = uuid.uuid4(), uuid.uuid4()
    start = datetime.now(UTC) - timedelta(days=2)
    old = await router.receive(
        said(source, name="Zhang San", email="zs@example.com", phone="+8613800138000", at=start)
    )
    kept = await router.receive(said(target, name="张三", email="zhang@example.com"))
    await router.runtime.relay.stop()  # the event stays in the outbox, to be read

    response = await _merge(router, source, target)
    assert response.status_code == 200, response.text
    assert response.json()["ticket_ids"] == [str(old)]

    view = (await customer_of(router, target)).json()
    assert {t["id"] for t in view["tickets"]} == {str(old), str(kept)}
    assert set(view["emails"]) == {"zhang@example.com", "zs@example.com"}
    assert view["phones"] == ["+8613800138000"]
    assert view["name"] == "张三"  # the latest name given
    assert view["contact_count"] == 2
    assert view["first_contact_at"].startswith(start.date().isoformat())
    assert ids_of(await search(router, "13800138000")) == [target]
    assert ids_of(await search(router, "Zhang San")) == []

    gone = await customer_of(router, source)
    assert gone.status_code == 308
    assert gone.headers["location"] == f"/v1/customers/{target}"
    assert gone.json()["merged_into"] == str(target)

    history = await router.sql(
        "SELECT actor, action FROM ticket_history WHERE ticket_id = :t AND action = "
        "'customer_merged'",
        t=old,
    )
    assert history == [("supervisor:sup", "customer_merged")]
    events = await router.sql("SELECT key, value FROM outbox WHERE event_type = 'customer.merged'")
    assert len(events) == 1
    key, value = events[0]
    assert key == str(target)
    envelope = orjson.loads(value)
    assert envelope["event_type"] == "customer.merged"
    assert envelope["payload"]["merged_customer_id"] == str(source)
    assert envelope["payload"]["ticket_ids"] == [str(old)]
    assert envelope["payload"]["tickets_moved"] == 1


async def test_a_contact_still_sent_under_the_merged_customer_lands_on_the_target(
    router: Router,
) -> None:
    source, target = uuid.uuid4(), uuid.uuid4()
    await router.receive(said(source, channel="email"))
    open_one = await router.receive(said(target, channel="chat"))
    assert (await _merge(router, source, target)).status_code == 200
    # intake has not applied the merge yet: its contact still names the merged customer
    late = await router.receive(said(source, name="Late Name", channel="chat"))
    assert late == open_one  # threaded onto the target's open chat ticket
    rows = await router.sql("SELECT customer_id FROM tickets WHERE id = :t", t=late)
    assert rows[0][0] == target
    assert (await customer_of(router, target)).json()["name"] == "Late Name"


async def test_merge_refusals_change_nothing(router: Router) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for customer in (a, b, c):
        await router.receive(said(customer, name=f"n-{customer}"))
    before = await router.sql("SELECT id, customer_id FROM tickets ORDER BY id")

    refused = await _merge(router, a, b, as_agent("amy"))
    assert refused.status_code == 403
    itself = await _merge(router, a, a)
    assert itself.status_code == 422
    assert [e["field"] for e in itself.json()["errors"]] == ["body.into"]
    unknown_source = await _merge(router, uuid.uuid4(), a)
    assert unknown_source.status_code == 404
    unknown_target = await _merge(router, a, uuid.uuid4())
    assert unknown_target.status_code == 422
    assert [e["field"] for e in unknown_target.json()["errors"]] == ["body.into"]
    assert await router.sql("SELECT id, customer_id FROM tickets ORDER BY id") == before

    assert (await _merge(router, b, c)).status_code == 200
    into_merged = await _merge(router, a, b)
    assert into_merged.status_code == 409
    assert str(c) in into_merged.json()["detail"]  # names where b went
    again = await _merge(router, b, a)
    assert again.status_code == 409, again.text
    merged = await router.sql("SELECT id FROM customers WHERE merged_into IS NOT NULL")
    assert merged == [(b,)]


async def test_merges_of_earlier_merged_customers_follow_to_the_last_target(
    router: Router,
) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for customer in (a, b, c):
        await router.receive(said(customer))
    assert (await _merge(router, a, b)).status_code == 200
    assert (await _merge(router, b, c)).status_code == 200
    gone = await customer_of(router, a)
    assert gone.status_code == 308
    assert gone.headers["location"] == f"/v1/customers/{c}"
    owners = await router.sql("SELECT DISTINCT customer_id FROM tickets")
    assert owners == [(c,)]


async def test_concurrent_merges_neither_deadlock_nor_lose_tickets(router: Router) -> None:
    customers = [uuid.uuid4() for _ in range(4)]
    for customer in customers:
        for channel in ("chat", "email"):
            await router.receive(said(customer, channel=channel))
    a, b, c, d = customers
    # Crossed pairs (a→b and b→a), and a chain racing it (c→a, d→c).
    results = await asyncio.gather(
        _merge(router, a, b), _merge(router, b, a), _merge(router, c, a), _merge(router, d, c)
    )
    assert all(r.status_code in (200, 409) for r in results), [r.text for r in results]
    assert [r.status_code for r in results[:2]].count(200) == 1
    tickets = await router.sql("SELECT customer_id, count(*) FROM tickets GROUP BY customer_id")
    live = await router.sql("SELECT id FROM customers WHERE merged_into IS NULL")
    assert sum(n for _, n in tickets) == 8
    assert {owner for owner, _ in tickets} <= {row[0] for row in live}
    dangling = await router.sql(
        "SELECT count(*) FROM customers s JOIN customers t ON t.id = s.merged_into "
        "WHERE t.merged_into IS NOT NULL"
    )
    assert dangling == [(0,)]


async def _follow_up(router: Router, customer: uuid.UUID) -> uuid.UUID:
    requested = FollowUpRequested(
        follow_up_id=uuid.uuid4(),
        customer_id=customer,
        reason="key_account_callback",
        channel="phone",
        due_at=datetime.now(UTC),
    )
    async with router.runtime.engine.begin() as conn:
        handler = from_feedback(router.runtime)
        await handler(conn, new_event(requested, producer="test"), requested)
    return requested.follow_up_id


async def test_a_follow_up_for_a_customer_who_never_wrote_makes_them_readable(
    router: Router,
) -> None:
    quiet = uuid.uuid4()  # a key account called back before ever writing
    ticket = await _follow_up(router, quiet)
    view = await customer_of(router, quiet)
    assert view.status_code == 200, view.text
    assert [t["id"] for t in view.json()["tickets"]] == [str(ticket)]
    assert view.json()["contact_count"] == 0


async def test_a_follow_up_for_a_merged_customer_opens_on_the_target(router: Router) -> None:
    source, target = uuid.uuid4(), uuid.uuid4()
    await router.receive(said(source, name="Old"))
    await router.receive(said(target, name="New"))
    assert (await _merge(router, source, target)).status_code == 200
    ticket = await _follow_up(router, source)
    rows = await router.sql("SELECT customer_id FROM tickets WHERE id = :t", t=ticket)
    assert rows == [(target,)]


async def test_ticket_summaries_keep_the_name_their_contact_gave_after_a_merge(
    router: Router,
) -> None:
    source, target = uuid.uuid4(), uuid.uuid4()
    old = await router.receive(said(source, name="Zhang San"))
    await router.receive(said(target, name="张三"))
    assert (await _merge(router, source, target)).status_code == 200
    listed = await router.client.get("/v1/tickets", params={"customer_id": str(target)})
    names = {t["id"]: t["summary"]["customer_name"] for t in listed.json()["items"]}
    assert names[str(old)] == "Zhang San"
    assert len(names) == 2


async def test_contact_batches_racing_merges_neither_deadlock_nor_strand_a_ticket(
    router: Router,
) -> None:
    pairs = [(uuid.uuid4(), uuid.uuid4()) for _ in range(5)]
    for source, target in pairs:
        await router.receive(said(source, channel="email"))
        await router.receive(said(target, channel="chat"))
    handler = contacts_to_tickets_in_bulk(router.runtime)

    async def batch(channel: str) -> None:
        contacts = [said(c, channel=channel) for pair in pairs for c in pair]
        async with router.runtime.engine.begin() as conn:
            await handler(conn, [(new_event(c, producer="test"), c) for c in contacts])

    results = await asyncio.gather(
        batch("email"), *(_merge(router, s, t) for s, t in pairs), batch("chat"), batch("social")
    )
    assert all(r.status_code == 200 for r in results if r is not None)
    stranded = await router.sql(
        "SELECT count(*) FROM tickets t JOIN customers c ON c.id = t.customer_id "
        "WHERE c.merged_into IS NOT NULL"
    )
    assert stranded == [(0,)]
    counted = await router.sql(
        "SELECT sum(contact_count) FROM customers WHERE merged_into IS NULL AND id = ANY(:ids)",
        ids=[t for _, t in pairs],
    )
    assert counted == [(2 * 5 + 3 * 10,)]  # every contact counted once, on the target
