"""Holidays from an iCalendar (RFC 5545) file: every local date a VEVENT touches is closed.

All-day events (DTSTART;VALUE=DATE) close their dates up to DTEND (exclusive) or DURATION, one
day if neither is given. Timed events close every local date, in the calendar's time zone, that
they overlap; floating times (no zone) are read as the calendar's local time. Recurring events
(RRULE, RDATE) are refused rather than silently imported as one day: expand them first.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from sla.domain.calendar import InvalidCalendar

MAX_EVENT_DAYS: Final = 366  # a longer "holiday" is almost surely a mistake in the file
_FIELD: Final = "holidays_ical"


def holidays_from_ical(text: str | bytes, timezone: str) -> frozenset[date]:
    """The local dates closed by the events in `text`, for a calendar in `timezone`."""
    try:
        tz = ZoneInfo(timezone)
    except (ValueError, LookupError):
        raise InvalidCalendar("timezone", f"unknown time zone {timezone!r}") from None
    try:
        parsed = Calendar.from_ical(text)
    except ValueError as exc:
        raise InvalidCalendar(_FIELD, f"not a valid iCalendar file: {exc}") from None
    if not isinstance(parsed, Calendar):
        raise InvalidCalendar(_FIELD, "expected one VCALENDAR")
    events = parsed.events
    if not events:
        raise InvalidCalendar(_FIELD, "the file has no VEVENT to import")
    closed: set[date] = set()
    for i, event in enumerate(events):
        closed.update(_event_dates(event, i, tz))
    return frozenset(closed)


def _event_dates(event: Event, index: int, tz: ZoneInfo) -> list[date]:
    name = f"VEVENT {index + 1}"
    summary = event.get("SUMMARY")
    if summary:
        name += f" ({summary})"
    if "RRULE" in event or "RDATE" in event:
        raise InvalidCalendar(
            _FIELD, f"{name} repeats (RRULE/RDATE); list each holiday as its own event"
        )
    try:
        start, end = event.start, event.end
    except ValueError as exc:  # icalendar's InvalidCalendar and IncompleteComponent
        raise InvalidCalendar(_FIELD, f"{name}: {exc}") from None
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise InvalidCalendar(_FIELD, f"{name}: DTSTART and DTEND must both be dates or times")
    if isinstance(start, datetime) and isinstance(end, datetime):
        first, last = _local(start, tz), _local(end, tz)
        if last < first:
            raise InvalidCalendar(_FIELD, f"{name} ends before it starts")
        # The end is exclusive: an event ending at midnight does not touch the next day.
        last_day = (last - timedelta(microseconds=1)).date() if last > first else first.date()
        days = (last_day - first.date()).days + 1
        first_day = first.date()
    else:
        if end <= start:
            raise InvalidCalendar(_FIELD, f"{name} ends before it starts")
        first_day, days = start, (end - start).days
    if days > MAX_EVENT_DAYS:
        raise InvalidCalendar(
            _FIELD, f"{name} spans {days} days; a holiday longer than {MAX_EVENT_DAYS} is refused"
        )
    return [first_day + timedelta(days=n) for n in range(days)]


def _local(moment: datetime, tz: ZoneInfo) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)
