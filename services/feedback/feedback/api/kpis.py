"""KPIs for a date range, grouped by queue, agent, channel, category or day; JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from ccshared.problem_handlers import problem_responses
from ccshared.problems import FieldError, Problem
from ccshared.user_auth import AUTH_RESPONSES, supervisor
from feedback.api.deps import engine_of, wants
from feedback.api.schemas import KpiFigures, KpiGroup, KpiReport
from feedback.db.kpis import exact_p90s, kpi_sums
from feedback.domain.kpis import KPI_FIELDS, kpis_of, spreadsheet_text, total

router = APIRouter(
    prefix="/v1",
    tags=["kpis"],
    dependencies=[Depends(supervisor)],
    responses=AUTH_RESPONSES,
)

GroupBy = Literal["queue", "agent", "channel", "category", "day"]
MAX_RANGE_DAYS = 3_660
_DESCRIPTION = (
    "Tickets count on the UTC day they were resolved, with their queue, agent, channel and "
    "category at resolution; their survey answer, SLA outcomes and escalations count with "
    "them. Ratios are 0–1 (NPS in points, −100 to 100); null when there is nothing to divide by."
)
_RESPONSES = {
    200: {"content": {"text/csv": {}}, "description": "The figures (CSV on Accept: text/csv)"},
    **problem_responses({422: "Invalid range or grouping; `errors` names the parameter"}),
}


async def _report(
    request: Request, first: date, last: date, group_by: str, exact: bool = False
) -> KpiReport:
    if last < first:
        raise Problem(
            "`to` is before `from`.",
            status=422,
            slug="validation-error",
            errors=[FieldError(field="query.to", message="must not be before from", type="range")],
        )
    if (last - first).days > MAX_RANGE_DAYS:
        raise Problem(
            f"The range may span at most {MAX_RANGE_DAYS} days.",
            status=422,
            slug="validation-error",
            errors=[FieldError(field="query.to", message="range too long", type="range")],
        )
    async with engine_of(request).connect() as conn:
        groups = await kpi_sums(conn, first, last, group_by, histograms=not exact)
        p90s: dict[str, tuple[float | None, float | None]] = {}
        overall: tuple[float | None, float | None] | None = None
        if exact:
            p90s, overall = await exact_p90s(conn, first, last, group_by)
    return KpiReport(
        first=first.isoformat(),
        last=last.isoformat(),
        group_by=group_by,
        groups=[
            KpiGroup(
                key=key,
                **vars(kpis_of(sums, p90s.get(key, (None, None)) if exact else None)),
            )
            for key, sums in groups
        ],
        total=KpiFigures(**vars(kpis_of(total(s for _, s in groups), overall))),
    )


def _csv(report: KpiReport) -> Response:
    """Group keys (queue, agent, category names: anyone's text) are neutralised against formula
    injection; figures are numbers and written as such."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([report.group_by, *KPI_FIELDS])
    rows: list[tuple[str, KpiFigures]] = [(g.key, g) for g in report.groups]
    rows.append(("total", report.total))
    for key, figures in rows:
        values = [getattr(figures, name) for name in KPI_FIELDS]
        writer.writerow([spreadsheet_text(key), *("" if v is None else v for v in values)])
    filename = f"kpis_{report.group_by}_{report.first}_{report.last}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


FromDay = Query(alias="from", description="First UTC day, inclusive (YYYY-MM-DD)")
ToDay = Query(alias="to", description="Last UTC day, inclusive (YYYY-MM-DD)")
ExactPercentiles = Query(
    default=False,
    description=(
        "false (default): p90s from the rollups' histograms, fast at any volume: the bound of "
        "the ~10% bucket holding the exact p90 (never below it, at most 10% + 1 s above). "
        "true: the exact nearest-rank p90 over the range's tickets (reads every ticket of the "
        "range: ~0.2 s for 170,000 tickets)."
    ),
)


@router.get(
    "/kpis",
    response_model=KpiReport,
    summary="KPIs for a date range, grouped",
    description=_DESCRIPTION,
    responses=_RESPONSES,
)
async def get_kpis(
    request: Request,
    first: date = FromDay,
    last: date = ToDay,
    group_by: GroupBy = "queue",
    exact_percentiles: bool = ExactPercentiles,
) -> Response:
    report = await _report(request, first, last, group_by, exact_percentiles)
    if wants(request, "text/csv"):
        return _csv(report)
    return JSONResponse(report.model_dump(mode="json", by_alias=True))


@router.get(
    "/kpis.csv",
    summary="KPIs for a date range as CSV",
    description=_DESCRIPTION,
    responses=_RESPONSES,
    response_class=Response,
)
async def get_kpis_csv(
    request: Request,
    first: date = FromDay,
    last: date = ToDay,
    group_by: GroupBy = "queue",
    exact_percentiles: bool = ExactPercentiles,
) -> Response:
    return _csv(await _report(request, first, last, group_by, exact_percentiles))
