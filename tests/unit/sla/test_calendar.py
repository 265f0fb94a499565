from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla.domain.calendar import (
    CHINA_OFFICE_CALENDAR,
    DEFAULT_CALENDAR,
    MAX_CLOSED_DAYS,
    BusinessCalendar,
    InvalidCalendar,
    NoWorkingTime,
    Weekday,
    WorkingPeriod,
    add_business_time,
    benchmark_add_business_time,
    business_time_between,
    is_business_time,
    next_business_moment,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)
WEEKDAYS_: tuple[Weekday, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday")

NY_OFFICE = BusinessCalendar.weekly(
    "ny", "America/New_York", {d: ["09:00-17:00"] for d in WEEKDAYS_}
)
BERLIN_OFFICE = BusinessCalendar.weekly(
    "berlin", "Europe/Berlin", {d: ["09:00-18:00"] for d in WEEKDAYS_}
)


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def sunday_only(tz: str, *periods: str) -> BusinessCalendar:
    return BusinessCalendar.weekly(f"sun-{tz}", tz, {"sunday": list(periods)})


# --- weekdays, weekends, holidays ---------------------------------------------------------------


def test_deadline_skips_the_weekend() -> None:
    friday_4pm = local(NY, 2025, 1, 10, 16)
    assert add_business_time(NY_OFFICE, friday_4pm, 2 * H) == local(NY, 2025, 1, 13, 10)


def test_start_before_opening_counts_from_opening() -> None:
    monday_7am = local(NY, 2025, 1, 13, 7)
    assert add_business_time(NY_OFFICE, monday_7am, H) == local(NY, 2025, 1, 13, 10)


def test_start_after_closing_counts_from_next_opening() -> None:
    monday_8pm = local(NY, 2025, 1, 13, 20)
    assert add_business_time(NY_OFFICE, monday_8pm, H) == local(NY, 2025, 1, 14, 10)


def test_deadline_that_uses_up_a_day_ends_at_closing_not_next_opening() -> None:
    monday_4pm = local(NY, 2025, 1, 13, 16)
    assert add_business_time(NY_OFFICE, monday_4pm, H) == local(NY, 2025, 1, 13, 17)


def test_holidays_are_skipped() -> None:
    calendar = BusinessCalendar.weekly(
        "ny-h",
        "America/New_York",
        {d: ["09:00-17:00"] for d in WEEKDAYS_},
        holidays=[date(2025, 1, 20)],  # a Monday
    )
    friday_4pm = local(NY, 2025, 1, 17, 16)
    assert add_business_time(calendar, friday_4pm, 2 * H) == local(NY, 2025, 1, 21, 10)
    assert not is_business_time(calendar, local(NY, 2025, 1, 20, 12))
    assert business_time_between(
        calendar, local(NY, 2025, 1, 17, 0), local(NY, 2025, 1, 22, 0)
    ) == (16 * H)


def test_deadline_spanning_weeks_counts_only_working_days() -> None:
    monday_9am = local(NY, 2025, 1, 6, 9)
    # 72 business hours at 8 a day = 9 working days: Mon-Fri and Mon-Thu of the next week.
    assert add_business_time(NY_OFFICE, monday_9am, 72 * H) == local(NY, 2025, 1, 16, 17)
    # 200 hours = 25 working days = five full weeks, ending on a Friday at closing.
    assert add_business_time(NY_OFFICE, monday_9am, 200 * H) == local(NY, 2025, 2, 7, 17)


# --- split shifts and lunch breaks ----------------------------------------------------------------


def test_lunch_break_is_not_business_time() -> None:
    eleven = local(SHANGHAI, 2025, 3, 3, 11)  # Monday
    assert add_business_time(CHINA_OFFICE_CALENDAR, eleven, 2 * H) == local(
        SHANGHAI, 2025, 3, 3, 14, 30
    )
    assert not is_business_time(CHINA_OFFICE_CALENDAR, local(SHANGHAI, 2025, 3, 3, 12, 45))


def test_china_office_day_is_seven_and_a_half_hours() -> None:
    day = business_time_between(
        CHINA_OFFICE_CALENDAR, local(SHANGHAI, 2025, 3, 3), local(SHANGHAI, 2025, 3, 4)
    )
    assert day == timedelta(hours=7, minutes=30)


def test_split_shift_periods_given_out_of_order_are_sorted() -> None:
    calendar = BusinessCalendar.weekly(
        "split", "Europe/Berlin", {"monday": ["17:00-21:00", "06:00-10:00"]}
    )
    start = local(BERLIN, 2025, 1, 6, 9)
    assert add_business_time(calendar, start, 3 * H) == local(BERLIN, 2025, 1, 6, 19)


def test_period_to_midnight_runs_into_the_next_day() -> None:
    calendar = BusinessCalendar.weekly(
        "late", "UTC", {"monday": ["20:00-24:00"], "tuesday": ["00:00-02:00"]}
    )
    start = datetime(2025, 1, 6, 23, tzinfo=UTC)
    assert add_business_time(calendar, start, 2 * H) == datetime(2025, 1, 7, 1, tzinfo=UTC)
    assert str(calendar.hours["monday"][0]) == "20:00-24:00"


# --- time zones -------------------------------------------------------------------------------


def test_working_hours_are_local_to_the_calendar_time_zone() -> None:
    # 09:00 in Shanghai is 01:00 UTC; no DST there, all year.
    for month in (1, 7):
        opening = datetime(2025, month, 6 if month == 1 else 7, 1, tzinfo=UTC)  # Mondays
        assert is_business_time(CHINA_OFFICE_CALENDAR, opening)
        assert not is_business_time(CHINA_OFFICE_CALENDAR, opening - timedelta(microseconds=1))


def test_results_are_utc_whatever_zone_the_input_has() -> None:
    start = local(NY, 2025, 1, 13, 9)
    deadline = add_business_time(NY_OFFICE, start, H)
    assert deadline.utcoffset() == timedelta(0)
    assert deadline == datetime(2025, 1, 13, 15, tzinfo=UTC)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        add_business_time(NY_OFFICE, datetime(2025, 1, 13, 9), H)


def test_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_business_time(NY_OFFICE, local(NY, 2025, 1, 13, 9), -H)


def test_zero_duration_returns_the_start() -> None:
    saturday = local(NY, 2025, 1, 11, 3)
    assert add_business_time(NY_OFFICE, saturday, timedelta(0)) == saturday


# --- DST --------------------------------------------------------------------------------------


def test_berlin_spring_forward_night_period_is_two_real_hours() -> None:
    calendar = sunday_only("Europe/Berlin", "01:00-04:00")
    night = (local(BERLIN, 2025, 3, 29), local(BERLIN, 2025, 3, 31))
    assert business_time_between(calendar, *night) == 2 * H
    assert add_business_time(calendar, night[0], 2 * H) == local(BERLIN, 2025, 3, 30, 4)


def test_berlin_fall_back_night_counts_the_repeated_hour_twice() -> None:
    calendar = sunday_only("Europe/Berlin", "01:00-04:00")
    night = (local(BERLIN, 2025, 10, 25), local(BERLIN, 2025, 10, 27))
    assert business_time_between(calendar, *night) == 4 * H


def test_new_york_spring_forward_day_has_23_hours() -> None:
    calendar = sunday_only("America/New_York", "00:00-24:00")
    day = (local(NY, 2025, 3, 9), local(NY, 2025, 3, 10))
    assert business_time_between(calendar, *day) == 23 * H


def test_new_york_fall_back_day_has_25_hours() -> None:
    calendar = sunday_only("America/New_York", "00:00-24:00")
    day = (local(NY, 2025, 11, 2), local(NY, 2025, 11, 3))
    assert business_time_between(calendar, *day) == 25 * H
    assert add_business_time(calendar, day[0], 25 * H) == day[1]


def test_period_starting_in_the_skipped_hour_starts_at_the_switch() -> None:
    calendar = sunday_only("Europe/Berlin", "02:30-03:30")
    night = (local(BERLIN, 2025, 3, 29), local(BERLIN, 2025, 3, 31))
    assert business_time_between(calendar, *night) == timedelta(minutes=30)
    assert next_business_moment(calendar, night[0]) == datetime(2025, 3, 30, 1, tzinfo=UTC)


def test_period_ending_in_the_repeated_hour_ends_at_its_second_pass() -> None:
    calendar = sunday_only("America/New_York", "00:00-01:30")
    # 00:00 EDT (04:00 UTC) to the second 01:30, in EST (06:30 UTC).
    night = (local(NY, 2025, 11, 1), local(NY, 2025, 11, 3))
    assert business_time_between(calendar, *night) == timedelta(hours=2, minutes=30)


def test_periods_meeting_inside_the_repeated_hour_never_count_it_three_times() -> None:
    calendar = sunday_only("America/New_York", "00:00-01:30", "01:30-03:00")
    night = (local(NY, 2025, 11, 1), local(NY, 2025, 11, 3))
    assert business_time_between(calendar, *night) == 4 * H  # real time from 00:00 to 03:00


def test_office_hours_keep_their_wall_clock_across_the_switch() -> None:
    friday_4pm_est = local(NY, 2025, 3, 7, 16)
    deadline = add_business_time(NY_OFFICE, friday_4pm_est, 2 * H)
    assert deadline == local(NY, 2025, 3, 10, 10)  # 10:00 EDT
    assert deadline == datetime(2025, 3, 10, 14, tzinfo=UTC)
    friday_4pm_cest = local(BERLIN, 2025, 10, 24, 16)
    assert add_business_time(BERLIN_OFFICE, friday_4pm_cest, 3 * H) == datetime(
        2025, 10, 27, 9, tzinfo=UTC
    )  # 10:00 CET, was 16:00 CEST


def test_day_hours_away_from_the_switch_stay_nine_real_hours() -> None:
    calendar = sunday_only("Europe/Berlin", "09:00-18:00")
    day = (local(BERLIN, 2025, 3, 30), local(BERLIN, 2025, 3, 31))
    assert business_time_between(calendar, *day) == 9 * H


# --- 24x7 -------------------------------------------------------------------------------------


def test_twenty_four_seven_is_plain_elapsed_time() -> None:
    start = datetime(2025, 3, 8, 23, 59, tzinfo=UTC)
    assert add_business_time(DEFAULT_CALENDAR, start, 100 * H) == start + 100 * H
    assert business_time_between(DEFAULT_CALENDAR, start, start + 7 * H) == 7 * H
    assert is_business_time(DEFAULT_CALENDAR, start)
    assert next_business_moment(DEFAULT_CALENDAR, start) == start


def test_twenty_four_seven_in_a_dst_zone_still_counts_real_time() -> None:
    calendar = BusinessCalendar("ny247", "America/New_York", twenty_four_seven=True)
    day = (local(NY, 2025, 3, 9), local(NY, 2025, 3, 10))
    assert business_time_between(calendar, *day) == 23 * H


def test_twenty_four_seven_holiday_closes_that_local_date() -> None:
    calendar = BusinessCalendar(
        "cn247", "Asia/Shanghai", twenty_four_seven=True, holidays=frozenset({date(2025, 10, 1)})
    )
    start = local(SHANGHAI, 2025, 9, 30, 23)
    assert add_business_time(calendar, start, 2 * H) == local(SHANGHAI, 2025, 10, 2, 1)


# --- is_business_time / next_business_moment ----------------------------------------------------


def test_period_start_is_business_time_and_its_end_is_not() -> None:
    assert is_business_time(NY_OFFICE, local(NY, 2025, 1, 13, 9))
    assert not is_business_time(NY_OFFICE, local(NY, 2025, 1, 13, 17))
    assert is_business_time(NY_OFFICE, local(NY, 2025, 1, 13, 17) - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (local(SHANGHAI, 2025, 3, 3, 10), local(SHANGHAI, 2025, 3, 3, 10)),  # already open
        (local(SHANGHAI, 2025, 3, 3, 0), local(SHANGHAI, 2025, 3, 3, 9)),  # midnight
        (local(SHANGHAI, 2025, 3, 3, 12), local(SHANGHAI, 2025, 3, 3, 13, 30)),  # lunch
        (local(SHANGHAI, 2025, 3, 3, 18), local(SHANGHAI, 2025, 3, 4, 9)),  # closing
        (local(SHANGHAI, 2025, 3, 8, 11), local(SHANGHAI, 2025, 3, 10, 9)),  # Saturday
    ],
)
def test_next_business_moment_defers_to_the_next_opening(
    moment: datetime, expected: datetime
) -> None:
    assert next_business_moment(CHINA_OFFICE_CALENDAR, moment) == expected


def test_business_time_between_is_negative_when_reversed() -> None:
    a, b = local(NY, 2025, 1, 13, 9), local(NY, 2025, 1, 14, 12)
    assert business_time_between(NY_OFFICE, a, b) == 11 * H
    assert business_time_between(NY_OFFICE, b, a) == -11 * H


def test_calendar_closed_for_years_raises_instead_of_scanning_forever() -> None:
    mondays = {date(2025, 1, 6) + timedelta(weeks=n) for n in range(MAX_CLOSED_DAYS // 7 + 10)}
    calendar = BusinessCalendar.weekly(
        "never", "UTC", {"monday": ["09:00-10:00"]}, holidays=mondays
    )
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(NoWorkingTime, match="no working time within"):
        add_business_time(calendar, start, H)
    with pytest.raises(NoWorkingTime):
        next_business_moment(calendar, start)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone 'Mars/Olympus_Mons'"),
        ({"hours": {}}, "hours", "no working time in the week"),
        (
            {
                "hours": {
                    "monday": [WorkingPeriod(time(9), time(12)), WorkingPeriod(time(8), time(9))],
                    "tuesday": [WorkingPeriod(time(18), time(9))],
                }
            },
            "hours.tuesday[0]",
            "period 18:00-09:00 on tuesday ends before it starts",
        ),
        (
            {
                "hours": {
                    "wednesday": [
                        WorkingPeriod(time(9), time(12)),
                        WorkingPeriod(time(11), time(14)),
                    ]
                }
            },
            "hours.wednesday[1]",
            "period 11:00-14:00 on wednesday overlaps 09:00-12:00",
        ),
        (
            {
                "hours": {
                    "friday": [WorkingPeriod(time(13), time(18)), WorkingPeriod(time(9), time(14))]
                }
            },
            "hours.friday[1]",
            "period 09:00-14:00 on friday overlaps 13:00-18:00",
        ),
        (
            {"hours": {"thursday": [WorkingPeriod(time(9), time(9))]}},
            "hours.thursday[0]",
            "ends before it starts (or is empty)",
        ),
        (
            {"hours": {"funday": [WorkingPeriod(time(9), time(17))]}},
            "hours.funday",
            "unknown weekday",
        ),
        (
            {"twenty_four_seven": True, "hours": {"monday": [WorkingPeriod(time(9), time(17))]}},
            "hours",
            "24x7 calendar is open all day",
        ),
    ],
)
def test_invalid_calendar_names_the_field_at_fault(
    kwargs: dict[str, object], field: str, message: str
) -> None:
    arguments: dict[str, object] = {"id": "x", "timezone": "Europe/Berlin", **kwargs}
    with pytest.raises(InvalidCalendar) as caught:
        BusinessCalendar(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert message in caught.value.message


def test_unparseable_period_text_names_the_period() -> None:
    with pytest.raises(InvalidCalendar) as caught:
        BusinessCalendar.weekly("x", "UTC", {"monday": ["09:00-17:00", "lunch"]})
    assert caught.value.field == "hours.monday[1]"


def test_period_text_accepts_en_dash_and_end_of_day() -> None:
    assert WorkingPeriod.parse("13:30–24:00") == WorkingPeriod(time(13, 30), time(0))


# --- speed ------------------------------------------------------------------------------------


def test_deadline_on_china_office_calendar_takes_microseconds_not_milliseconds() -> None:
    # Generous bound so a busy CI machine passes; typical is about 5 µs.
    assert benchmark_add_business_time(runs=2_000) < 200


# --- properties -------------------------------------------------------------------------------

CALENDARS = [
    CHINA_OFFICE_CALENDAR,
    NY_OFFICE,
    BusinessCalendar.weekly(
        "odd",
        "Europe/Berlin",
        {
            "monday": ["06:00-10:00", "17:00-21:00"],
            "wednesday": ["00:00-24:00"],
            "sunday": ["00:30-01:00", "01:00-04:00", "04:30-04:45"],
        },
        holidays=[date(2025, 12, 24), date(2026, 1, 1)],
    ),
    BusinessCalendar.weekly(
        "ny-nights", "America/New_York", {"sunday": ["00:30-05:00"], "friday": ["01:15-03:45"]}
    ),
    DEFAULT_CALENDAR,
]
calendars = st.sampled_from(CALENDARS)
starts = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30))


@given(calendars, starts, durations)
def test_business_time_to_the_deadline_equals_the_duration(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    deadline = add_business_time(calendar, start, duration)
    assert business_time_between(calendar, start, deadline) == duration


@given(calendars, starts, durations, durations)
def test_a_longer_duration_never_gives_an_earlier_deadline(
    calendar: BusinessCalendar, start: datetime, d1: timedelta, d2: timedelta
) -> None:
    shorter, longer = sorted((d1, d2))
    assert add_business_time(calendar, start, shorter) <= add_business_time(calendar, start, longer)


@given(calendars, starts, durations.filter(lambda d: d > timedelta(0)))
def test_deadline_is_in_business_time_or_at_a_period_end(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    deadline = add_business_time(calendar, start, duration)
    just_before = deadline - timedelta(microseconds=1)
    assert is_business_time(calendar, deadline) or is_business_time(calendar, just_before)


@given(calendars, starts, durations, durations)
def test_adding_in_two_steps_equals_adding_at_once(
    calendar: BusinessCalendar, start: datetime, d1: timedelta, d2: timedelta
) -> None:
    in_steps = add_business_time(calendar, add_business_time(calendar, start, d1), d2)
    assert in_steps == add_business_time(calendar, start, d1 + d2)


@given(calendars, starts, starts, starts)
def test_business_time_between_adds_up_over_consecutive_spans(
    calendar: BusinessCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = sorted((a, b, c))
    assert business_time_between(calendar, a, b) + business_time_between(
        calendar, b, c
    ) == business_time_between(calendar, a, c)


@given(calendars, starts)
def test_next_business_moment_is_open_and_nothing_is_skipped_to_reach_it(
    calendar: BusinessCalendar, moment: datetime
) -> None:
    opening = next_business_moment(calendar, moment)
    assert opening >= moment
    assert is_business_time(calendar, opening)
    assert business_time_between(calendar, moment, opening) == timedelta(0)


def _wall_clock_minutes(calendar: BusinessCalendar, a: datetime, minutes: int) -> int:
    """Reference: step minute by minute in real time and look up each local wall time."""
    count = 0
    for i in range(minutes):
        wall = (a + timedelta(minutes=i)).astimezone(calendar.tz)
        if wall.date() in calendar.holidays:
            continue
        day = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        for period in calendar.hours.get(day[wall.weekday()], ()):  # type: ignore[call-overload]
            end = period.end if period.end != time(0) else time.max
            if period.start <= wall.time().replace(tzinfo=None) < end:
                count += 1
    return count


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(CALENDARS[:2] + CALENDARS[3:4]),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2025, 12, 31)).map(
        lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)
    ),
    st.integers(min_value=0, max_value=4 * 24 * 60),
)
def test_business_time_matches_a_minute_by_minute_wall_clock_count(
    calendar: BusinessCalendar, start: datetime, minutes: int
) -> None:
    expected = _wall_clock_minutes(calendar, start, minutes)
    measured = business_time_between(calendar, start, start + timedelta(minutes=minutes))
    assert measured == timedelta(minutes=expected)
