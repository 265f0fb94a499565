"""The supervisor screens: the live board (queues, agents, tickets at risk) and the KPI
dashboard with its CSV export. Supervisors only: an agent gets a 403 page and no data."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from console.api.deps import NotAllowed, SignedIn, parts_of, render, supervisor_signed_in
from console.apis import Apis, UpstreamUnavailable
from console.domain import board as boards
from console.domain.admin_forms import FieldErrors, field_errors
from console.domain.kpi_charts import charts, value_text
from console.domain.users import User

router = APIRouter(include_in_schema=False)

# How many at-risk or breached tickets the board reads from the router (for their subject and
# escalation level: one call each, concurrently).
BOARD_RISK_DETAILS = 25
GROUPINGS = ("day", "queue", "agent", "channel", "category")
DEFAULT_RANGE_DAYS = 30


def answer_json(response: httpx.Response) -> Any:
    """The API's JSON; its 403 (and 401) is the console's 403 page, anything else not 2xx
    is the 'service did not answer' page."""
    if response.status_code in (401, 403):
        raise NotAllowed
    if not response.is_success:
        raise UpstreamUnavailable(f"{response.request.url.path}: {response.status_code}")
    return response.json()


async def board_of(apis: Apis, user: User) -> boards.Board:
    queues_r, agents_r, offered_r, risk_r = await asyncio.gather(
        apis.get(user, "router", "/v1/queues"),
        apis.get(user, "router", "/v1/agents"),
        apis.get(user, "router", "/v1/tickets", {"status": "assigned", "limit": 500}),
        apis.get(user, "sla", "/v1/at-risk", {"limit": 200}),
    )
    queues, agents = answer_json(queues_r), answer_json(agents_r)
    offered = answer_json(offered_r)
    at_risk = answer_json(risk_r)["items"]
    wanted: list[str] = []
    for item in at_risk:
        ticket_id = str(item["ticket_id"])
        if item.get("status") in ("at_risk", "breached") and ticket_id not in wanted:
            wanted.append(ticket_id)
    wanted = wanted[:BOARD_RISK_DETAILS]
    details = await asyncio.gather(
        *(apis.get(user, "router", f"/v1/tickets/{ticket_id}") for ticket_id in wanted)
    )
    tickets = {tid: r.json() for tid, r in zip(wanted, details, strict=True) if r.is_success}
    return boards.Board(
        queues=boards.queue_rows(
            queues, agents, offered["items"], offered_complete=offered.get("next_cursor") is None
        ),
        risks=boards.risk_rows(at_risk, tickets),
        agents_total=boards.agent_totals(agents),
    )


def _board_context(board: boards.Board) -> dict[str, Any]:
    return {
        "board": board,
        "statuses": boards.AGENT_STATUSES,
        "duration": boards.duration_text,
        "as_of": datetime.now(UTC).strftime("%H:%M:%S UTC"),
    }


@router.get("/board", summary="Supervisors: the board (queues, agents, tickets at risk)")
async def board_page(request: Request, who: SignedIn = Depends(supervisor_signed_in)) -> Response:
    found = await board_of(parts_of(request).apis, who.user)
    return render(request, "supervisor/board.html", who, **_board_context(found))


@router.get(
    "/board/fragment",
    summary="Supervisors: the board's tables alone, for the page's live refresh",
)
async def board_fragment(
    request: Request, who: SignedIn = Depends(supervisor_signed_in)
) -> Response:
    found = await board_of(parts_of(request).apis, who.user)
    return render(request, "supervisor/board_fragment.html", who, **_board_context(found))


def _range(
    first: str | None, last: str | None, group_by: str | None
) -> tuple[dict[str, str], FieldErrors]:
    """The dashboard's filters (defaults: the last 30 days by day) and the errors of those the
    console can tell are wrong before asking feedback."""
    errors = FieldErrors()
    today = datetime.now(UTC).date()
    values = {
        "from": first or (today - timedelta(days=DEFAULT_RANGE_DAYS - 1)).isoformat(),
        "to": last or today.isoformat(),
        "group_by": group_by if group_by in GROUPINGS else "day",
    }
    for name in ("from", "to"):
        try:
            date.fromisoformat(values[name])
        except ValueError:
            errors.fields.setdefault(name, []).append("YYYY-MM-DD")
    if group_by is not None and group_by not in GROUPINGS:
        errors.fields.setdefault("group_by", []).append(", ".join(GROUPINGS))
    return values, errors


@router.get("/kpis", summary="Supervisors: the KPI dashboard (charts with targets, tables)")
async def kpis_page(
    request: Request,
    who: SignedIn = Depends(supervisor_signed_in),
    first: str | None = Query(default=None, alias="from", max_length=10),
    last: str | None = Query(default=None, alias="to", max_length=10),
    group_by: str | None = Query(default=None, max_length=20),
) -> Response:
    filters, errors = _range(first, last, group_by)
    report: dict[str, Any] | None = None
    if not errors:
        response = await parts_of(request).apis.get(who.user, "feedback", "/v1/kpis", filters)
        if response.status_code == 422:
            errors = field_errors(response.json())
        else:
            report = answer_json(response)
    return render(
        request,
        "supervisor/kpis.html",
        who,
        status_code=422 if errors else 200,
        filters=filters,
        groupings=GROUPINGS,
        errors=errors,
        report=report,
        charts=charts(report["groups"]) if report else [],
        value_text=value_text,
    )


@router.get("/kpis.csv", summary="Supervisors: the KPI figures of the dashboard's filters, as CSV")
async def kpis_csv(
    request: Request,
    who: SignedIn = Depends(supervisor_signed_in),
    first: str | None = Query(default=None, alias="from", max_length=10),
    last: str | None = Query(default=None, alias="to", max_length=10),
    group_by: str | None = Query(default=None, max_length=20),
) -> Response:
    filters, errors = _range(first, last, group_by)
    if errors:
        return Response("invalid filters\n", status_code=422, media_type="text/plain")
    response = await parts_of(request).apis.get(who.user, "feedback", "/v1/kpis.csv", filters)
    if response.status_code == 422:
        return Response(response.content, status_code=422, media_type="application/problem+json")
    if response.status_code in (401, 403):
        raise NotAllowed
    if not response.is_success:
        raise UpstreamUnavailable(f"feedback: {response.status_code}")
    disposition = response.headers.get(
        "content-disposition", f'attachment; filename="kpis_{filters["group_by"]}.csv"'
    )
    return Response(
        response.content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )
