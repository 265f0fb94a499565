"""`make demo`'s team (`deploy/local/demo.py`) against the router in-process: the agents it
puts through the API take every sample contact's ticket, and their offers carry summaries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ccshared.events.payloads import ContactReceived, CustomerHints, ThreadRefs
from tests.integration.router.conftest import Router, eventually
from tests.unit.test_demo import load_demo


def as_router_receives(body: dict[str, Any]) -> ContactReceived:
    """What intake would publish of a sample contact (one customer per e-mail, phone or
    handle), enough for threading and classification."""
    hints = body.get("customer") or {}
    who = (hints.get("email") or hints.get("phone") or hints.get("social_handle") or "").lower()
    email, chat, social = body.get("email") or {}, body.get("chat") or {}, body.get("social") or {}
    return ContactReceived(
        contact_id=uuid.uuid4(),
        customer_id=uuid.uuid5(uuid.NAMESPACE_URL, who),
        channel=body["channel"],
        external_id=body["external_id"],
        received_at=datetime.fromisoformat(body["received_at"]),
        subject=body.get("subject"),
        text=body.get("text"),
        language=body.get("language"),
        customer=CustomerHints(**hints),
        thread=ThreadRefs(
            email_message_id=email.get("message_id"),
            email_in_reply_to=email.get("in_reply_to"),
            email_references=email.get("references") or [],
            chat_session_id=chat.get("session_id"),
            social_platform=social.get("platform"),
            social_post_id=social.get("post_id"),
            social_parent_post_id=social.get("parent_post_id"),
        ),
    )


async def test_the_demo_team_is_put_through_the_api_and_takes_every_sample_ticket(
    router: Router,
) -> None:
    demo = load_demo()
    team = [demo.SUPERVISOR, *demo.AGENTS]
    tokens = demo.tokens_for(team)
    assert await demo.set_up_team(router.client, tokens["lin"], team) == []
    agents = {a["id"]: a for a in (await router.client.get("/v1/agents")).json()}
    assert agents["lin"]["role"] == "supervisor"
    assert agents["lin"]["status"] == "offline"
    for member in demo.AGENTS:
        assert agents[member.id]["status"] == "available"
        assert agents[member.id]["skills"] == member.skills
        assert agents[member.id]["capacity"] == member.capacity
    # Put again (a second `make demo`): the same team, nothing fails.
    assert await demo.set_up_team(router.client, tokens["lin"], team) == []

    tickets = {await router.receive(as_router_receives(c)) for c in demo.sample_contacts("t1")}

    async def all_offered() -> bool:
        await router.assigner.tick()
        rows = await router.sql(
            "SELECT assignee_agent_id FROM tickets WHERE id = ANY(:ids)", ids=list(tickets)
        )
        return all(r.assignee_agent_id in {"amy", "bob", "cara"} for r in rows)

    await eventually(all_offered)
    offers = await demo.wait_for_offers(router.client, tokens, ["amy", "bob", "cara"], 0)
    offered = [o for pending in offers.values() for o in pending]
    assert {uuid.UUID(o["ticket_id"]) for o in offered} == tickets
    assert all(o["summary"]["subject"] for o in offered)
    assert "王芳" in {o["summary"]["customer_name"] for o in offered}
