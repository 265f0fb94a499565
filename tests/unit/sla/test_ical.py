from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sla.domain.calendar import BusinessCalendar, InvalidCalendar, add_business_time
from sla.domain.ical import holidays_from_ical


def ics(*events: str) -> str:
    body = "".join(
        f"BEGIN:VEVENT\r\nUID:{i}@test\r\n{e}END:VEVENT\r\n" for i, e in enumerate(events)
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n"


def days(first: date, count: int) -> set[date]:
    return {first + timedelta(days=n) for n in range(count)}


def test_all_day_event_closes_its_date() -> None:
    text = ics("SUMMARY:New Year\r\nDTSTART;VALUE=DATE:20250101\r\nDTEND;VALUE=DATE:20250102\r\n")
    assert holidays_from_ical(text, "Asia/Shanghai") == {date(2025, 1, 1)}


def test_all_day_event_without_end_closes_one_day() -> None:
    text = ics("DTSTART;VALUE=DATE:20250501\r\n")
    assert holidays_from_ical(text, "Asia/Shanghai") == {date(2025, 5, 1)}


def test_multi_day_event_closes_each_date_up_to_its_exclusive_end() -> None:
    national_day = ics(
        "SUMMARY:国庆节\r\nDTSTART;VALUE=DATE:20251001\r\nDTEND;VALUE=DATE:20251008\r\n"
    )
    assert holidays_from_ical(national_day, "Asia/Shanghai") == days(date(2025, 10, 1), 7)


def test_all_day_event_with_a_duration_closes_that_many_days() -> None:
    text = ics("DTSTART;VALUE=DATE:20250128\r\nDURATION:P3D\r\n")
    assert holidays_from_ical(text, "Asia/Shanghai") == days(date(2025, 1, 28), 3)


def test_timed_event_closes_every_local_date_it_touches() -> None:
    # 23:00-01:00 Beijing time, given in UTC.
    text = ics("DTSTART:20250101T150000Z\r\nDTEND:20250101T170000Z\r\n")
    assert holidays_from_ical(text, "Asia/Shanghai") == {date(2025, 1, 1), date(2025, 1, 2)}
    # The same instants are one afternoon in New York.
    assert holidays_from_ical(text, "America/New_York") == {date(2025, 1, 1)}


def test_timed_event_ending_at_local_midnight_does_not_close_the_next_day() -> None:
    text = ics(
        "DTSTART;TZID=Europe/Berlin:20251224T120000\r\nDTEND;TZID=Europe/Berlin:20251225T000000\r\n"
    )
    assert holidays_from_ical(text, "Europe/Berlin") == {date(2025, 12, 24)}


def test_floating_time_is_read_as_the_calendar_local_time() -> None:
    text = ics("DTSTART:20250704T090000\r\nDTEND:20250704T170000\r\n")
    assert holidays_from_ical(text, "America/New_York") == {date(2025, 7, 4)}


def test_several_events_add_up() -> None:
    text = ics(
        "DTSTART;VALUE=DATE:20250101\r\n",
        "DTSTART;VALUE=DATE:20250501\r\nDTEND;VALUE=DATE:20250503\r\n",
    )
    assert holidays_from_ical(text, "UTC") == {date(2025, 1, 1), date(2025, 5, 1), date(2025, 5, 2)}


def test_imported_holidays_close_the_calendar() -> None:
    text = ics("DTSTART;VALUE=DATE:20250501\r\nDTEND;VALUE=DATE:20250506\r\n")
    calendar = BusinessCalendar.weekly(
        "cn",
        "Asia/Shanghai",
        {d: ["09:00-18:00"] for d in ("monday", "tuesday", "wednesday", "thursday", "friday")},
        holidays=holidays_from_ical(text, "Asia/Shanghai"),
    )
    before_labour_day = datetime(2025, 4, 30, 9, tzinfo=UTC)  # 17:00 in Shanghai
    assert add_business_time(calendar, before_labour_day, timedelta(hours=2)) == datetime(
        2025, 5, 6, 2, tzinfo=UTC
    )  # 10:00 on Tuesday 6 May


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is not a calendar", "not a valid iCalendar file"),
        ("", "not a valid iCalendar file"),
        (ics(), "no VEVENT"),
        (ics("SUMMARY:Nothing\r\n"), "VEVENT 1 (Nothing)"),
        (ics("DTSTART;VALUE=DATE:2025XX01\r\n"), "VEVENT 1"),
        (
            ics("DTSTART:20250101T100000Z\r\nDTEND:20250101T090000Z\r\n"),
            "ends before it starts",
        ),
        (
            ics("DTSTART;VALUE=DATE:20250102\r\nDTEND;VALUE=DATE:20250101\r\n"),
            "ends before it starts",
        ),
        (
            ics("SUMMARY:Sunday\r\nDTSTART;VALUE=DATE:20250105\r\nRRULE:FREQ=WEEKLY\r\n"),
            "VEVENT 1 (Sunday) repeats",
        ),
        (
            ics("DTSTART;VALUE=DATE:20250101\r\nDTEND;VALUE=DATE:20270101\r\n"),
            "spans 730 days",
        ),
    ],
)
def test_invalid_ical_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(InvalidCalendar) as caught:
        holidays_from_ical(text, "Asia/Shanghai")
    assert caught.value.field == "holidays_ical"
    assert message in caught.value.message


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(InvalidCalendar) as caught:
        holidays_from_ical(ics("DTSTART;VALUE=DATE:20250101\r\n"), "Atlantis/Capital")
    assert caught.value.field == "timezone"
