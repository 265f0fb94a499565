"""Reading the KPI rollups for a date range, grouped by one dimension or by day: the rollup
rows plus the deltas not yet folded into them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from feedback.domain.kpis import HIST_COLUMNS, SUM_COLUMNS, KpiSums

_SUMS = [f"sum({c}) AS {c}" for c in SUM_COLUMNS]
_HISTOGRAMS = [f"int_array_sum({c}) AS {c}" for c in HIST_COLUMNS]


def _rows(columns: list[str], where: str) -> str:
    """The rollup rows and the deltas not folded into them yet (feedback.db.facts), as one set:
    both read in the statement's one snapshot, so a fold is seen whole or not at all."""
    selected = ", ".join(["day", "value", *columns])
    return (
        f"(SELECT {selected} FROM kpi_rollup WHERE {where} "  # noqa: S608 - fixed columns
        f"UNION ALL SELECT {selected} FROM kpi_rollup_delta WHERE {where}) AS r"
    )


def _queries(histograms: bool) -> tuple[Any, Any]:
    # Adding the histograms is most of a query's time: skip it when p90s are computed exactly.
    aggregates = ", ".join(_SUMS + (_HISTOGRAMS if histograms else []))
    columns = list(SUM_COLUMNS) + (list(HIST_COLUMNS) if histograms else [])
    value_rows = _rows(columns, "dimension = :dimension AND day BETWEEN :first AND :last")
    day_rows = _rows(columns, "dimension = 'all' AND day BETWEEN :first AND :last")
    by_value = text(
        f"SELECT value AS grp, {aggregates} FROM {value_rows} "  # noqa: S608 - fixed columns
        "GROUP BY value ORDER BY value"
    )
    by_day = text(
        f"SELECT day::text AS grp, {aggregates} FROM {day_rows} "  # noqa: S608 - fixed columns
        "GROUP BY day ORDER BY day"
    )
    return by_value, by_day


_WITH_HISTOGRAMS = _queries(True)
_WITHOUT_HISTOGRAMS = _queries(False)
_BY_VALUE, _BY_DAY = _WITH_HISTOGRAMS


# Exact nearest-rank p90s from the ticket facts (percentile_disc is nearest-rank), for the
# groups and, in the row whose group is NULL, for the whole range. The rollups' histograms
# could only bound them to within a bucket.
_GROUP_EXPRESSIONS = {
    "day": "(resolved_at AT TIME ZONE 'UTC')::date::text",
    "queue": "coalesce(queue_id, '(none)')",
    "agent": "coalesce(agent_id, '(none)')",
    "channel": "coalesce(channel, '(none)')",
    "category": "coalesce(category, '(none)')",
}
_P90 = (
    "SELECT g, "
    " extract(epoch FROM percentile_disc(0.9) WITHIN GROUP (ORDER BY frt) "
    "   FILTER (WHERE frt IS NOT NULL)) AS frt_p90, "
    " extract(epoch FROM percentile_disc(0.9) WITHIN GROUP (ORDER BY res)) AS res_p90 "
    "FROM (SELECT {group} AS g, "
    # GREATEST skips NULLs: keep "no first response" NULL rather than zero.
    "        CASE WHEN first_response_at IS NOT NULL "
    "          THEN greatest(first_response_at - started, interval '0') END AS frt, "
    "        greatest(resolved_at - started, interval '0') AS res "
    "      FROM (SELECT *, coalesce(customer_wrote_at, opened_at) AS started "
    "            FROM ticket_facts WHERE resolved_at >= :start AND resolved_at < :end) t "
    "      WHERE started IS NOT NULL) f "
    "GROUP BY GROUPING SETS ((g), ())"
)
P90s = tuple[float | None, float | None]


async def exact_p90s(
    conn: AsyncConnection, first: date, last: date, group_by: str
) -> tuple[dict[str, P90s], P90s]:
    """(p90s per group, p90s of the whole range), first response and resolution, in seconds."""
    query = text(_P90.format(group=_GROUP_EXPRESSIONS[group_by]))
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    per_group: dict[str, P90s] = {}
    overall: P90s = (None, None)
    for row in (await conn.execute(query, {"start": start, "end": end})).mappings():
        values = (_seconds(row["frt_p90"]), _seconds(row["res_p90"]))
        if row["g"] is None:
            overall = values
        else:
            per_group[row["g"]] = values
    return per_group, overall


def _seconds(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


async def kpi_sums(
    conn: AsyncConnection, first: date, last: date, group_by: str, *, histograms: bool = True
) -> list[tuple[str, KpiSums]]:
    """(group, sums) for each group with resolved tickets in [first, last] (UTC days)."""
    by_value, by_day = _WITH_HISTOGRAMS if histograms else _WITHOUT_HISTOGRAMS
    if group_by == "day":
        rows = await conn.execute(by_day, {"first": first, "last": last})
    else:
        rows = await conn.execute(by_value, {"dimension": group_by, "first": first, "last": last})
    return [(row["grp"], KpiSums.from_row(row)) for row in rows.mappings()]
