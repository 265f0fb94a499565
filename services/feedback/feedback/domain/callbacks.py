"""Call-back schedule for key accounts: monthly during the first year of the relationship,
quarterly after it."""

from __future__ import annotations

import calendar
from datetime import datetime

FIRST_YEAR_MONTHS = 12
MONTHLY = 1
QUARTERLY = 3


def add_months(moment: datetime, months: int) -> datetime:
    """Same day of month, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def callback_dates(relationship_started_at: datetime, until: datetime) -> list[datetime]:
    """Every call-back from the start of the relationship up to `until` (inclusive).

    Counted from the start date (not from the previous call-back) so clamping a 31st to a
    shorter month does not drift the schedule.
    """
    out: list[datetime] = []
    months = MONTHLY
    while True:
        due = add_months(relationship_started_at, months)
        if due > until:
            return out
        out.append(due)
        months += MONTHLY if months < FIRST_YEAR_MONTHS else QUARTERLY


def next_callback_after(relationship_started_at: datetime, after: datetime) -> datetime:
    """The first call-back strictly after `after`."""
    months = MONTHLY
    while True:
        due = add_months(relationship_started_at, months)
        if due > after:
            return due
        months += MONTHLY if months < FIRST_YEAR_MONTHS else QUARTERLY
