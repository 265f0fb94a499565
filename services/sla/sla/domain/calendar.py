"""Business calendars and business-time arithmetic: working hours per weekday in an IANA time
zone, holidays, or 24x7; deadlines, elapsed business time and the next opening.

Everything takes and returns timezone-aware UTC datetimes; local wall time exists only inside a
calendar. Durations are real elapsed time, so a DST switch inside a working period shortens it
(spring forward) or lengthens it (fall back) by the hour that was skipped or repeated.

The functions step period by period and day by day over a per-calendar cache of each local day's
working intervals (as integer microseconds since the epoch), so a deadline a few days out costs a
handful of dictionary look-ups. Measure it with `benchmark_add_business_time()`; on the China
office calendar a 24-hour target takes on the order of 10 microseconds once the days are cached.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: Final[tuple[Weekday, ...]] = get_args(Weekday)

# A calendar with no working time for this many consecutive days is treated as never open,
# rather than scanning forever (holidays can close an otherwise valid calendar).
MAX_CLOSED_DAYS: Final = 3 * 366

_DAY_SECONDS: Final = 86_400
_US: Final = 1_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_LIMIT: Final = 50_000  # local days per calendar; ~140 years, so in practice never hit


class InvalidCalendar(ValueError):
    """A calendar definition (or imported holiday file) that cannot be used.

    `field` names the part at fault, e.g. ``hours.monday[1]``, so the API can report it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NoWorkingTime(InvalidCalendar):
    """The calendar has no working time within `MAX_CLOSED_DAYS` of the asked moment."""


@dataclass(frozen=True, slots=True)
class WorkingPeriod:
    """One stretch of working wall-clock time on a day, `start` inclusive, `end` exclusive.

    `end == time(0)` means midnight at the end of the day (24:00)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> WorkingPeriod:
        """`"09:00-18:00"` (also `"13:30–18:00"` with an en dash; `"24:00"` is end of day)."""
        parts = text.replace("–", "-").split("-")
        if len(parts) != 2:
            raise ValueError(f"expected 'HH:MM-HH:MM', got {text!r}")
        start, end = (_parse_clock(p.strip()) for p in parts)
        return cls(start, end)

    @property
    def start_second(self) -> int:
        return _seconds(self.start)

    @property
    def end_second(self) -> int:
        return _seconds(self.end) or _DAY_SECONDS

    def __str__(self) -> str:
        end = "24:00" if self.end_second == _DAY_SECONDS else _format_clock(self.end)
        return f"{_format_clock(self.start)}-{end}"


def _parse_clock(text: str) -> time:
    if text == "24:00":
        return time(0)
    return time.fromisoformat(text)


def _format_clock(t: time) -> str:
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


@dataclass(frozen=True)
class BusinessCalendar:
    """Working hours per weekday in `timezone`, closed on `holidays` (local dates).

    `twenty_four_seven=True` means open all day every day (holidays, if any, still close it).
    Construction validates; an invalid definition raises `InvalidCalendar`."""

    id: str
    timezone: str
    hours: Mapping[Weekday, Sequence[WorkingPeriod]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    twenty_four_seven: bool = False
    name: str = ""

    _tz: ZoneInfo = field(init=False, repr=False, compare=False)
    # Periods as (start, end) local seconds of day, sorted, indexed by date.weekday().
    _week: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False, compare=False)
    _always_open: bool = field(init=False, repr=False, compare=False)
    _days: dict[int, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidCalendar(
                "timezone", f"unknown time zone {self.timezone!r}; use an IANA name"
            ) from None
        object.__setattr__(self, "_tz", tz)
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        if self.twenty_four_seven:
            if any(self.hours.values()):
                raise InvalidCalendar(
                    "hours", "a 24x7 calendar is open all day; leave its working hours empty"
                )
            week: tuple[tuple[tuple[int, int], ...], ...] = tuple(
                ((0, _DAY_SECONDS),) for _ in WEEKDAYS
            )
        else:
            week = _validated_week(self.hours)
        hours = {} if self.twenty_four_seven else {d: tuple(p) for d, p in self.hours.items()}
        object.__setattr__(self, "hours", hours)
        object.__setattr__(self, "_week", week)
        object.__setattr__(self, "_always_open", self.twenty_four_seven and not self.holidays)
        object.__setattr__(self, "_days", {})

    @classmethod
    def weekly(
        cls,
        id: str,
        timezone: str,
        hours: Mapping[Weekday, Iterable[str]],
        *,
        holidays: Iterable[date] = (),
        name: str = "",
    ) -> BusinessCalendar:
        """Shorthand: `weekly("cn", "Asia/Shanghai", {"monday": ["09:00-12:00", ...]})`."""
        parsed: dict[Weekday, tuple[WorkingPeriod, ...]] = {}
        for day, texts in hours.items():
            periods = []
            for i, text in enumerate(texts):
                try:
                    periods.append(WorkingPeriod.parse(text))
                except ValueError as exc:
                    raise InvalidCalendar(f"hours.{day}[{i}]", str(exc)) from None
            parsed[day] = tuple(periods)
        return cls(id=id, timezone=timezone, hours=parsed, holidays=frozenset(holidays), name=name)

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    # --- the cached day table ---------------------------------------------------------------

    def _intervals(self, ordinal: int) -> tuple[int, ...]:
        """Working intervals of one local day as flat (start, end, start, end, ...) epoch µs."""
        cached = self._days.get(ordinal)
        if cached is not None:
            return cached
        day = date.fromordinal(ordinal)
        flat: list[int] = []
        if day not in self.holidays:
            for start_s, end_s in self._week[day.weekday()]:
                start = self._local_to_us(day, start_s, is_end=False)
                end = self._local_to_us(day, end_s, is_end=True)
                if flat and start < flat[-1]:
                    # Two periods meeting inside a repeated (fall-back) hour: never count twice.
                    start = flat[-1]
                if end > start:
                    flat += (start, end)
        result = tuple(flat)
        if len(self._days) >= _CACHE_LIMIT:
            self._days.clear()
        self._days[ordinal] = result
        return result

    def _local_to_us(self, day: date, second: int, *, is_end: bool) -> int:
        """The instant of wall time `second` on local `day`, as epoch microseconds.

        A wall time repeated by a fall-back switch resolves to its earlier instant for a start
        and its later one for an end, so the repeated hour counts inside a period. A wall time
        skipped by a spring-forward switch resolves to the switch itself."""
        wall = datetime(day.year, day.month, day.day) + timedelta(seconds=second)
        before = wall.replace(tzinfo=self._tz, fold=0).utcoffset()
        after = wall.replace(tzinfo=self._tz, fold=1).utcoffset()
        assert before is not None
        assert after is not None
        naive_us = _naive_us(wall)
        if before == after:
            return naive_us - _td_us(before)
        if before > after:  # repeated hour (fall back)
            return naive_us - _td_us(after if is_end else before)
        # Skipped hour (spring forward): find the switch between the two readings.
        low, high = naive_us - _td_us(after), naive_us - _td_us(before)
        while high - low > _US:
            mid = (low + high) // 2
            if _from_us(mid).astimezone(self._tz).utcoffset() == after:
                high = mid
            else:
                low = mid
        return high - high % _US

    def _local_ordinal(self, us: int) -> int:
        return _from_us(us).astimezone(self._tz).toordinal()


def _validated_week(
    hours: Mapping[Weekday, Sequence[WorkingPeriod]],
) -> tuple[tuple[tuple[int, int], ...], ...]:
    for day in hours:
        if day not in WEEKDAYS:
            raise InvalidCalendar(
                f"hours.{day}", f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}"
            )
    week: list[tuple[tuple[int, int], ...]] = []
    for day in WEEKDAYS:
        spans: list[tuple[int, int, int]] = []
        for i, period in enumerate(hours.get(day, ())):
            where = f"hours.{day}[{i}]"
            if period.start.tzinfo is not None or period.end.tzinfo is not None:
                raise InvalidCalendar(where, "period times are local wall times; drop the zone")
            if period.start.microsecond or period.end.microsecond:
                raise InvalidCalendar(where, "period times are whole seconds")
            if period.end_second <= period.start_second:
                raise InvalidCalendar(
                    where, f"period {period} on {day} ends before it starts (or is empty)"
                )
            spans.append((period.start_second, period.end_second, i))
        spans.sort()
        for (_, e1, i1), (s2, _, i2) in pairwise(spans):
            if s2 < e1:
                first, second = sorted((i1, i2))
                raise InvalidCalendar(
                    f"hours.{day}[{second}]",
                    f"period {hours[day][second]} on {day} overlaps {hours[day][first]}",
                )
        week.append(tuple((s, e) for s, e, _ in spans))
    if not any(week):
        raise InvalidCalendar(
            "hours",
            "the calendar has no working time in the week; give at least one period "
            "or make it 24x7",
        )
    return tuple(week)


# --- microsecond helpers ---------------------------------------------------------------------


def _td_us(td: timedelta) -> int:
    return (td.days * _DAY_SECONDS + td.seconds) * _US + td.microseconds


def _naive_us(wall: datetime) -> int:
    return _td_us(wall - datetime(1970, 1, 1))


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"business-time arithmetic needs an aware datetime, got {moment!r}")
    return _td_us(moment - _EPOCH)


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _closed_too_long(calendar: BusinessCalendar, since: int) -> NoWorkingTime:
    return NoWorkingTime(
        "hours",
        f"calendar {calendar.id!r} has no working time within {MAX_CLOSED_DAYS} days after "
        f"{_from_us(since).isoformat()}",
    )


# --- business-time arithmetic ----------------------------------------------------------------


def add_business_time(
    calendar: BusinessCalendar, start_utc: datetime, duration: timedelta
) -> datetime:
    """The moment (UTC) when `duration` of business time has passed since `start_utc`.

    The result is inside working time or exactly at the end of a working period; a zero
    duration returns `start_utc` itself."""
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    t = _to_us(start_utc)
    remaining = _td_us(duration)
    if remaining == 0 or calendar._always_open:
        return _from_us(t + remaining)
    ordinal = calendar._local_ordinal(t)
    closed_days = 0
    while True:
        intervals = calendar._intervals(ordinal)
        for i in range(0, len(intervals), 2):
            end = intervals[i + 1]
            if end <= t:
                continue
            begin = max(intervals[i], t)
            available = end - begin
            if remaining <= available:
                return _from_us(begin + remaining)
            remaining -= available
            t = end
        closed_days = 0 if intervals else closed_days + 1
        if closed_days > MAX_CLOSED_DAYS:
            raise _closed_too_long(calendar, t)
        ordinal += 1


def business_time_between(
    calendar: BusinessCalendar, a_utc: datetime, b_utc: datetime
) -> timedelta:
    """Business time from `a_utc` to `b_utc`; negative when `b_utc` is earlier."""
    a, b = _to_us(a_utc), _to_us(b_utc)
    if b < a:
        return -business_time_between(calendar, b_utc, a_utc)
    if calendar._always_open:
        return timedelta(microseconds=b - a)
    total = 0
    last = calendar._local_ordinal(b)
    for ordinal in range(calendar._local_ordinal(a), last + 1):
        intervals = calendar._intervals(ordinal)
        for i in range(0, len(intervals), 2):
            begin, end = max(intervals[i], a), min(intervals[i + 1], b)
            if end > begin:
                total += end - begin
    return timedelta(microseconds=total)


def is_business_time(calendar: BusinessCalendar, t_utc: datetime) -> bool:
    """Whether `t_utc` falls inside a working period (starts count, ends do not)."""
    t = _to_us(t_utc)
    if calendar._always_open:
        return True
    intervals = calendar._intervals(calendar._local_ordinal(t))
    return any(intervals[i] <= t < intervals[i + 1] for i in range(0, len(intervals), 2))


def next_business_moment(calendar: BusinessCalendar, t_utc: datetime) -> datetime:
    """`t_utc` itself if it is business time, else the start of the next working period.

    Notifications due outside working hours are deferred to this moment."""
    t = _to_us(t_utc)
    if calendar._always_open:
        return _from_us(t)
    ordinal = calendar._local_ordinal(t)
    for _ in range(MAX_CLOSED_DAYS + 1):
        intervals = calendar._intervals(ordinal)
        for i in range(0, len(intervals), 2):
            if t < intervals[i + 1]:
                return _from_us(max(intervals[i], t))
        ordinal += 1
    raise _closed_too_long(calendar, t)


# --- calendars every installation has --------------------------------------------------------

DEFAULT_CALENDAR_ID: Final = "24x7"
DEFAULT_CALENDAR: Final = BusinessCalendar(
    id=DEFAULT_CALENDAR_ID, timezone="UTC", twenty_four_seven=True, name="Always open"
)
_CHINA_WORKDAY: Final = ("09:00-12:00", "13:30-18:00")
CHINA_OFFICE_CALENDAR: Final = BusinessCalendar.weekly(
    "china-office",
    "Asia/Shanghai",
    {day: _CHINA_WORKDAY for day in WEEKDAYS[:5]},
    name="China office (Mon-Fri 09:00-12:00, 13:30-18:00 Beijing time)",
)
DEFAULT_CALENDARS: Final[Mapping[str, BusinessCalendar]] = {
    c.id: c for c in (DEFAULT_CALENDAR, CHINA_OFFICE_CALENDAR)
}


def benchmark_add_business_time(
    calendar: BusinessCalendar = CHINA_OFFICE_CALENDAR,
    target: timedelta = timedelta(hours=24),
    runs: int = 100_000,
) -> float:
    """Mean microseconds per `add_business_time` call for `target` from starts spread over a
    month (warm cache, as in the service). Not a test: run it by hand or from `bench/`."""
    base = datetime(2025, 3, 3, tzinfo=UTC)
    starts = [base + timedelta(minutes=37 * i) for i in range(1000)]
    for s in starts:  # warm the day cache as a running service would have it
        add_business_time(calendar, s, target)
    began = _time.perf_counter()
    for i in range(runs):
        add_business_time(calendar, starts[i % len(starts)], target)
    return (_time.perf_counter() - began) / runs * 1e6
