"""Every signed-in user's own notifications (the router's), the unread count of the header's
tray, and marking one read; nobody sees or marks another's."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from ccshared.events.payloads import SlaEscalated
from tests.helpers import as_supervisor
from tests.integration.console.conftest import Console
from tests.integration.console.supervisor_stack import Stack, supervisor_stack
from tests.integration.router.conftest import contact


async def _escalation_for(stack: Stack, *supervisors: str) -> uuid.UUID:
    """A ticket of a queue whose supervisors are told of its escalations, escalated once."""
    ticket = await stack.contact(contact(uuid.uuid4()))
    queue_id = (await stack.router.get(f"/v1/tickets/{ticket}")).json()["queue_id"]
    queue = next(q for q in (await stack.router.get("/v1/queues")).json() if q["id"] == queue_id)
    body = {k: queue[k] for k in ("name", "required_skills", "strategy", "offer_timeout_s")}
    body["supervisors"] = list(supervisors)
    assert (await stack.router.put(f"/v1/queues/{queue_id}", json=body)).status_code == 200
    await stack.escalate(
        SlaEscalated(
            ticket_id=ticket,
            metric="first_response",
            level=1,
            actions=["notify_supervisor"],
            at=datetime.now(UTC),
        )
    )
    return ticket


async def _count(browser: httpx.AsyncClient) -> int:
    answer = await browser.get("/notifications/unread-count")
    assert answer.status_code == 200
    count: int = answer.json()["unread"]
    return count


async def test_a_user_lists_their_notifications_and_marks_one_read_from_the_form(
    console_factory: Callable[..., Awaitable[Console]], kafka_bootstrap: str
) -> None:
    async with supervisor_stack(console_factory, kafka_bootstrap) as stack:
        ticket = await _escalation_for(stack, "sam", "lin")
        sam = await stack.signed_in("sam", "supervisor")
        assert await _count(sam) == 1
        page = await sam.get("/notifications")
        assert page.status_code == 200
        items = re.findall(r'<li data-notification="([^"]+)" class="unread">', page.text)
        assert len(items) == 1
        assert f'href="/tickets/{ticket}"' in page.text
        assert "Escalation" in page.text
        assert '<script src="/static/notifications.js" defer></script>' in page.text
        token = sam.headers["X-CSRF-Token"]
        request = sam.build_request(
            "POST",
            f"/notifications/{items[0]}/read",
            data={"csrf": token, "next": "/notifications"},
        )
        del request.headers["X-CSRF-Token"]
        answer = await sam.send(request)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/notifications"
        assert await _count(sam) == 0
        page = await sam.get("/notifications")
        assert f'<li data-notification="{items[0]}" class="">' in page.text
        assert (await sam.get("/notifications", params={"unread": "true"})).text.count(
            "<li data-notification"
        ) == 0
        # Lin's own notification of the same escalation is still unread.
        lin = await stack.router.get(
            "/v1/notifications", params={"unread": "true"}, headers=as_supervisor("lin")
        )
        assert len(lin.json()["items"]) == 1


async def test_a_script_marks_one_read_with_json_and_nobody_marks_anothers(
    console_factory: Callable[..., Awaitable[Console]], kafka_bootstrap: str
) -> None:
    async with supervisor_stack(console_factory, kafka_bootstrap) as stack:
        await _escalation_for(stack, "lin")
        lins = await stack.router.get("/v1/notifications", headers=as_supervisor("lin"))
        lin_id = lins.json()["items"][0]["id"]
        sam = await stack.signed_in("sam", "supervisor")
        amy = await stack.signed_in("amy", "agent", agent_id="amy")
        assert "<li data-notification" not in (await sam.get("/notifications")).text
        assert await _count(sam) == 0
        assert await _count(amy) == 0
        for browser in (sam, amy):
            answer = await browser.post(
                f"/notifications/{lin_id}/read", headers={"Accept": "application/json"}
            )
            assert answer.status_code == 404
            assert "text" not in answer.json()
        # Without the CSRF token: refused, and lin's stays unread.
        del sam.headers["X-CSRF-Token"]
        assert (await sam.post(f"/notifications/{lin_id}/read")).status_code == 403
        still = await stack.router.get(
            "/v1/notifications", params={"unread": "true"}, headers=as_supervisor("lin")
        )
        assert [n["id"] for n in still.json()["items"]] == [lin_id]


async def test_the_unread_count_follows_new_notifications(
    console_factory: Callable[..., Awaitable[Console]], kafka_bootstrap: str
) -> None:
    async with supervisor_stack(console_factory, kafka_bootstrap) as stack:
        sam = await stack.signed_in("sam", "supervisor")
        assert await _count(sam) == 0
        await _escalation_for(stack, "sam")
        await _escalation_for(stack, "sam")
        assert await _count(sam) == 2
        first = (await stack.router.get("/v1/notifications", headers=as_supervisor("sam"))).json()
        answer = await sam.post(
            f"/notifications/{first['items'][0]['id']}/read", headers={"Accept": "application/json"}
        )
        assert answer.status_code == 200
        assert answer.json()["read_at"] is not None
        assert await _count(sam) == 1
