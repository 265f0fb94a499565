"""Nobody reads what is not theirs, on every GET route of the feedback service.

A ticket's survey (customer, answer, comment) is a supervisor's and the agent's who resolved the
ticket; to another agent it is a 404 like a ticket with no survey. Webhook delivery logs (whose
errors name hosts and ports inside the network) are a supervisor's only. Webhooks, key accounts
and KPIs are a supervisor's (403 to an agent). The survey page needs its signed link and nothing
else. Every GET route must have a case here: a new route fails the walk until it has one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from ccshared.ids import uuid7
from feedback.app import create_app
from tests.helpers import as_agent, as_supervisor
from tests.integration.feedback.conftest import Feedback
from tests.integration.feedback.test_answers import _sent_survey

# What a delivery error to an internal address looks like (the attempt log shows it).
DELIVERY_ERROR = "ConnectError: connection refused by 10.20.30.40:5432"


@dataclass
class World:
    """amy resolved the ticket; its customer answered with a comment; a delivery failed."""

    feedback: Feedback
    ticket: uuid.UUID
    customer: uuid.UUID
    token: str
    comment: str
    webhook: uuid.UUID
    key_account: uuid.UUID

    def leaks(self, response: httpx.Response) -> list[str]:
        """What of the ticket's survey, its customer or its deliveries the body shows."""
        return [
            secret
            for secret in (str(self.customer), self.comment, DELIVERY_ERROR, "10.20.30.40")
            if secret in response.text
        ]

    async def get(self, path: str, who: dict[str, str], **params: str) -> httpx.Response:
        return await self.feedback.client.get(path, headers=who, params=params)


async def _failed_delivery(feedback: Feedback, survey_id: str) -> uuid.UUID:
    """A subscription (inactive, so nothing is sent) with one failed delivery of the survey."""
    webhook, delivery, at = uuid7(), uuid7(), datetime.now(UTC)
    async with feedback.db.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO webhook_subscriptions (id, channel, url, secret, active) "
            "VALUES ($1, 'email', 'https://hooks.example/surveys', $2, false)",
            webhook,
            "whsec_" + "s" * 32,
        )
        await conn.execute(
            "INSERT INTO webhook_deliveries (id, subscription_id, survey_id, event_id, body, "
            " status, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, '{}', 'failed', 1, $5)",
            delivery,
            webhook,
            uuid.UUID(survey_id),
            uuid7(),
            at,
        )
        await conn.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, error, duration_ms) "
            "VALUES ($1, 1, $2, $3, 12)",
            delivery,
            at,
            DELIVERY_ERROR,
        )
    return webhook


@pytest.fixture
async def world(feedback: Feedback) -> World:
    ticket, customer, token = await _sent_survey(feedback, agent="amy")
    comment = f"the courier {uuid.uuid4().hex} was rude"
    answered = await feedback.client.post(
        f"/v1/surveys/{token}", json={"csat": 2, "nps": 3, "comment": comment}
    )
    assert answered.status_code == 200, answered.text
    survey = await feedback.survey_of(ticket)
    assert survey is not None
    webhook = await _failed_delivery(feedback, survey["survey_id"])
    key_account = uuid.uuid4()
    created = await feedback.client.post(
        "/v1/key-accounts",
        json={
            "customer_id": str(key_account),
            "name": "Acme",
            "relationship_started_at": "2026-01-01T00:00:00Z",
        },
    )
    assert created.status_code == 201, created.text
    return World(feedback, ticket, customer, token, comment, webhook, key_account)


# --- one case per GET route ---------------------------------------------------------------


async def _ticket_survey(world: World) -> None:
    path = f"/v1/tickets/{world.ticket}/survey"
    unknown = await world.get(f"/v1/tickets/{uuid.uuid4()}/survey", as_agent("bob"))
    refused = await world.get(path, as_agent("bob"))
    assert refused.status_code == unknown.status_code == 404
    assert refused.json()["type"] == unknown.json()["type"]  # like a ticket with no survey
    assert world.leaks(refused) == []
    # The agent who resolved the ticket reads its survey and answer, not the delivery logs.
    amy = await world.get(path, as_agent("amy"))
    assert amy.status_code == 200, amy.text
    assert amy.json()["answer"]["comment"] == world.comment
    assert amy.json()["deliveries"] is None
    assert DELIVERY_ERROR not in amy.text
    supervisor = await world.get(path, as_supervisor())
    assert supervisor.status_code == 200, supervisor.text
    [delivery] = supervisor.json()["deliveries"]
    assert delivery["attempt_log"][0]["error"] == DELIVERY_ERROR


async def _survey_page(world: World) -> None:
    # The customer's link is the only key: a user token opens nothing without it.
    forged = world.token[:-4] + ("AAAA" if not world.token.endswith("AAAA") else "BBBB")
    for token in (forged, "not-a-token"):
        refused = await world.get(f"/v1/surveys/{token}", as_supervisor())
        assert refused.status_code == 403, refused.text
        assert world.leaks(refused) == []
    page = await world.get(
        f"/v1/surveys/{world.token}", {"Authorization": "", "Accept": "application/json"}
    )
    assert page.status_code == 200
    assert page.json()["answer"]["comment"] == world.comment


def _supervisors_only(*paths: str, **params: str) -> Callable[[World], Awaitable[None]]:
    async def case(world: World) -> None:
        for template in paths:
            path = template.format(webhook=world.webhook, customer=world.key_account)
            refused = await world.get(path, as_agent("amy"), **params)
            assert refused.status_code == 403, (path, refused.text)
            assert world.leaks(refused) == []
            assert "Acme" not in refused.text  # the key account's name
            assert "hooks.example" not in refused.text
            assert (await world.get(path, as_supervisor(), **params)).status_code == 200, path

    return case


_day = datetime.now(UTC).date()
_KPI_RANGE = {"from": str(_day - timedelta(days=1)), "to": str(_day + timedelta(days=1))}


async def _platform(world: World) -> None:
    # /metrics: open on the pod port (no ingress routes it), and counters hold no customer data.
    for path in ("/healthz", "/readyz", "/openapi.json", "/metrics"):
        response = await world.get(path, {"Authorization": ""})
        assert response.status_code == 200, path
        assert world.leaks(response) == []


CASES: dict[str, Callable[[World], Awaitable[None]]] = {
    "/v1/tickets/{ticket_id}/survey": _ticket_survey,
    "/v1/surveys/{token}": _survey_page,
    "/v1/webhooks": _supervisors_only("/v1/webhooks"),
    "/v1/webhooks/{webhook_id}": _supervisors_only("/v1/webhooks/{webhook}"),
    "/v1/key-accounts": _supervisors_only("/v1/key-accounts"),
    "/v1/key-accounts/{customer_id}": _supervisors_only("/v1/key-accounts/{customer}"),
    "/v1/kpis": _supervisors_only("/v1/kpis", **_KPI_RANGE),
    "/v1/kpis.csv": _supervisors_only("/v1/kpis.csv", **_KPI_RANGE),
    "/healthz": _platform,
    "/readyz": _platform,
    "/metrics": _platform,
}


def _get_routes(app: FastAPI) -> set[str]:
    """Every GET route of the API, and every documented one outside it (`/docs` and its assets
    are not in the schema and carry no data)."""
    return {
        str(r.path)
        for r in iter_route_contexts(app.routes)
        if "GET" in (r.methods or ())
        and (str(r.path).startswith("/v1/") or getattr(r, "include_in_schema", True))
    }


async def test_every_get_route_has_a_read_access_case(feedback: Feedback) -> None:
    routes = _get_routes(create_app(feedback.settings))  # built, not started
    assert routes - CASES.keys() == set(), "GET routes without a read-access case"
    assert CASES.keys() - routes == set(), "cases of routes that are gone"


async def test_surveys_are_read_by_supervisors_and_the_resolving_agent_only(world: World) -> None:
    failures = []
    for route, case in CASES.items():
        try:
            await case(world)
        except AssertionError as exc:
            failures.append(f"{route}: {exc}")
    assert not failures, "\n".join(failures)
