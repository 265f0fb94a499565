"""Agent and supervisor roles on the router's API, by signed bearer token: who may do what, and
what a refused caller leaves behind (nothing)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ccshared.auth import issue_token
from tests.helpers import as_agent, as_supervisor, as_user, dev_private_key
from tests.integration.router.conftest import Router, contact, eventually

OLD_HS256_DEFAULT = b"local-dev-router-auth-secret-change-me"


def _forged_tokens() -> dict[str, str]:
    now = datetime.now(UTC)
    iat = int(now.timestamp())
    good = {"iss": "contact-center", "sub": "amy", "role": "supervisor", "aud": "contact-center"}
    good_times = {**good, "iat": iat, "exp": iat + 3600}
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(good_times).encode()).rstrip(b"=")
    key = dev_private_key()
    valid = issue_token(key, "amy", "supervisor", ttl=timedelta(hours=1))
    head, payload, signature = valid.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered["sub"] = "mallory"
    tampered_payload = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=")
    return {
        "another Ed25519 key": issue_token(
            Ed25519PrivateKey.generate(), "amy", "supervisor", ttl=timedelta(hours=1)
        ),
        # The HS256 secret every service shipped with, which anyone could read in the source.
        "old shared HS256 secret": jwt.encode(good_times, OLD_HS256_DEFAULT, algorithm="HS256"),
        "expired": issue_token(
            key, "amy", "supervisor", ttl=timedelta(minutes=5), now=now - timedelta(hours=1)
        ),
        "alg none": f"{header}.{body.decode()}.",
        "tampered claims": f"{head}.{tampered_payload.decode()}.{signature}",
        "wrong audience": jwt.encode({**good_times, "aud": "elsewhere"}, key, algorithm="EdDSA"),
        "wrong issuer": jwt.encode({**good_times, "iss": "mallory-idp"}, key, algorithm="EdDSA"),
        "no issuer": jwt.encode(
            {k: v for k, v in good_times.items() if k != "iss"}, key, algorithm="EdDSA"
        ),
        "lives 10 years": jwt.encode(
            {**good_times, "exp": iat + 10 * 365 * 86_400}, key, algorithm="EdDSA"
        ),
        "lives 12 h 1 min": jwt.encode(
            {**good_times, "exp": iat + 12 * 3600 + 60}, key, algorithm="EdDSA"
        ),
        "unknown role": jwt.encode({**good_times, "role": "admin"}, key, algorithm="EdDSA"),
        "no expiry": jwt.encode({**good, "iat": iat}, key, algorithm="EdDSA"),
        "garbage": "not.a.token",
    }


async def test_every_route_needs_a_valid_token(router: Router) -> None:
    routes = [
        ("GET", "/v1/queues"),
        ("PUT", "/v1/queues/q1"),
        ("GET", "/v1/agents"),
        ("PUT", "/v1/agents/amy/status"),
        ("GET", f"/v1/tickets/{uuid.uuid4()}"),
        ("POST", f"/v1/offers/{uuid.uuid4()}/accept"),
        ("PUT", "/v1/routing-policy"),
    ]
    for method, path in routes:
        response = await router.client.request(method, path, headers={"Authorization": ""})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/problem+json"
    for why, token in _forged_tokens().items():
        response = await router.client.get(
            "/v1/queues", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, why
        assert token not in response.text  # the token is not echoed back
    assert (await router.client.get("/v1/queues", headers=as_agent("amy"))).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/queues/vip", {"name": "VIP", "required_skills": {}}),
        ("PUT", "/v1/agents/amy", {"name": "Amy", "skills": {"complaints": 5}}),
        ("PUT", "/v1/routing-policy", {"steps": []}),
        ("PUT", "/v1/agents/bob/status", {"status": "offline"}),
        ("GET", "/v1/agents/bob/offers", None),
    ],
)
async def test_an_agent_may_not_shape_routing_or_act_for_others(
    router: Router, method: str, path: str, body: object
) -> None:
    await router.agent("amy")
    await router.agent("bob")
    before = await router.sql("SELECT id, status, skills::text FROM agents ORDER BY id")
    response = await router.client.request(method, path, json=body, headers=as_agent("amy"))
    assert response.status_code == 403, response.text
    assert response.json()["type"].endswith("/forbidden")
    assert await router.sql("SELECT id, status, skills::text FROM agents ORDER BY id") == before


async def test_an_agent_acts_on_their_own_tickets_only_and_answers_only_their_offers(
    router: Router,
) -> None:
    await router.agent("amy")
    await router.agent("bob", status="offline")
    ticket_id = await router.receive(contact(uuid.uuid4(), channel="email"))

    async def amys_offer() -> list:
        await router.assigner.tick()
        return await router.offers("amy")

    offer = (await eventually(amys_offer))[0]
    assert (await router.client.get("/v1/agents/amy/offers", headers=as_agent("amy"))).json()
    # Neither bob nor a supervisor may answer amy's offer; to bob it does not exist.
    for headers, status in ((as_agent("bob"), 404), (as_supervisor(), 403)):
        refused = await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=headers)
        assert refused.status_code == status
    accepted = await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("amy"))
    assert accepted.status_code == 200

    history = len((await router.ticket(ticket_id))["history"])
    for path, body in [
        ("reply", {"agent_id": "bob"}),
        ("pending", {"reason": "waiting"}),
        ("resolve", {"resolution_code": "x", "first_contact_resolution": True}),
        ("transfer", {"to_queue_id": "frontline", "reason": "not mine"}),
        ("close", {"reason": "spam"}),
    ]:
        refused = await router.client.post(
            f"/v1/tickets/{ticket_id}/{path}", json=body, headers=as_agent("bob")
        )
        assert refused.status_code == 404, (path, refused.text)  # bob may not even read it
    impersonation = await router.client.post(
        f"/v1/tickets/{ticket_id}/reply", json={"agent_id": "bob"}, headers=as_agent("amy")
    )
    assert impersonation.status_code == 403  # amy may not reply in bob's name
    ticket = await router.ticket(ticket_id)
    assert len(ticket["history"]) == history  # nothing refused left a trace
    assert ticket["status"] == "in_progress"

    own = await router.client.post(
        f"/v1/tickets/{ticket_id}/reply", json={"agent_id": "amy"}, headers=as_agent("amy")
    )
    assert own.status_code == 200
    resolved = await router.client.post(
        f"/v1/tickets/{ticket_id}/resolve",
        json={"resolution_code": "answered", "first_contact_resolution": True},
        headers=as_agent("amy"),
    )
    assert resolved.status_code == 200
    actors = [h["actor"] for h in (await router.ticket(ticket_id))["history"]]
    assert actors[-1] == "agent:amy"
    # A supervisor may act on any ticket, and it says so in the history.
    reopened = await router.client.post(
        f"/v1/tickets/{ticket_id}/reopen",
        json={"reason": "customer called back"},
        headers=as_user("lin", "supervisor"),
    )
    assert reopened.status_code == 200
    assert (await router.ticket(ticket_id))["history"][-1]["actor"] == "supervisor:lin"
