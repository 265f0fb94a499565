from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from feedback.domain.callbacks import add_months, callback_dates, next_callback_after

START = datetime(2024, 1, 31, 10, tzinfo=UTC)


def test_monthly_in_the_first_year_then_quarterly() -> None:
    dates = callback_dates(START, START + timedelta(days=2 * 365 + 1))
    months = [(d.year, d.month) for d in dates]
    assert months[:12] == [(2024, m) for m in range(2, 13)] + [(2025, 1)]
    assert months[12:] == [(2025, 4), (2025, 7), (2025, 10), (2026, 1)]


def test_day_of_month_is_clamped_without_drifting() -> None:
    dates = callback_dates(START, START + timedelta(days=100))
    assert [d.day for d in dates] == [29, 31, 30]  # leap February, March, April
    assert add_months(datetime(2023, 1, 31, tzinfo=UTC), 1).day == 28


def test_next_callback_is_strictly_after_the_given_moment() -> None:
    first = next_callback_after(START, START)
    assert first == datetime(2024, 2, 29, 10, tzinfo=UTC)
    assert next_callback_after(START, first) == datetime(2024, 3, 31, 10, tzinfo=UTC)
    assert next_callback_after(START, datetime(2025, 1, 31, 10, tzinfo=UTC)) == datetime(
        2025, 4, 30, 10, tzinfo=UTC
    )


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    st.integers(min_value=0, max_value=4000),
)
def test_next_callback_agrees_with_the_full_schedule(start: datetime, days: int) -> None:
    start = start.replace(tzinfo=UTC)
    after = start + timedelta(days=days)
    nxt = next_callback_after(start, after)
    schedule = callback_dates(start, nxt)
    assert schedule[-1] == nxt
    assert all(d <= after for d in schedule[:-1])
    gaps = {(b.year - a.year) * 12 + b.month - a.month for a, b in pairwise(schedule)}
    assert gaps <= {1, 3}
