"""The router's own counters on /metrics: offers made, and each offer's outcome (accepted,
declined, timed out), counted once its change has committed."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from tests.helpers import as_agent
from tests.integration.router.conftest import Router, contact


def _counts() -> dict[str, float]:
    found = {
        outcome: REGISTRY.get_sample_value("cc_router_offer_outcomes_total", {"outcome": outcome})
        or 0.0
        for outcome in ("accepted", "declined", "timed_out")
    }
    found["made"] = REGISTRY.get_sample_value("cc_router_offers_made_total") or 0.0
    return found


async def test_offers_made_accepted_declined_and_timed_out_are_counted(router: Router) -> None:
    await router.agent("ann", capacity={"chat": 5})
    before = _counts()
    for _ in range(3):
        await router.receive(contact(uuid.uuid4(), text_="hello"))
    await router.assigner.tick()
    accepted, declined, missed = await router.offers("ann")
    answer = await router.client.post(
        f"/v1/offers/{accepted['id']}/accept", headers=as_agent("ann")
    )
    assert answer.status_code == 200, answer.text
    answer = await router.client.post(
        f"/v1/offers/{declined['id']}/decline", json={"reason": "busy"}, headers=as_agent("ann")
    )
    assert answer.status_code == 200, answer.text
    # An answer refused (not the agent's offer) counts nothing.
    refused = await router.client.post(f"/v1/offers/{missed['id']}/accept", headers=as_agent("bob"))
    assert refused.status_code == 404
    await router.sql(
        "UPDATE offers SET expires_at = now() - interval '1 second' WHERE id = :id",
        id=uuid.UUID(missed["id"]),
    )
    await router.assigner.tick()

    after = _counts()
    assert {k: after[k] - before[k] for k in after} == {
        "made": 3,
        "accepted": 1,
        "declined": 1,
        "timed_out": 1,
    }
    scraped = (await router.client.get("/metrics")).text
    assert 'cc_router_offer_outcomes_total{outcome="timed_out"}' in scraped
