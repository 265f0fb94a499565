"""The agent's workspace (`/agent`): their status (wrap-up with its countdown), their pending
offers with a countdown to each offer's expiry (accept, or decline with a reason), their tickets
and their queues' waiting tickets, sorted and filtered on the server.

Agents only: a supervisor is sent to the board. The router decides what the agent sees (their
offers, the tickets they may read); new offers arrive through the live stream, and the page's
script fetches the offers fragment (`/agent/offers`) again when one does."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from console.api.deps import NotAllowed, SignedIn, csrf_checked, render, signed_in
from console.api.tickets import (
    CHANNELS,
    OPEN_STATUSES,
    PRIORITIES,
    SORTS,
    ApiError,
    api_error,
    call,
    choice,
    duration,
    filter_tickets,
    sort_links,
    sort_tickets,
    when,
)

router = APIRouter(include_in_schema=False)

# The statuses an agent sets (wrap_up is the router's); the reasons an agent declines with.
SETTABLE_STATUSES = ("available", "away", "busy", "offline")
DECLINE_REASONS = ("busy_with_customer", "not_my_skill", "language", "break", "other")
MINE_FILTERS = ("open", "pending_customer", "resolved", "all")
_MINE_STATUSES = {
    "open": "assigned,in_progress,pending_customer",
    "pending_customer": "pending_customer",
    "resolved": "resolved,closed",
    "all": ",".join((*OPEN_STATUSES, "resolved", "closed")),
}


def _agent_id(who: SignedIn) -> str:
    """The router agent this user works as; a supervisor has none (their home is the board)."""
    if who.user.is_supervisor or not who.user.agent_id:
        raise NotAllowed
    return who.user.agent_id


async def _offers(request: Request, who: SignedIn, agent_id: str) -> list[dict[str, Any]]:
    answer = await call(request, who, "router", "GET", f"/v1/agents/{agent_id}/offers")
    offers: list[dict[str, Any]] = answer.json() if answer.status_code == 200 else []
    offers.sort(key=lambda o: str(o.get("expires_at")))
    return offers


async def _me(request: Request, who: SignedIn, agent_id: str) -> dict[str, Any] | None:
    answer = await call(request, who, "router", "GET", f"/v1/agents/{agent_id}")
    return answer.json() if answer.status_code == 200 else None


@router.get("/agent", summary="Agents: my status, my offers, my tickets and my queues' waiting")
async def agent_page(
    request: Request,
    who: SignedIn = Depends(signed_in),
    mine: str = Query(default="open", max_length=20),
    channel: str | None = Query(default=None, max_length=10),
    priority: str | None = Query(default=None, max_length=10),
    sort: str = Query(default="waiting", max_length=20),
    dir: str = Query(default="asc", max_length=4),
) -> Response:
    if who.user.is_supervisor:
        return RedirectResponse("/board", status_code=303)
    return await _page(
        request, who, mine=mine, channel=channel, priority=priority, sort=sort, dir=dir
    )


async def _page(
    request: Request,
    who: SignedIn,
    *,
    mine: str = "open",
    channel: str | None = None,
    priority: str | None = None,
    sort: str = "waiting",
    dir: str = "asc",
    error: ApiError | None = None,
    decline_error: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    agent_id = _agent_id(who)
    mine = choice(mine, MINE_FILTERS) or "open"
    me, offers, my_tickets, waiting = await asyncio.gather(
        _me(request, who, agent_id),
        _offers(request, who, agent_id),
        call(
            request,
            who,
            "router",
            "GET",
            "/v1/tickets",
            params={"agent_id": agent_id, "status": _MINE_STATUSES[mine], "limit": 200},
        ),
        call(
            request, who, "router", "GET", "/v1/tickets", params={"status": "queued", "limit": 200}
        ),
    )
    sort = choice(sort, SORTS) or "waiting"
    descending = dir == "desc"
    channel, priority = choice(channel, CHANNELS), choice(priority, PRIORITIES)

    def listed(answer: Any) -> list[dict[str, Any]]:
        items = answer.json()["items"] if answer.status_code == 200 else []
        return sort_tickets(filter_tickets(items, channel, priority), sort, descending)

    query = {"mine": mine, "channel": channel or "", "priority": priority or ""}
    return render(
        request,
        "agent/index.html",
        who,
        status_code=status_code,
        me=me,
        offers=offers,
        my_tickets=listed(my_tickets),
        waiting=listed(waiting),
        filters=query,
        sort=sort,
        descending=descending,
        links=sort_links("/agent", query, sort, descending),
        mine_filters=MINE_FILTERS,
        channels=CHANNELS,
        priorities=PRIORITIES,
        settable=SETTABLE_STATUSES,
        decline_reasons=DECLINE_REASONS,
        error=error,
        decline_error=decline_error,
        when=when,
        duration=duration,
    )


@router.get("/agent/offers", summary="Agents: my pending offers (an HTML fragment, for the page)")
async def offers_fragment(request: Request, who: SignedIn = Depends(signed_in)) -> Response:
    agent_id = _agent_id(who)
    return render(
        request,
        "agent/_offers.html",
        who,
        offers=await _offers(request, who, agent_id),
        decline_reasons=DECLINE_REASONS,
        decline_error=None,
        when=when,
    )


@router.get("/agent/status", summary="Agents: my status (an HTML fragment, for the page)")
async def status_fragment(request: Request, who: SignedIn = Depends(signed_in)) -> Response:
    agent_id = _agent_id(who)
    return render(
        request,
        "agent/_status.html",
        who,
        me=await _me(request, who, agent_id),
        settable=SETTABLE_STATUSES,
        when=when,
        duration=duration,
    )


@router.post("/agent/status", summary="Agents: set my status (available, away, busy, offline)")
async def set_status(request: Request, who: SignedIn = Depends(csrf_checked)) -> Response:
    agent_id = _agent_id(who)
    form = await request.form()
    status, reason = form.get("status"), form.get("reason")
    body: dict[str, str] = {"status": status if isinstance(status, str) else ""}
    if isinstance(reason, str) and reason.strip() and body["status"] in ("away", "offline"):
        body["reason"] = reason
    answer = await call(request, who, "router", "PUT", f"/v1/agents/{agent_id}/status", json=body)
    if answer.status_code != 200:
        return await _page(request, who, error=api_error(answer), status_code=answer.status_code)
    return RedirectResponse("/agent", status_code=303)


@router.post(
    "/agent/offers/{offer_id}/accept",
    summary="Agents: accept one of my offers, then work the ticket",
)
async def accept(
    offer_id: uuid.UUID, request: Request, who: SignedIn = Depends(csrf_checked)
) -> Response:
    _agent_id(who)
    answer = await call(request, who, "router", "POST", f"/v1/offers/{offer_id}/accept")
    if answer.status_code != 200:
        return await _page(request, who, error=api_error(answer), status_code=answer.status_code)
    return RedirectResponse(f"/tickets/{answer.json()['id']}", status_code=303)


@router.post(
    "/agent/offers/{offer_id}/decline",
    summary="Agents: decline one of my offers with a reason (and words of their own)",
)
async def decline(
    offer_id: uuid.UUID, request: Request, who: SignedIn = Depends(csrf_checked)
) -> Response:
    _agent_id(who)
    form = await request.form()
    code = form.get("reason")
    details = form.get("details")
    code = code if isinstance(code, str) and code in DECLINE_REASONS else ""
    details = details.strip()[:400] if isinstance(details, str) else ""
    reason = f"{code}: {details}" if code and details else (code or details)
    answer = await call(
        request, who, "router", "POST", f"/v1/offers/{offer_id}/decline", json={"reason": reason}
    )
    if answer.status_code != 200:
        problem = api_error(answer)
        return await _page(
            request,
            who,
            error=problem,
            decline_error={"offer_id": str(offer_id), "problem": problem, "details": details},
            status_code=answer.status_code,
        )
    return RedirectResponse("/agent", status_code=303)
