"""The agent's workspace through the console, on the real router and SLA apps in-process (each
with a scratch database of its own): an offer on /agent, accepted through the console, a reply
the router stores, a note, resolved with first-contact resolution; declining with a reason;
status; sorting and filtering; and who may see what (no session, no CSRF token, a supervisor).

`stack` is the fixture the ticket-page tests (test_tickets_*.py) use too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ccshared.kafka import commit_group_at_end, ensure_topics
from router.app import create_app as create_router
from router.settings import RouterSettings
from tests.conftest import TOPIC_PREFIX, scratch_database, topic
from tests.helpers import as_supervisor, wait_until
from tests.integration.console.conftest import Console
from tests.integration.router.conftest import Router, contact
from tests.integration.sla.conftest import Sla, SlaFactory

ALL_SKILLS = {"complaints": 3, "technical": 3, "billing": 3, "vip": 3, "escalations": 3}


@dataclass
class Stack:
    console: Console
    router: Router
    sla: Sla

    async def agent(self, agent_id: str, *, status: str = "available") -> httpx.AsyncClient:
        """A router agent with every queue's skills, and the console user who works as them,
        signed in (the CSRF token in the client's headers)."""
        await self.router.agent(agent_id, skills=ALL_SKILLS, status=status)
        return await self.console.signed_in_client(agent_id, "agent", agent_id=agent_id)

    async def ticket(self, text: str = "你好，请问会员积分怎么兑换？", **kwargs: Any) -> str:
        return str(await self.router.receive(contact(uuid.uuid4(), text_=text, **kwargs)))

    async def offer_to(self, agent_id: str) -> dict[str, Any]:
        async def pending() -> list[dict[str, Any]]:
            await self.router.assigner.tick()
            return await self.router.offers(agent_id)

        offers: list[dict[str, Any]] = await wait_until(pending, timeout=10)
        return offers[0]

    async def messages(self, ticket_id: str) -> list[dict[str, Any]]:
        answer = await self.router.client.get(f"/v1/tickets/{ticket_id}/messages")
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


@pytest.fixture(name="stack")
async def stack_fixture(
    console_factory: Callable[..., Awaitable[Console]], kafka_bootstrap: str
) -> AsyncIterator[Stack]:
    async with scratch_database() as router_db, scratch_database() as sla_db:
        settings = RouterSettings(
            database_url=SecretStr(router_db),
            kafka_bootstrap=kafka_bootstrap,
            log_json=False,
            consumer_group_suffix=f".test-{uuid.uuid4().hex[:8]}",
            consumer_offset_reset="latest",
            assign_in_background=False,
            policy_cache_s=0,
        )
        router_app = create_router(settings)
        lifespan = router_app.router.lifespan_context(router_app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=router_app),
            base_url="http://r",
            headers=as_supervisor(),
        )
        service_name = f"sla-t{uuid.uuid4().hex[:10]}"
        await ensure_topics(kafka_bootstrap, prefix=TOPIC_PREFIX)
        await commit_group_at_end(
            kafka_bootstrap, f"{service_name}.ticket-clocks", [topic("router.tickets")]
        )
        slas = SlaFactory(sla_db, kafka_bootstrap, service_name)
        try:
            sla = await slas.start()
            console = await console_factory(
                {
                    "router": httpx.ASGITransport(app=router_app),
                    "sla": httpx.ASGITransport(app=sla.app),
                }
            )
            yield Stack(console, Router(router_app, client), sla)
        finally:
            for running in reversed(slas.running):
                await running.stop()
            await client.aclose()
            await lifespan.__aexit__(None, None, None)


def csrf_of(client: httpx.AsyncClient) -> str:
    return client.headers["X-CSRF-Token"]


async def post_form(
    client: httpx.AsyncClient, url: str, data: dict[str, str] | None = None, *, csrf: bool = True
) -> httpx.Response:
    """POSTs a form as the page's own form would: the CSRF token as its `csrf` field, no
    header (the signed-in client's header is taken away for the request)."""
    fields = dict(data or {})
    if csrf:
        fields["csrf"] = csrf_of(client)
    request = client.build_request("POST", url, data=fields)
    request.headers.pop("X-CSRF-Token", None)
    return await client.send(request)


async def test_an_agent_accepts_an_offer_replies_notes_and_resolves_with_fcr_through_the_console(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy")
    ticket_id = await stack.ticket("你好，请问会员积分怎么兑换？")
    offer = await stack.offer_to("amy")

    page = await amy.get("/agent")
    assert page.status_code == 200, page.text
    assert "你好，请问会员积分怎么兑换？" in page.text  # the offer's summary, in Chinese
    assert f"/agent/offers/{offer['id']}/accept" in page.text
    assert 'class="countdown" data-until="' in page.text  # the offer's expiry, counted down

    accepted = await post_form(amy, f"/agent/offers/{offer['id']}/accept")
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["location"] == f"/tickets/{ticket_id}"
    ticket = await stack.router.ticket(uuid.UUID(ticket_id))
    assert ticket["assignee_agent_id"] == "amy"
    assert ticket["status"] == "in_progress"

    workspace = await amy.get(f"/tickets/{ticket_id}")
    assert workspace.status_code == 200
    assert "你好，请问会员积分怎么兑换？" in workspace.text
    assert 'id="reply-text"' in workspace.text

    answer = "您好，积分可以在会员中心兑换。Thanks for asking!"
    replied = await post_form(amy, f"/tickets/{ticket_id}/reply", {"text": answer})
    assert replied.status_code == 303, replied.text
    noted = await post_form(amy, f"/tickets/{ticket_id}/notes", {"text": "客户是老会员 — VIP?"})
    assert noted.status_code == 303, noted.text

    messages = await stack.messages(ticket_id)
    outbound = [m for m in messages if m["direction"] == "outbound"]
    notes = [m for m in messages if m["direction"] == "note"]
    assert [m["text"] for m in outbound] == [answer]
    assert outbound[0]["author"] == "agent:amy"
    assert outbound[0]["delivery_state"] == "queued"
    assert [m["text"] for m in notes] == ["客户是老会员 — VIP?"]
    shown = (await amy.get(f"/tickets/{ticket_id}")).text
    assert answer in shown
    assert "客户是老会员 — VIP?" in shown

    resolved = await post_form(
        amy,
        f"/tickets/{ticket_id}/resolve",
        {"resolution_code": "answered", "first_contact_resolution": "yes"},
    )
    assert resolved.status_code == 303, resolved.text
    ticket = await stack.router.ticket(uuid.UUID(ticket_id))
    assert ticket["status"] == "resolved"
    assert ticket["resolution_code"] == "answered"
    assert ticket["first_contact_resolution"] is True
    after = await amy.get(f"/tickets/{ticket_id}")
    assert 'action="/tickets/' + ticket_id + '/reopen"' in after.text


async def test_an_agent_declines_an_offer_with_a_reason_and_words_of_their_own(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy")
    ticket_id = await stack.ticket()
    offer = await stack.offer_to("amy")

    declined = await post_form(
        amy,
        f"/agent/offers/{offer['id']}/decline",
        {"reason": "language", "details": "我不会说粤语"},
    )

    assert declined.status_code == 303, declined.text
    assert declined.headers["location"] == "/agent"
    ticket = await stack.router.ticket(uuid.UUID(ticket_id))
    answered = next(o for o in ticket["offers"] if o["id"] == offer["id"])
    assert answered["status"] == "declined"
    assert answered["reason"] == "language: 我不会说粤语"
    assert offer["id"] not in (await amy.get("/agent/offers")).text


async def test_new_offers_come_as_a_fragment_for_the_page_to_insert(stack: Stack) -> None:
    amy = await stack.agent("amy")
    empty = await amy.get("/agent/offers")
    assert empty.status_code == 200
    assert 'id="no-offers"' in empty.text
    assert "<html" not in empty.text  # a fragment, not a page

    await stack.ticket("我的快递三天没到了")
    offer = await stack.offer_to("amy")
    fragment = await amy.get("/agent/offers")

    assert 'id="offers-list"' in fragment.text
    assert "我的快递三天没到了" in fragment.text
    assert f"/agent/offers/{offer['id']}/decline" in fragment.text


async def test_an_agent_sets_their_status_and_sees_the_routers_reason(stack: Stack) -> None:
    amy = await stack.agent("amy")

    away = await post_form(amy, "/agent/status", {"status": "away"})

    assert away.status_code == 303
    agent = (await stack.router.client.get("/v1/agents/amy")).json()
    assert agent["status"] == "away"
    page = await amy.get("/agent", headers={"Accept-Language": "zh-CN"})
    assert 'id="current-status">离开<' in page.text
    wrong = await post_form(amy, "/agent/status", {"status": "wrap_up"})  # the router's own
    assert wrong.status_code == 422
    assert (await stack.router.client.get("/v1/agents/amy")).json()["status"] == "away"
    lunch = await post_form(amy, "/agent/status", {"status": "away", "reason": "午休"})
    assert lunch.status_code == 303
    assert (await stack.router.client.get("/v1/agents/amy")).json()["status_reason"] == "午休"
    assert "午休" in (await amy.get("/agent")).text


async def test_my_queues_waiting_tickets_are_sorted_and_filtered_on_the_server(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy", status="away")  # nothing is offered: all stay queued
    await stack.ticket("Banana order missing", channel="email", subject="Banana order missing")
    await stack.ticket("Apple invoice wrong", channel="chat")

    ascending = (await amy.get("/agent", params={"sort": "subject", "dir": "asc"})).text
    descending = (await amy.get("/agent", params={"sort": "subject", "dir": "desc"})).text
    chats = (await amy.get("/agent", params={"channel": "chat"})).text

    assert ascending.index("Apple invoice") < ascending.index("Banana order")
    assert descending.index("Banana order") < descending.index("Apple invoice")
    assert 'aria-sort="descending"' in descending
    assert "Apple invoice" in chats
    assert "Banana order" not in chats


async def test_a_supervisor_is_sent_to_the_board_and_has_no_offers_of_their_own(
    stack: Stack,
) -> None:
    sam = await stack.console.signed_in_client("sam", "supervisor")

    home = await sam.get("/agent")
    offers = await sam.get("/agent/offers", headers={"Accept": "text/html"})

    assert home.status_code == 303
    assert home.headers["location"] == "/board"
    assert offers.status_code == 403


async def test_without_a_session_the_workspace_sends_to_sign_in_and_takes_no_action(
    stack: Stack,
) -> None:
    await stack.router.agent("amy", skills=ALL_SKILLS)
    await stack.ticket()
    offer = await stack.offer_to("amy")
    async with stack.console.client() as stranger:
        page = await stranger.get("/agent", headers={"Accept": "text/html"})
        fragment = await stranger.get("/agent/offers")
        accept = await stranger.post(f"/agent/offers/{offer['id']}/accept", data={"csrf": "x"})

    assert page.status_code == 303
    assert page.headers["location"].startswith("/sign-in?next=")
    assert fragment.status_code == 401
    assert accept.status_code == 401
    assert (await stack.router.offers("amy"))[0]["status"] == "pending"


async def test_accepting_without_the_csrf_token_is_refused_and_the_offer_stays_pending(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy")
    await stack.ticket()
    offer = await stack.offer_to("amy")

    refused = await post_form(amy, f"/agent/offers/{offer['id']}/accept", csrf=False)
    wrong = await post_form(
        amy,
        f"/agent/offers/{offer['id']}/decline",
        {"reason": "other", "csrf": "forged"},
        csrf=False,
    )

    assert refused.status_code == 403
    assert wrong.status_code == 403
    offers = await stack.router.offers("amy")
    assert [o["id"] for o in offers] == [offer["id"]]
    assert offers[0]["status"] == "pending"


async def test_after_resolving_in_a_queue_with_wrap_up_the_workspace_counts_the_wrap_up_down(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy")
    ticket_id = await stack.ticket("我想改一下收货地址")
    offer = await stack.offer_to("amy")
    queue_id = (await stack.router.ticket(uuid.UUID(ticket_id)))["queue_id"]
    queue = next(
        q for q in (await stack.router.client.get("/v1/queues")).json() if q["id"] == queue_id
    )
    kept = ("name", "required_skills", "strategy", "offer_timeout_s", "supervisors", "managers")
    changed = await stack.router.client.put(
        f"/v1/queues/{queue_id}",
        json={k: queue[k] for k in kept if k in queue} | {"wrap_up_s": 300},
    )
    assert changed.status_code == 200, changed.text
    await post_form(amy, f"/agent/offers/{offer['id']}/accept")
    resolved = await post_form(amy, f"/tickets/{ticket_id}/resolve", {"resolution_code": "done"})
    assert resolved.status_code == 303, resolved.text

    page = await amy.get("/agent")

    agent = (await stack.router.client.get("/v1/agents/amy")).json()
    assert agent["status"] == "wrap_up"
    assert 'id="current-status">Wrap-up<' in page.text
    assert f'data-until="{agent["wrap_up_until"]}"' in page.text
