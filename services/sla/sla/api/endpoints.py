"""A ticket's deadlines and timeline, the at-risk list and attainment.

Who reads what: this service does not know who holds a ticket (router.tickets does not say on
every change, and an agent's queues are the router's), so a ticket's clocks and the at-risk
list are a supervisor's; to an agent a ticket's SLA is a 404, as if it were not tracked, and the
at-risk list a 403. Attainment (counts per queue, channel or priority) names no ticket.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ccshared.auth import Principal
from ccshared.problem_handlers import problem_responses
from ccshared.problems import NotFound
from ccshared.user_auth import (
    AUTH_RESPONSES,
    principal,
    reads_open_writes_supervised,
    supervisor,
)
from sla.api.deps import configs, engine_of
from sla.api.errors import unprocessable
from sla.api.schemas import (
    AtRiskClock,
    AtRiskList,
    Attainment,
    AttainmentRow,
    MetricView,
    TicketSlaView,
    TimelineEntryView,
)
from sla.db.clocks import clocks_from_json
from sla.db.outcomes import AttainmentGroup, attainment_counts
from sla.db.tickets import get_ticket, tickets_due_first
from sla.domain.clock import SlaClock

router = APIRouter(
    prefix="/v1",
    tags=["deadlines"],
    dependencies=[Depends(reads_open_writes_supervised)],
    responses=AUTH_RESPONSES,
)


def _metric_view(clock: SlaClock, now: datetime) -> MetricView:
    clock.observe(now)  # records the warning and breach reached by now (not saved)
    return MetricView(
        metric=clock.metric,
        status=clock.status(now),
        state=clock.state,
        cycle=clock.cycle,
        target_s=clock.target.total_seconds(),
        consumed_s=clock.consumed_at(now).total_seconds(),
        remaining_s=clock.remaining_at(now).total_seconds(),
        deadline=clock.deadline,
        warning_at=clock.warning_at,
        calendar_id=clock.calendar.id,
        timeline=[
            TimelineEntryView(
                kind=e.kind,
                at=e.at,
                cycle=e.cycle,
                consumed_s=e.consumed.total_seconds(),
                deadline=e.deadline,
                note=e.note,
            )
            for e in clock.timeline
        ],
    )


@router.get(
    "/tickets/{ticket_id}/sla",
    response_model=TicketSlaView,
    summary="A ticket's deadlines, remaining business time and per-metric timeline (supervisor)",
    responses=problem_responses(
        {404: "The SLA service has not seen this ticket, or the caller is an agent"}
    ),
)
async def ticket_sla(
    ticket_id: uuid.UUID, request: Request, user: Principal = Depends(principal)
) -> TicketSlaView:
    untracked = NotFound(f"No SLA is tracked for ticket {ticket_id}.")
    if not user.is_supervisor:
        raise untracked  # the same answer as for a ticket never seen: existence does not leak
    async with engine_of(request).connect() as conn:
        row = await get_ticket(conn, ticket_id)
        if row is None:
            raise untracked
        config = await configs(request).get(conn)
    ticket = clocks_from_json(row.ticket_id, row.clocks, row.agent_replied, config.calendar)
    now = datetime.now(UTC)
    return TicketSlaView(
        ticket_id=row.ticket_id,
        status=row.status,
        policy_id=row.policy_id,
        policy_version=row.policy_version,
        priority=row.priority,
        channel=row.channel,
        category=row.category,
        queue_id=row.queue_id,
        segment=row.segment,
        opened_at=row.opened_at,
        as_of=now,
        metrics=[_metric_view(c, now) for c in ticket.clocks.values()],
    )


@router.get(
    "/at-risk",
    response_model=AtRiskList,
    summary="Running clocks of open tickets, the least time left first (supervisor)",
    dependencies=[Depends(supervisor)],
)
async def at_risk(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    queue_id: Annotated[str | None, Query(max_length=200)] = None,
) -> AtRiskList:
    async with engine_of(request).connect() as conn:
        rows = await tickets_due_first(conn, limit, queue_id)
        config = await configs(request).get(conn)
    now = datetime.now(UTC)
    items: list[AtRiskClock] = []
    # Each ticket's earliest deadline orders the rows, so the `limit` most urgent clocks are
    # among the clocks of the first `limit` tickets.
    for row in rows:
        ticket = clocks_from_json(row.ticket_id, row.clocks, row.agent_replied, config.calendar)
        for clock in ticket.clocks.values():
            if clock.state != "running" or clock.deadline is None:
                continue
            items.append(
                AtRiskClock(
                    ticket_id=row.ticket_id,
                    metric=clock.metric,
                    status=clock.status(now),
                    deadline=clock.deadline,
                    remaining_s=clock.remaining_at(now).total_seconds(),
                    policy_id=row.policy_id,
                    policy_version=row.policy_version,
                    priority=row.priority,
                    queue_id=row.queue_id,
                )
            )
    items.sort(key=lambda c: (c.deadline, c.remaining_s))
    return AtRiskList(as_of=now, items=items[:limit])


@router.get(
    "/attainment",
    response_model=Attainment,
    summary="Share of SLA targets met, per queue, channel or priority, over a time range",
    description=(
        "Counts each clock that settled in [from, to): met (fulfilled by its deadline) or "
        "breached (its deadline passed). Clocks cancelled without an outcome are not counted."
    ),
    responses=problem_responses({422: "Missing or invalid range; `errors` names the field"}),
)
async def attainment(
    request: Request,
    from_: Annotated[datetime, Query(alias="from", description="Inclusive, with a time zone")],
    to: Annotated[datetime, Query(description="Exclusive, with a time zone")],
    group_by: AttainmentGroup = "queue",
) -> Attainment:
    for name, value in (("query.from", from_), ("query.to", to)):
        if value.tzinfo is None:
            raise unprocessable(name, "needs a time zone, e.g. 2025-01-01T00:00:00Z")
    if to <= from_:
        raise unprocessable("query.to", "must be after from")
    async with engine_of(request).connect() as conn:
        rows = await attainment_counts(conn, from_, to, group_by)
    return Attainment(
        from_=from_,
        to=to,
        group_by=group_by,
        rows=[
            AttainmentRow(
                group=r.grp,
                metric=r.metric,
                met=r.met,
                breached=r.breached,
                total=r.met + r.breached,
                attainment=r.met / (r.met + r.breached),
            )
            for r in rows
        ],
    )
