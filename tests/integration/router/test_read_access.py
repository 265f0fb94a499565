"""Nobody reads what is not theirs, on every GET route of the router.

A supervisor reads every ticket. An agent reads a ticket assigned to them or owned by them, or
one waiting (queued) in a queue they serve (their skills cover the queue's); any other ticket is
a 404 with nothing of it in the body, and lists hold only what the agent may read, filtered in
the query (a page is never short because of tickets the agent may not see). Queues, agents, the
routing policy and the classification rules carry no customer data and stay readable by every
user. Every GET route must have a case here: a new route fails the walk until it has one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from ccshared.events.payloads import CustomerHints
from tests.helpers import as_agent, as_supervisor
from tests.integration.router.conftest import Router, contact, eventually


@dataclass
class Ticket:
    id: uuid.UUID
    customer: uuid.UUID
    marker: str  # only in this ticket's customer text


@dataclass
class World:
    """amy serves technical and holds one ticket; bob serves billing; both are offline."""

    router: Router
    amys: Ticket  # accepted by amy: assigned to and owned by her
    technical: Ticket  # waiting in technical (amy's queue)
    billing: Ticket  # waiting in billing (bob's queue)
    newest: Ticket  # waiting in complaints (nobody's queue), opened last

    @property
    def tickets(self) -> list[Ticket]:
        return [self.amys, self.technical, self.billing, self.newest]


async def _ticket(router: Router, queue: str | None = None) -> Ticket:
    customer, marker = uuid.uuid4(), f"secret-{uuid.uuid4().hex}"
    named = contact(customer, channel="email", text_=f"订单 {marker}")
    named = named.model_copy(update={"customer": CustomerHints(name=f"Reader {marker}")})
    ticket_id = await router.receive(named)
    if queue is not None:
        await router.sql("UPDATE tickets SET queue_id = :q WHERE id = :t", q=queue, t=ticket_id)
    return Ticket(ticket_id, customer, marker)


@pytest.fixture
async def world(router: Router) -> World:
    await router.agent("amy", skills={"technical": 3}, status="offline")
    await router.agent("bob", skills={"billing": 3}, status="offline")
    amys = await _ticket(router, "technical")
    await router.client.put("/v1/agents/amy/status", json={"status": "available"})

    async def amys_offer() -> list:
        await router.assigner.tick()
        return await router.offers("amy")

    offer = (await eventually(amys_offer))[0]
    accepted = await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("amy"))
    assert accepted.status_code == 200, accepted.text
    await router.client.put("/v1/agents/amy/status", json={"status": "offline"})
    world = World(
        router,
        amys=amys,
        technical=await _ticket(router, "technical"),
        billing=await _ticket(router, "billing"),
        newest=await _ticket(router, "complaints"),
    )
    queued = await router.sql(
        "SELECT count(*) FROM tickets WHERE status = 'queued' AND id = ANY(:ids)",
        ids=[t.id for t in world.tickets[1:]],
    )
    assert queued[0][0] == 3
    return world


def _leaks(response: httpx.Response, *tickets: Ticket) -> list[str]:
    """What of these tickets' customer data the body shows."""
    body = response.text
    return [
        f"{t.marker}/{t.customer}" for t in tickets if t.marker in body or str(t.customer) in body
    ]


async def _get(world: World, path: str, who: dict[str, str], **params: str) -> httpx.Response:
    return await world.router.client.get(path, headers=who, params=params)


def _ids(response: httpx.Response) -> set[uuid.UUID]:
    assert response.status_code == 200, response.text
    return {uuid.UUID(t["id"]) for t in response.json()["items"]}


# --- one case per GET route ---------------------------------------------------------------


async def _queues(world: World) -> None:
    # Depth, waits and free agents per queue: no ticket's data, readable by every user.
    response = await _get(world, "/v1/queues", as_agent("bob"))
    assert response.status_code == 200
    assert not _leaks(response, *world.tickets)


async def _agents(world: World) -> None:
    for path in ("/v1/agents", "/v1/agents/amy"):
        response = await _get(world, path, as_agent("bob"))
        assert response.status_code == 200, path
        assert not _leaks(response, *world.tickets)


async def _offers(world: World) -> None:
    refused = await _get(world, "/v1/agents/amy/offers", as_agent("bob"))
    assert refused.status_code == 403
    assert (await _get(world, "/v1/agents/amy/offers", as_agent("amy"))).status_code == 200
    assert (await _get(world, "/v1/agents/amy/offers", as_supervisor())).status_code == 200


async def _status_history(world: World) -> None:
    # Statuses with reasons: the agent themself and supervisors; another agent a 403, no data.
    path = "/v1/agents/amy/status-history"
    refused = await _get(world, path, as_agent("bob"))
    assert refused.status_code == 403
    assert "available" not in refused.text
    for who in (as_agent("amy"), as_supervisor()):
        response = await _get(world, path, who)
        assert response.status_code == 200
        assert [h["status"] for h in response.json()][-2:] == ["available", "offline"]
        assert not _leaks(response, *world.tickets)


async def _ticket_list(world: World) -> None:
    everything = {t.id for t in world.tickets}
    assert everything <= _ids(await _get(world, "/v1/tickets", as_supervisor()))
    amy = await _get(world, "/v1/tickets", as_agent("amy"))
    assert _ids(amy) == {world.amys.id, world.technical.id}
    assert not _leaks(amy, world.billing, world.newest)
    bob = await _get(world, "/v1/tickets", as_agent("bob"))
    assert _ids(bob) == {world.billing.id}
    assert not _leaks(bob, world.amys, world.technical, world.newest)
    # Filtered in the query, not after the LIMIT: the newest ticket is nobody's, yet bob's page
    # of one is his ticket, not an empty page.
    assert _ids(await _get(world, "/v1/tickets", as_agent("bob"), limit="1")) == {world.billing.id}
    # Filters cannot widen it: another customer's, another agent's, another queue's tickets.
    for params in (
        {"customer_id": str(world.amys.customer)},
        {"agent_id": "amy"},
        {"queue_id": "technical"},
        {"status": "in_progress"},
    ):
        assert _ids(await _get(world, "/v1/tickets", as_agent("bob"), **params)) == set(), params
    assert _ids(await _get(world, "/v1/tickets", as_agent("amy"), agent_id="amy")) == {
        world.amys.id
    }


async def _ticket_detail(world: World) -> None:
    def path(ticket: Ticket | uuid.UUID) -> str:
        return f"/v1/tickets/{ticket.id if isinstance(ticket, Ticket) else ticket}"

    unknown = await _get(world, path(uuid.uuid4()), as_agent("bob"))
    assert unknown.status_code == 404
    for who, hidden in (
        ("bob", [world.amys, world.technical, world.newest]),
        ("amy", [world.billing, world.newest]),
    ):
        for ticket in hidden:
            refused = await _get(world, path(ticket), as_agent(who))
            assert refused.status_code == 404, (who, ticket)
            assert refused.json()["type"] == unknown.json()["type"]  # like one that is not there
            assert not _leaks(refused, *world.tickets)
    for who, readable in (
        (as_agent("amy"), [world.amys, world.technical]),  # hers, and waiting in her queue
        (as_agent("bob"), [world.billing]),
        (as_supervisor(), world.tickets),
    ):
        for ticket in readable:
            response = await _get(world, path(ticket), who)
            assert response.status_code == 200, response.text
            assert _leaks(response, ticket)  # the customer's text is there for who may read it


async def _messages(world: World) -> None:
    # The conversation follows the ticket's rule: a 404 like a ticket that does not exist.
    def path(ticket: Ticket | uuid.UUID) -> str:
        return f"/v1/tickets/{ticket.id if isinstance(ticket, Ticket) else ticket}/messages"

    unknown = await _get(world, path(uuid.uuid4()), as_agent("bob"))
    assert unknown.status_code == 404
    for who, hidden in (
        ("bob", [world.amys, world.technical, world.newest]),
        ("amy", [world.billing, world.newest]),
    ):
        for ticket in hidden:
            refused = await _get(world, path(ticket), as_agent(who))
            assert refused.status_code == 404, (who, ticket)
            assert refused.json()["type"] == unknown.json()["type"]
            assert not _leaks(refused, *world.tickets)
    for who, readable in (
        (as_agent("amy"), [world.amys, world.technical]),
        (as_agent("bob"), [world.billing]),
        (as_supervisor(), world.tickets),
    ):
        for ticket in readable:
            response = await _get(world, path(ticket), who)
            assert response.status_code == 200, response.text
            assert ticket.marker in response.text


async def _customer(world: World) -> None:
    # A customer's view: an agent only a customer of a ticket they may read, and of them only
    # such tickets; any other customer is a 404 like one that does not exist.
    def path(customer: uuid.UUID) -> str:
        return f"/v1/customers/{customer}"

    unknown = await _get(world, path(uuid.uuid4()), as_agent("bob"))
    assert unknown.status_code == 404
    for who, hidden in (
        ("bob", [world.amys, world.technical, world.newest]),
        ("amy", [world.billing, world.newest]),
    ):
        for ticket in hidden:
            refused = await _get(world, path(ticket.customer), as_agent(who))
            assert refused.status_code == 404, (who, ticket)
            assert refused.json()["type"] == unknown.json()["type"]
            # Nothing but the id the caller sent: no name, text or ticket of any customer.
            assert not any(t.marker in refused.text for t in world.tickets)
            assert not any(str(t.id) in refused.text for t in world.tickets)
    for who, readable in (
        (as_agent("amy"), [world.amys, world.technical]),
        (as_agent("bob"), [world.billing]),
        (as_supervisor(), world.tickets),
    ):
        for ticket in readable:
            response = await _get(world, path(ticket.customer), who)
            assert response.status_code == 200, response.text
            assert _leaks(response, ticket)


async def _customer_search(world: World) -> None:
    # Search by name: every test customer's contacts are named after the marker's prefix.
    def found(response: httpx.Response) -> set[uuid.UUID]:
        assert response.status_code == 200, response.text
        return {uuid.UUID(c["id"]) for c in response.json()["items"]}

    everyone = {t.customer for t in world.tickets}
    assert found(await _get(world, "/v1/customers", as_supervisor(), q="Reader")) == everyone
    amy = await _get(world, "/v1/customers", as_agent("amy"), q="Reader")
    assert found(amy) == {world.amys.customer, world.technical.customer}
    assert not _leaks(amy, world.billing, world.newest)
    bob = await _get(world, "/v1/customers", as_agent("bob"), q="Reader", limit="1")
    assert found(bob) == {world.billing.customer}  # filtered before the LIMIT


async def _canned_responses(world: World) -> None:
    # No customer data; an agent lists those of the queues they serve, a supervisor all.
    router = world.router
    for queue in ("technical", "billing"):
        body = {"queue_id": queue, "language": "en", "title": queue, "body": "Hi {customer_name}"}
        assert (await router.client.post("/v1/canned-responses", json=body)).status_code == 201
    titles = {
        who: sorted(c["title"] for c in (await _get(world, "/v1/canned-responses", h)).json())
        for who, h in (("amy", as_agent("amy")), ("bob", as_agent("bob")), ("sup", as_supervisor()))
    }
    assert titles == {"amy": ["technical"], "bob": ["billing"], "sup": ["billing", "technical"]}


async def _notifications(world: World) -> None:
    # Only one's own: amy's note mentioning bob is bob's, nobody else's.
    router = world.router
    note = await router.client.post(
        f"/v1/tickets/{world.amys.id}/notes", json={"text": "@bob FYI"}, headers=as_agent("amy")
    )
    assert note.status_code == 201, note.text
    bob = await _get(world, "/v1/notifications", as_agent("bob"))
    assert [n["kind"] for n in bob.json()["items"]] == ["mention"]
    for who in (as_agent("amy"), as_supervisor()):
        other = await _get(world, "/v1/notifications", who)
        assert all(n["kind"] != "mention" for n in other.json()["items"])
    assert not _leaks(bob, *world.tickets)


async def _notification_settings(world: World) -> None:
    # One's own settings only; no ticket data.
    router = world.router
    settings = {"email": "lin@cc.example", "email_opt_in": True}
    assert (
        await router.client.put(
            "/v1/notification-settings", json=settings, headers=as_supervisor("lin")
        )
    ).status_code == 200
    assert (await _get(world, "/v1/notification-settings", as_supervisor("lin"))).json() == settings
    for who in (as_agent("bob"), as_supervisor("mo")):
        other = await _get(world, "/v1/notification-settings", who)
        assert other.status_code == 200
        assert "lin@cc.example" not in other.text


async def _policy_and_rules(world: World) -> None:
    for path in ("/v1/routing-policy", "/v1/classification-rules"):
        response = await _get(world, path, as_agent("bob"))
        assert response.status_code == 200, path
        assert not _leaks(response, *world.tickets)


async def _platform(world: World) -> None:
    # /metrics: open on the pod port (no ingress routes it), and counters hold no ticket data.
    for path in ("/healthz", "/openapi.json", "/metrics"):
        response = await world.router.client.get(path, headers={"Authorization": ""})
        assert response.status_code == 200, path
        assert not _leaks(response, *world.tickets)


CASES: dict[str, Callable[[World], Awaitable[None]]] = {
    "/v1/queues": _queues,
    "/v1/agents": _agents,
    "/v1/agents/{agent_id}": _agents,
    "/v1/agents/{agent_id}/offers": _offers,
    "/v1/agents/{agent_id}/status-history": _status_history,
    "/v1/tickets": _ticket_list,
    "/v1/tickets/{ticket_id}": _ticket_detail,
    "/v1/customers": _customer_search,
    "/v1/customers/{customer_id}": _customer,
    "/v1/tickets/{ticket_id}/messages": _messages,
    "/v1/canned-responses": _canned_responses,
    "/v1/notifications": _notifications,
    "/v1/notification-settings": _notification_settings,
    "/v1/routing-policy": _policy_and_rules,
    "/v1/classification-rules": _policy_and_rules,
    # Outside the API: liveness, readiness (no data) and the documentation.
    "/healthz": _platform,
    "/readyz": _platform,
    "/metrics": _platform,
}


def _get_routes(router: Router) -> set[str]:
    """Every GET route of the API, and every documented one outside it (`/docs` and its assets
    are not in the schema and carry no data)."""
    return {
        str(r.path)
        for r in iter_route_contexts(router.app.routes)
        if "GET" in (r.methods or ())
        and (str(r.path).startswith("/v1/") or getattr(r, "include_in_schema", True))
    }


async def test_every_get_route_has_a_read_access_case(router: Router) -> None:
    routes = _get_routes(router)
    assert routes - CASES.keys() == set(), "GET routes without a read-access case"
    assert CASES.keys() - routes == set(), "cases of routes that are gone"


@pytest.mark.parametrize("route", sorted(CASES))
async def test_agents_read_only_their_tickets_and_supervisors_read_all(
    world: World, route: str
) -> None:
    await CASES[route](world)


async def test_an_agent_cannot_act_on_a_ticket_they_may_not_read(world: World) -> None:
    router = world.router
    before = await router.sql("SELECT id, status, queue_id FROM tickets ORDER BY id")
    history = await router.sql("SELECT count(*) FROM ticket_history")
    for path, body in [
        ("reply", {"agent_id": "bob"}),
        ("pending", {"reason": "waiting"}),
        ("resolve", {"resolution_code": "x", "first_contact_resolution": True}),
        ("reopen", {"reason": "x"}),
        ("transfer", {"to_queue_id": "billing", "reason": "mine now"}),
        ("close", {"reason": "spam"}),
        ("reply", {"text": "not mine to answer"}),
    ]:
        for ticket in (world.amys, world.technical):
            refused = await router.client.post(
                f"/v1/tickets/{ticket.id}/{path}", json=body, headers=as_agent("bob")
            )
            assert refused.status_code == 404, (path, refused.text)
            assert not _leaks(refused, *world.tickets)
        # A ticket bob may read (waiting in his queue) but does not hold: refused, not hidden.
        held = await router.client.post(
            f"/v1/tickets/{world.billing.id}/{path}", json=body, headers=as_agent("bob")
        )
        assert held.status_code == 403, (path, held.text)
    assert await router.sql("SELECT id, status, queue_id FROM tickets ORDER BY id") == before
    assert await router.sql("SELECT count(*) FROM ticket_history") == history
    assert await router.sql("SELECT count(*) FROM ticket_messages") == [(0,)]


async def test_an_agent_cannot_see_or_answer_another_agents_offer(world: World) -> None:
    router = world.router
    await router.client.put("/v1/agents/amy/status", json={"status": "available"})

    async def amys_offer() -> list:
        await router.assigner.tick()
        return await router.offers("amy")

    offer = (await eventually(amys_offer))[0]
    for action, body in (("accept", None), ("decline", {"reason": "busy"})):
        refused = await router.client.post(
            f"/v1/offers/{offer['id']}/{action}", json=body, headers=as_agent("bob")
        )
        assert refused.status_code == 404, refused.text
        assert "amy" not in refused.text  # not even whose offer it is
    assert (await router.offers("amy"))[0]["status"] == "pending"
