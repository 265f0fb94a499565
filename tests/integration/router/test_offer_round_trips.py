"""Answering an offer locks the offer and its ticket in one statement (offer first, as
before): an accept is three statements (lock both, mark the offer, write the ticket's change),
it was four. The accept_offer path was a fifth of the router's CPU under the e2e load."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event

from tests.helpers import as_agent
from tests.integration.router.conftest import Router, contact, eventually


async def _offer_of(router: Router, agent: str) -> dict[str, Any]:
    async def pending() -> list[Any]:
        await router.assigner.tick()
        return await router.offers(agent)

    offers = await eventually(pending)
    return dict(offers[0])


async def test_accepting_an_offer_takes_three_statements(router: Router) -> None:
    await router.agent("ria", skills={"complaints": 3})
    await router.receive(contact(uuid.uuid4(), channel="phone", text_="我要投诉！"))
    offer = await _offer_of(router, "ria")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = router.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        accepted = await router.client.post(
            f"/v1/offers/{offer['id']}/accept", headers=as_agent("ria")
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["assignee_agent_id"] == "ria"
    assert len(statements) == 3, statements
    assert "FOR UPDATE OF t" in statements[0]


async def test_another_agents_offer_is_still_not_found_and_a_supervisors_forbidden(
    router: Router,
) -> None:
    await router.agent("rex", skills={"complaints": 3})
    await router.receive(contact(uuid.uuid4(), channel="phone", text_="我要投诉！"))
    offer = await _offer_of(router, "rex")

    other = await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("amy"))
    unknown = await router.client.post(f"/v1/offers/{uuid.uuid4()}/accept", headers=as_agent("rex"))
    supervisor = await router.client.post(f"/v1/offers/{offer['id']}/accept")

    assert other.status_code == 404
    assert unknown.status_code == 404
    assert supervisor.status_code == 403
    declined = await router.client.post(
        f"/v1/offers/{offer['id']}/decline", json={"reason": "busy"}, headers=as_agent("rex")
    )
    assert declined.status_code == 200, declined.text
    again = await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("rex"))
    assert again.status_code == 409
    assert again.json()["offer_status"] == "declined"
