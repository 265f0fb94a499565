"""Nobody reads what is not theirs, on every GET route of the SLA service.

The SLA service does not know who holds a ticket, so a ticket's clocks and the at-risk list are
a supervisor's: to an agent a ticket's SLA is a 404 like an untracked ticket's, and the at-risk
list a 403, with nothing of any ticket in the body. Policies, calendars and attainment (counts,
no ticket) stay readable by every user. Every GET route must have a case here: a new route
fails the walk until it has one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from ccshared.events.payloads import TicketOpened
from tests.helpers import as_agent, as_supervisor, wait_until
from tests.integration.sla.conftest import CATEGORY, Router, Sla, fast_policy, now

QUEUE = f"queue-{uuid.uuid4().hex[:8]}"


@dataclass
class World:
    sla: Sla
    ticket_id: uuid.UUID
    policy_id: str

    def leaks(self, response: httpx.Response) -> bool:
        """Whether the body shows anything of the tracked ticket."""
        return str(self.ticket_id) in response.text or QUEUE in response.text

    async def get(self, path: str, who: dict[str, str], **params: str) -> httpx.Response:
        return await self.sla.client.get(path, headers=who, params=params)


@pytest.fixture
async def world(sla: Sla, router: Router) -> World:
    policy = fast_policy("readers", targets={"first_response": 3600, "resolution": 7200})
    created = await sla.client.post("/v1/policies", json=policy)
    assert created.status_code == 201, created.text
    ticket_id = uuid.uuid4()
    await router.publish(
        TicketOpened(
            ticket_id=ticket_id,
            customer_id=uuid.uuid4(),
            channel="email",
            category=CATEGORY,
            priority="normal",
            queue_id=QUEUE,
            opened_at=now() - timedelta(seconds=5),
        )
    )
    await wait_until(lambda: sla.tracked(ticket_id), timeout=30)
    return World(sla, ticket_id, "readers")


# --- one case per GET route ---------------------------------------------------------------


async def _ticket_sla(world: World) -> None:
    path = f"/v1/tickets/{world.ticket_id}/sla"
    unknown = await world.get(f"/v1/tickets/{uuid.uuid4()}/sla", as_agent("amy"))
    refused = await world.get(path, as_agent("amy"))
    assert refused.status_code == unknown.status_code == 404
    assert refused.json()["type"] == unknown.json()["type"]  # like a ticket never seen
    assert "metrics" not in refused.text
    assert world.policy_id not in refused.text
    assert QUEUE not in refused.text
    allowed = await world.get(path, as_supervisor())
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["policy_id"] == world.policy_id


async def _at_risk(world: World) -> None:
    refused = await world.get("/v1/at-risk", as_agent("amy"), queue_id=QUEUE)
    assert refused.status_code == 403
    assert not world.leaks(refused)
    allowed = await world.get("/v1/at-risk", as_supervisor(), queue_id=QUEUE)
    assert allowed.status_code == 200, allowed.text
    assert {i["ticket_id"] for i in allowed.json()["items"]} == {str(world.ticket_id)}


async def _attainment(world: World) -> None:
    # Met and breached counts per queue, channel or priority: no ticket in them.
    start = (now() - timedelta(days=1)).isoformat()
    end = (now() + timedelta(days=1)).isoformat()
    response = await world.get("/v1/attainment", as_agent("amy"), **{"from": start, "to": end})
    assert response.status_code == 200, response.text
    assert str(world.ticket_id) not in response.text


async def _configuration(world: World) -> None:
    # Policies and business calendars: configuration, readable by every user.
    for path in (
        "/v1/policies",
        f"/v1/policies/{world.policy_id}",
        f"/v1/policies/{world.policy_id}/versions",
        f"/v1/policies/{world.policy_id}/versions/1",
        "/v1/calendars",
        "/v1/calendars/24x7",
    ):
        response = await world.get(path, as_agent("amy"))
        assert response.status_code == 200, (path, response.text)
        assert not world.leaks(response)


async def _platform(world: World) -> None:
    # /metrics: open on the pod port (no ingress routes it), and counters hold no ticket data.
    for path in ("/healthz", "/readyz", "/openapi.json", "/metrics"):
        response = await world.get(path, {"Authorization": ""})
        assert response.status_code == 200, path
        assert not world.leaks(response)


CASES: dict[str, Callable[[World], Awaitable[None]]] = {
    "/v1/tickets/{ticket_id}/sla": _ticket_sla,
    "/v1/at-risk": _at_risk,
    "/v1/attainment": _attainment,
    "/v1/policies": _configuration,
    "/v1/policies/{policy_id}": _configuration,
    "/v1/policies/{policy_id}/versions": _configuration,
    "/v1/policies/{policy_id}/versions/{version}": _configuration,
    "/v1/calendars": _configuration,
    "/v1/calendars/{calendar_id}": _configuration,
    "/healthz": _platform,
    "/readyz": _platform,
    "/metrics": _platform,
}


def _get_routes(sla: Sla) -> set[str]:
    """Every GET route of the API, and every documented one outside it (`/docs` and its assets
    are not in the schema and carry no data)."""
    return {
        str(r.path)
        for r in iter_route_contexts(sla.app.routes)
        if "GET" in (r.methods or ())
        and (str(r.path).startswith("/v1/") or getattr(r, "include_in_schema", True))
    }


async def test_every_get_route_has_a_read_access_case(sla: Sla) -> None:
    routes = _get_routes(sla)
    assert routes - CASES.keys() == set(), "GET routes without a read-access case"
    assert CASES.keys() - routes == set(), "cases of routes that are gone"


async def test_a_tickets_clocks_are_a_supervisors_and_configuration_is_everyones(
    world: World,
) -> None:
    # One tracked ticket for all cases: each case is a separate route of the same service.
    failures = []
    for route, case in CASES.items():
        try:
            await case(world)
        except AssertionError as exc:
            failures.append(f"{route}: {exc}")
    assert not failures, "\n".join(failures)
