"""Reading the KPI rollups for a date range, grouped by one dimension or by day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from feedback.domain.kpis import HIST_COLUMNS, SUM_COLUMNS, KpiSums

_AGGREGATES = ", ".join(
    [
        *(f"sum({c}) AS {c}" for c in SUM_COLUMNS),
        *(f"int_array_sum({c}) AS {c}" for c in HIST_COLUMNS),
    ]
)
_BY_VALUE = text(
    "SELECT value AS grp, " + _AGGREGATES + " FROM kpi_rollup "  # noqa: S608 - fixed column names
    "WHERE dimension = :dimension AND day BETWEEN :first AND :last GROUP BY value ORDER BY value"
)
_BY_DAY = text(
    "SELECT day::text AS grp, " + _AGGREGATES + " FROM kpi_rollup "  # noqa: S608 - fixed column names
    "WHERE dimension = 'all' AND day BETWEEN :first AND :last GROUP BY day ORDER BY day"
)


async def kpi_sums(
    conn: AsyncConnection, first: date, last: date, group_by: str
) -> list[tuple[str, KpiSums]]:
    """(group, sums) for each group with resolved tickets in [first, last] (UTC days)."""
    if group_by == "day":
        rows = await conn.execute(_BY_DAY, {"first": first, "last": last})
    else:
        rows = await conn.execute(_BY_VALUE, {"dimension": group_by, "first": first, "last": last})
    return [(row["grp"], KpiSums.from_row(row)) for row in rows.mappings()]
