"""Tickets: the list (agents and supervisors: whatever the router lets each read) and one
ticket's workspace — the conversation, the customer card, the SLA clocks, why it went to whom,
its history — with the actions an agent takes on it (reply, note, pending, transfer, resolve,
reopen) as forms that POST here, are passed to the router, and come back with a 303.

Authorisation is the APIs': every call carries the user's own token, so an agent asking for
another agent's ticket gets the router's 404 (or 403), which the page passes on with nothing of
the ticket. An API's 422 field errors are shown next to the field they name; the text the user
typed stays in the box."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from console.api.deps import SignedIn, csrf_checked, parts_of, render, signed_in
from console.apis import CONSOLE_READER, Service, UpstreamUnavailable

router = APIRouter(include_in_schema=False)

OPEN_STATUSES = ("new", "queued", "assigned", "in_progress", "pending_customer")
ALL_STATUSES = (*OPEN_STATUSES, "resolved", "closed")
CHANNELS = ("phone", "email", "chat", "social")
PRIORITIES = ("urgent", "high", "normal", "low")
_PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}
SORTS = ("waiting", "priority", "sla", "subject", "customer", "status")
_ALL = {"limit": 500}  # a conversation's messages on one page (the API's most)
MAX_TEXT = 65_536  # the router's default ROUTER_MESSAGE_MAX_BYTES; the router has the last word


# --- calling the APIs ------------------------------------------------------------------------


@dataclass
class ApiError:
    """An API's refusal as a page shows it: its status, its detail, and its field errors by the
    field's last name (`body.text` → `text`)."""

    status: int
    detail: str
    fields: dict[str, str] = field(default_factory=dict)


def api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    fields: dict[str, str] = {}
    for err in body.get("errors") or []:
        if not isinstance(err, dict):
            continue
        where = err.get("field") or ".".join(str(p) for p in err.get("loc") or ())
        name = str(where).rsplit(".", 1)[-1] if where else "_"
        fields.setdefault(name, str(err.get("message", "")))
    detail = body.get("detail") or body.get("title") or response.reason_phrase
    return ApiError(response.status_code, str(detail), fields)


async def call(
    request: Request,
    who: SignedIn,
    service: Service,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    return await parts_of(request).apis.request(
        who.user, service, method, path, json=json, params=params
    )


def refused_page(request: Request, who: SignedIn, status: int) -> Response:
    """The answer to a ticket the API will not show: its status, none of its data."""
    message = {
        403: "error.forbidden",
        404: "tickets.not_found",
    }.get(status, "tickets.api_failed")
    code = status if status in (403, 404) else 502
    return render(request, "error.html", who, status_code=code, message=message)


# --- presenting --------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: Any) -> str:
    """A time as people read it on the floor: 2026-12-03 09:12 UTC."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if parsed else ""


def duration(seconds: float | None) -> str:
    """12 s, 4 min 05 s, 2 h 03 min (negative: overdue, shown with a minus)."""
    if seconds is None:
        return ""
    sign = "-" if seconds < 0 else ""
    left = int(abs(seconds))
    if left < 60:
        return f"{sign}{left} s"
    if left < 3600:
        return f"{sign}{left // 60} min {left % 60:02d} s"
    return f"{sign}{left // 3600} h {left % 3600 // 60:02d} min"


def sort_tickets(
    tickets: list[dict[str, Any]], sort: str, descending: bool
) -> list[dict[str, Any]]:
    """Sorted by one column; missing values (no SLA deadline, no name) always last."""

    def key(ticket: dict[str, Any]) -> tuple[int, Any]:
        summary = ticket.get("summary") or {}
        value: Any
        if sort == "priority":
            value = _PRIORITY_RANK.get(str(summary.get("priority") or ticket.get("priority")), 9)
        elif sort == "sla":
            value = parse_time(summary.get("sla_deadline"))
        elif sort == "subject":
            value = (summary.get("subject") or "").casefold() or None
        elif sort == "customer":
            value = (summary.get("customer_name") or "").casefold() or None
        elif sort == "status":
            value = ticket.get("status")
        else:
            value = parse_time(summary.get("waiting_since"))
        return (0, value) if value is not None else (1, 0)

    present = [t for t in tickets if key(t)[0] == 0]
    missing = [t for t in tickets if key(t)[0] == 1]
    present.sort(key=key, reverse=descending)
    return present + missing


def filter_tickets(
    tickets: list[dict[str, Any]], channel: str | None, priority: str | None
) -> list[dict[str, Any]]:
    return [
        t
        for t in tickets
        if (not channel or t.get("channel") == channel)
        and (
            not priority or (t.get("summary") or {}).get("priority", t.get("priority")) == priority
        )
    ]


def sort_links(base: str, params: dict[str, str], sort: str, descending: bool) -> dict[str, Any]:
    """For each sortable column: the link that sorts by it (again: the other way), and its
    aria-sort value."""
    links: dict[str, Any] = {}
    for column in SORTS:
        current = column == sort
        flip = "asc" if current and descending else ("desc" if current else "asc")
        query = {k: v for k, v in params.items() if v and k not in ("sort", "dir", "cursor")}
        query |= {"sort": column, "dir": flip}
        links[column] = {
            "href": f"{base}?{urlencode(query)}",
            "aria": ("descending" if descending else "ascending") if current else "none",
        }
    return links


def choice(value: str | None, allowed: tuple[str, ...]) -> str | None:
    return value if value in allowed else None


# --- the list ----------------------------------------------------------------------------------


@router.get(
    "/tickets",
    summary="Signed-in users: the tickets the router lets them read, filtered and sorted",
)
async def tickets_page(
    request: Request,
    who: SignedIn = Depends(signed_in),
    status: str | None = Query(default=None, max_length=20),
    queue_id: str | None = Query(default=None, max_length=64),
    agent_id: str | None = Query(default=None, max_length=64),
    channel: str | None = Query(default=None, max_length=10),
    priority: str | None = Query(default=None, max_length=10),
    sort: str = Query(default="waiting", max_length=20),
    dir: str = Query(default="asc", max_length=4),
    cursor: str | None = Query(default=None, max_length=500),
) -> Response:
    status_filter = choice(status, (*ALL_STATUSES, "open")) or "open"
    params: dict[str, Any] = {"limit": 200}
    params["status"] = ",".join(OPEN_STATUSES) if status_filter == "open" else status_filter
    if queue_id:
        params["queue_id"] = queue_id
    if agent_id:
        params["agent_id"] = agent_id
    if cursor:
        params["cursor"] = cursor
    answer, queues = await asyncio.gather(
        call(request, who, "router", "GET", "/v1/tickets", params=params),
        call(request, who, "router", "GET", "/v1/queues"),
    )
    error = None if answer.status_code == 200 else api_error(answer)
    page = answer.json() if answer.status_code == 200 else {"items": [], "next_cursor": None}
    sort = choice(sort, SORTS) or "waiting"
    descending = dir == "desc"
    channel, priority = choice(channel, CHANNELS), choice(priority, PRIORITIES)
    items = sort_tickets(filter_tickets(page["items"], channel, priority), sort, descending)
    query = {
        "status": status_filter,
        "queue_id": queue_id or "",
        "agent_id": agent_id or "",
        "channel": channel or "",
        "priority": priority or "",
    }
    next_link = None
    if page.get("next_cursor"):
        next_link = "/tickets?" + urlencode(
            {k: v for k, v in query.items() if v}
            | {"sort": sort, "dir": dir, "cursor": page["next_cursor"]}
        )
    return render(
        request,
        "tickets/list.html",
        who,
        tickets=items,
        error=error,
        filters=query,
        sort=sort,
        descending=descending,
        links=sort_links("/tickets", query, sort, descending),
        queues=queues.json() if queues.status_code == 200 else [],
        statuses=("open", *ALL_STATUSES),
        channels=CHANNELS,
        priorities=PRIORITIES,
        next_link=next_link,
        when=when,
    )


# --- one ticket --------------------------------------------------------------------------------


async def _json_or(response: httpx.Response | None, default: Any) -> Any:
    return response.json() if response is not None and response.status_code == 200 else default


async def _optional(call_: Awaitable[httpx.Response]) -> httpx.Response | None:
    """A part of the page that may be missing (the SLA service down): None, not a 502."""
    try:
        return await call_
    except UpstreamUnavailable:
        return None


async def ticket_page(
    request: Request,
    who: SignedIn,
    ticket_id: uuid.UUID,
    *,
    errors: dict[str, ApiError] | None = None,
    values: dict[str, dict[str, str]] | None = None,
    status_code: int = 200,
    canned_id: str | None = None,
) -> Response:
    """The ticket's page; `errors` and `values` by form (reply, note, ...) after a refused
    action, so the form shows what was wrong next to the field and keeps what was typed."""
    found = await call(request, who, "router", "GET", f"/v1/tickets/{ticket_id}")
    if found.status_code != 200:
        return refused_page(request, who, found.status_code)
    ticket = found.json()
    tid = ticket["id"]
    messages, customer, canned, queues, agents, sla = await asyncio.gather(
        _optional(call(request, who, "router", "GET", f"/v1/tickets/{tid}/messages", params=_ALL)),
        _optional(
            call(
                request,
                who,
                "router",
                "GET",
                f"/v1/customers/{ticket['customer_id']}",
                params={"tickets_limit": 10, "contacts_limit": 5},
            )
        ),
        _optional(call(request, who, "router", "GET", "/v1/canned-responses")),
        _optional(call(request, who, "router", "GET", "/v1/queues")),
        _optional(call(request, who, "router", "GET", "/v1/agents")),
        # The router has just shown this ticket to this user: its clocks may be read for them.
        _optional(
            parts_of(request).apis.request(
                who.user if who.user.is_supervisor else CONSOLE_READER,
                "sla",
                "GET",
                f"/v1/tickets/{tid}/sla",
            )
        ),
    )
    values = dict(values or {})
    if canned_id and "reply" not in values:
        try:
            cid = uuid.UUID(canned_id)
        except ValueError:
            cid = None
        if cid is not None:
            rendered = await _optional(
                call(
                    request,
                    who,
                    "router",
                    "POST",
                    f"/v1/tickets/{tid}/canned-responses/{cid}/render",
                )
            )
            if rendered is not None and rendered.status_code == 200:
                values["reply"] = {"text": rendered.json()["text"], "canned_response_id": str(cid)}
    canned_list = await _json_or(canned, [])
    ticket_queue = ticket.get("queue_id")
    canned_list.sort(key=lambda c: (c.get("queue_id") != ticket_queue, c.get("title", "")))
    user_agent = who.user.agent_id if not who.user.is_supervisor else None
    holds = who.user.is_supervisor or user_agent in (
        ticket.get("assignee_agent_id"),
        ticket.get("owner_agent_id"),
    )
    pending_offer = next(
        (
            o
            for o in ticket.get("offers") or []
            if o.get("status") == "pending" and o.get("agent_id") == user_agent
        ),
        None,
    )
    return render(
        request,
        "tickets/detail.html",
        who,
        status_code=status_code,
        ticket=ticket,
        messages=(await _json_or(messages, {"items": []}))["items"],
        customer=await _json_or(customer, None),
        canned=canned_list,
        queues=await _json_or(queues, []),
        agents=[a for a in await _json_or(agents, []) if a.get("role", "agent") == "agent"],
        sla=await _json_or(sla, None),
        holds=holds,
        pending_offer=pending_offer,
        errors=errors or {},
        values=values,
        when=when,
        duration=duration,
        now=datetime.now(UTC).isoformat(),
    )


@router.get(
    "/tickets/{ticket_id}",
    summary="Signed-in users: one ticket they may read (else the router's 404/403, no data)",
)
async def ticket_detail(
    ticket_id: uuid.UUID,
    request: Request,
    who: SignedIn = Depends(signed_in),
    canned: str | None = Query(default=None, max_length=64),
) -> Response:
    return await ticket_page(request, who, ticket_id, canned_id=canned)


@router.get(
    "/tickets/{ticket_id}/canned-responses/{canned_id}",
    summary="Signed-in users: a canned response filled in for the ticket (JSON, for the page)",
)
async def canned_rendered(
    ticket_id: uuid.UUID,
    canned_id: uuid.UUID,
    request: Request,
    who: SignedIn = Depends(signed_in),
) -> Response:
    answer = await call(
        request,
        who,
        "router",
        "POST",
        f"/v1/tickets/{ticket_id}/canned-responses/{canned_id}/render",
    )
    if answer.status_code != 200:
        problem = api_error(answer)
        return JSONResponse(
            {"status": problem.status, "detail": problem.detail}, status_code=problem.status
        )
    return JSONResponse(answer.json(), headers={"Cache-Control": "no-store"})


# --- actions -----------------------------------------------------------------------------------


def _text(form: Any, name: str, limit: int = MAX_TEXT * 4) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _act(
    request: Request,
    who: SignedIn,
    ticket_id: uuid.UUID,
    form_name: str,
    path: str,
    body: dict[str, Any],
    values: dict[str, str],
    *,
    anchor: str = "",
) -> Response:
    """Passes an action to the router; back to the ticket (303) when it is done, else the page
    again with the API's errors next to the form's fields (and what was typed)."""
    answer = await call(
        request, who, "router", "POST", f"/v1/tickets/{ticket_id}/{path}", json=body
    )
    if answer.status_code in (200, 201):
        return RedirectResponse(f"/tickets/{ticket_id}{anchor}", status_code=303)
    if answer.status_code == 404:
        return refused_page(request, who, 404)
    problem = api_error(answer)
    status = problem.status if problem.status in (403, 409, 413, 422) else 502
    return await ticket_page(
        request,
        who,
        ticket_id,
        errors={form_name: problem},
        values={form_name: values},
        status_code=status,
    )


@router.post(
    "/tickets/{ticket_id}/reply",
    summary="Agents (their tickets) and supervisors (in an agent's name): reply to the customer",
)
async def reply(
    ticket_id: uuid.UUID, request: Request, who: SignedIn = Depends(csrf_checked)
) -> Response:
    form = await request.form()
    text = _text(form, "text")
    body: dict[str, Any] = {"text": text}
    canned_id = _text(form, "canned_response_id", 64)
    if canned_id:
        body["canned_response_id"] = canned_id
    agent_id = _text(form, "agent_id", 64)
    if who.user.is_supervisor and agent_id:
        body["agent_id"] = agent_id
    values = {"text": text, "canned_response_id": canned_id, "agent_id": agent_id}
    return await _act(
        request, who, ticket_id, "reply", "reply", body, values, anchor="#conversation"
    )


@router.post(
    "/tickets/{ticket_id}/notes",
    summary="Signed-in users who may read the ticket: an internal note (@agent mentions)",
)
async def note(
    ticket_id: uuid.UUID, request: Request, who: SignedIn = Depends(csrf_checked)
) -> Response:
    text = _text(await request.form(), "text")
    return await _act(
        request,
        who,
        ticket_id,
        "note",
        "notes",
        {"text": text},
        {"text": text},
        anchor="#conversation",
    )


@router.post(
    "/tickets/{ticket_id}/pending",
    summary="Agents (their tickets) and supervisors: wait for the customer",
)
async def pending(
    ticket_id: uuid.UUID, request: Request, who: SignedIn = Depends(csrf_checked)
) -> Response:
    reason = _text(await request.form(), "reason", 600)
    body = {"reason": reason or None}
    return await _act(request, who, ticket_id, "pending", "pending", body, {"reason": reason})


@router.post(
    "/tickets/{ticket_id}/reopen",
    summary="Agents (their tickets) and supervisors: reopen a resolved ticket",
)
async def reopen(
    ticket_id: uuid.UUID, request: Request, who: SignedIn = Depends(csrf_checked)
) -> Response:
    reason = _text(await request.form(), "reason", 600)
    body = {"reason": reason or None}
    return await _act(request, who, ticket_id, "reopen", "reopen", body, {"reason": reason})


@router.post(
    "/tickets/{ticket_id}/transfer",
    summary="Agents (their tickets) and supervisors: transfer to a queue or an agent",
)
async def transfer(
    ticket_id: uuid.UUID, request: Request, who: SignedIn = Depends(csrf_checked)
) -> Response:
    form = await request.form()
    to_queue = _text(form, "to_queue_id", 64)
    to_agent = _text(form, "to_agent_id", 64)
    reason = _text(form, "reason", 600)
    body: dict[str, Any] = {"reason": reason}
    if to_queue:
        body["to_queue_id"] = to_queue
    if to_agent:
        body["to_agent_id"] = to_agent
    values = {"to_queue_id": to_queue, "to_agent_id": to_agent, "reason": reason}
    return await _act(request, who, ticket_id, "transfer", "transfer", body, values)


@router.post(
    "/tickets/{ticket_id}/resolve",
    summary="Agents (their tickets) and supervisors: resolve, saying if on first contact",
)
async def resolve(
    ticket_id: uuid.UUID, request: Request, who: SignedIn = Depends(csrf_checked)
) -> Response:
    form = await request.form()
    code = _text(form, "resolution_code", 200)
    fcr = _text(form, "first_contact_resolution", 10)
    body: dict[str, Any] = {"resolution_code": code}
    if fcr in ("yes", "no"):
        body["first_contact_resolution"] = fcr == "yes"
    values = {"resolution_code": code, "first_contact_resolution": fcr}
    return await _act(request, who, ticket_id, "resolve", "resolve", body, values)
