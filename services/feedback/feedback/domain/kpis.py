"""KPI formulas and the additive sums they are computed from.

Every resolved ticket contributes a `KpiSums` (counts, sums, and one-hot histograms of its first
response and resolution times) to its resolution day and to its queue, agent, channel and
category. Sums add up over any date range, so a rollup answers as fast as it is small, and the
figures are the formulas applied to those sums — the same formulas a direct computation over the
raw tickets uses.

Percentiles come from a bounded histogram: times are bucketed with upper bounds about 10% apart
(1 s to 90 days); p90 is the upper bound of the bucket holding the nearest-rank p90 value, so it
never understates the exact figure and overstates it by less than 10% + 1 s.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, Final


def _bucket_bounds_s() -> tuple[int, ...]:
    bounds: list[int] = []
    k = 0
    while not bounds or bounds[-1] < 90 * 86_400:
        bound = math.ceil(1.1**k)
        if not bounds or bound > bounds[-1]:
            bounds.append(bound)
        k += 1
    return tuple(bounds)


BUCKET_BOUNDS_S: tuple[int, ...] = _bucket_bounds_s()
BUCKETS = len(BUCKET_BOUNDS_S)
_BOUNDS_MS = tuple(b * 1000 for b in BUCKET_BOUNDS_S)
COMPLAINT_CATEGORY = "complaint"
PERCENTILE = 0.9


def bucket_of(duration_ms: int) -> int:
    """Index of the first bucket whose upper bound holds the duration (the last one clamps)."""
    return min(bisect_left(_BOUNDS_MS, max(duration_ms, 0)), BUCKETS - 1)


def one_hot(bucket: int | None) -> tuple[int, ...]:
    hist = [0] * BUCKETS
    if bucket is not None:
        hist[bucket] = 1
    return tuple(hist)


def _zeros() -> tuple[int, ...]:
    return (0,) * BUCKETS


@dataclass(frozen=True)
class KpiSums:
    tickets: int = 0
    complaints: int = 0
    fcr_observed: int = 0
    frt_count: int = 0
    frt_sum_ms: int = 0
    res_count: int = 0
    res_sum_ms: int = 0
    sla_met: int = 0
    sla_breached: int = 0
    escalated: int = 0
    surveys_sent: int = 0
    surveys_answered: int = 0
    csat_count: int = 0
    csat_satisfied: int = 0
    nps_count: int = 0
    nps_promoters: int = 0
    nps_detractors: int = 0
    fcr_answer_count: int = 0
    fcr_answer_yes: int = 0
    praise: int = 0
    frt_hist: tuple[int, ...] = field(default_factory=_zeros)
    res_hist: tuple[int, ...] = field(default_factory=_zeros)

    def __add__(self, other: KpiSums) -> KpiSums:
        return _combine(self, other, 1)

    def __sub__(self, other: KpiSums) -> KpiSums:
        return _combine(self, other, -1)

    @property
    def is_zero(self) -> bool:
        return self == KpiSums()

    def as_row(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in fields(self)
        }

    @classmethod
    def from_row(cls, row: Any) -> KpiSums:
        """From a mapping of column values; NULL, short or absent histograms read as zeros."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = row.get(f.name) if f.name.endswith("_hist") else row[f.name]
            if f.name.endswith("_hist"):
                counts = list(value or ())
                values[f.name] = tuple(counts + [0] * (BUCKETS - len(counts)))[:BUCKETS]
            else:
                values[f.name] = int(value or 0)
        return cls(**values)


SUM_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in fields(KpiSums) if not f.name.endswith("_hist")
)
HIST_COLUMNS: tuple[str, ...] = ("frt_hist", "res_hist")


def _combine(a: KpiSums, b: KpiSums, sign: int) -> KpiSums:
    values: dict[str, Any] = {}
    for f in fields(KpiSums):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, tuple):
            values[f.name] = tuple(i + sign * j for i, j in zip(x, y, strict=True))
        else:
            values[f.name] = x + sign * y
    return KpiSums(**values)


def total(sums: Iterable[KpiSums]) -> KpiSums:
    out = KpiSums()
    for s in sums:
        out = out + s
    return out


@dataclass(frozen=True)
class TicketFacts:
    """One ticket as the KPIs see it; it counts only once it is resolved."""

    resolved_at: datetime | None
    opened_at: datetime | None
    channel: str | None = None
    queue_id: str | None = None
    agent_id: str | None = None
    category: str | None = None
    first_response_at: datetime | None = None
    reopened: bool = False
    recontacted: bool = False
    sla_met: int = 0
    sla_breached: int = 0
    escalated: bool = False
    survey_sent: bool = False
    answered: bool = False
    csat: int | None = None
    nps: int | None = None
    solved_first_contact: bool | None = None
    praised: bool = False
    # When the customer wrote the message that opened the ticket: the response and resolution
    # times count from it (a contact that waited in a backlog waited for the customer too).
    customer_wrote_at: datetime | None = None

    @property
    def clock_start(self) -> datetime | None:
        return self.customer_wrote_at or self.opened_at

    @property
    def day(self) -> date | None:
        return None if self.resolved_at is None else self.resolved_at.date()


def _ms(start: datetime, end: datetime) -> int:
    return max(round((end - start).total_seconds() * 1000), 0)


def contribution(t: TicketFacts) -> KpiSums:
    """What one ticket adds to the rollups (nothing until it is resolved)."""
    start = t.clock_start
    if t.resolved_at is None or start is None:
        return KpiSums()
    frt_ms = None if t.first_response_at is None else _ms(start, t.first_response_at)
    res_ms = _ms(start, t.resolved_at)
    return KpiSums(
        tickets=1,
        complaints=int(t.category == COMPLAINT_CATEGORY),
        fcr_observed=int(not t.reopened and not t.recontacted),
        frt_count=int(frt_ms is not None),
        frt_sum_ms=frt_ms or 0,
        res_count=1,
        res_sum_ms=res_ms,
        sla_met=t.sla_met,
        sla_breached=t.sla_breached,
        escalated=int(t.escalated),
        surveys_sent=int(t.survey_sent),
        surveys_answered=int(t.answered),
        csat_count=int(t.answered and t.csat is not None),
        csat_satisfied=int(t.answered and t.csat is not None and t.csat >= 4),
        nps_count=int(t.answered and t.nps is not None),
        nps_promoters=int(t.answered and t.nps is not None and t.nps >= 9),
        nps_detractors=int(t.answered and t.nps is not None and t.nps <= 6),
        fcr_answer_count=int(t.answered and t.solved_first_contact is not None),
        fcr_answer_yes=int(t.answered and t.solved_first_contact is True),
        praise=int(t.praised),
        frt_hist=one_hot(None if frt_ms is None else bucket_of(frt_ms)),
        res_hist=one_hot(bucket_of(res_ms)),
    )


def ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def nps(promoters: int, detractors: int, answers: int) -> float | None:
    """% promoters (9–10) − % detractors (0–6), from −100 to 100."""
    return None if answers == 0 else (promoters - detractors) * 100 / answers


def histogram_percentile(hist: Sequence[int], q: float = PERCENTILE) -> int | None:
    """Upper bound (s) of the bucket holding the nearest-rank q-percentile."""
    n = sum(hist)
    if n == 0:
        return None
    rank = max(math.ceil(q * n), 1)
    seen = 0
    for index, count in enumerate(hist):
        seen += count
        if seen >= rank:
            return BUCKET_BOUNDS_S[index]
    raise AssertionError("unreachable: rank is at most n")


def nearest_rank_percentile(values: Sequence[float], q: float = PERCENTILE) -> float | None:
    """The exact figure the histogram approximates (for tests and the docs)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


@dataclass(frozen=True)
class Kpis:
    tickets: int
    csat: float | None
    nps: float | None
    fcr_answered: float | None
    fcr_observed: float | None
    first_response_avg_s: float | None
    first_response_p90_s: float | None
    resolution_avg_s: float | None
    resolution_p90_s: float | None
    sla_attainment: float | None
    escalation_rate: float | None
    complaint_rate: float | None
    survey_response_rate: float | None
    surveys_sent: int
    answers: int
    praise_count: int


KPI_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Kpis))


def kpis_of(s: KpiSums, exact_p90s: tuple[float | None, float | None] | None = None) -> Kpis:
    """The figures of some rollup sums; p90s are exact when given (from the raw facts), else
    the histogram's bound."""
    frt_p90, res_p90 = (
        exact_p90s
        if exact_p90s is not None
        else (histogram_percentile(s.frt_hist), histogram_percentile(s.res_hist))
    )
    return Kpis(
        tickets=s.tickets,
        csat=ratio(s.csat_satisfied, s.csat_count),
        nps=nps(s.nps_promoters, s.nps_detractors, s.nps_count),
        fcr_answered=ratio(s.fcr_answer_yes, s.fcr_answer_count),
        fcr_observed=ratio(s.fcr_observed, s.tickets),
        first_response_avg_s=None if s.frt_count == 0 else s.frt_sum_ms / s.frt_count / 1000,
        first_response_p90_s=frt_p90,
        resolution_avg_s=None if s.res_count == 0 else s.res_sum_ms / s.res_count / 1000,
        resolution_p90_s=res_p90,
        sla_attainment=ratio(s.sla_met, s.sla_met + s.sla_breached),
        escalation_rate=ratio(s.escalated, s.tickets),
        complaint_rate=ratio(s.complaints, s.tickets),
        survey_response_rate=ratio(s.surveys_answered, s.surveys_sent),
        surveys_sent=s.surveys_sent,
        answers=s.surveys_answered,
        praise_count=s.praise,
    )


# The dimensions a rollup row is kept for; "all" is the per-day total (group_by=day).
DIMENSIONS: tuple[str, ...] = ("all", "queue", "agent", "channel", "category")
NONE_VALUE = "(none)"


def dimension_values(t: TicketFacts) -> dict[str, str]:
    return {
        "all": "",
        "queue": t.queue_id or NONE_VALUE,
        "agent": t.agent_id or NONE_VALUE,
        "channel": t.channel or NONE_VALUE,
        "category": t.category or NONE_VALUE,
    }


RollupKey = tuple[date, str, str]


def rollup_delta(before: TicketFacts | None, after: TicketFacts) -> dict[RollupKey, KpiSums]:
    """The change to each rollup row when a ticket's facts change from `before` to `after`.

    The old contribution is taken back and the new one added, so a ticket that is reopened and
    resolved on another day, or whose survey is answered weeks later, is still counted once.
    """
    delta: dict[RollupKey, KpiSums] = {}
    for facts, sign in ((before, -1), (after, 1)):
        if facts is None or facts.day is None:
            continue
        part = contribution(facts)
        for dim, value in dimension_values(facts).items():
            key = (facts.day, dim, value)
            current = delta.get(key, KpiSums())
            delta[key] = current + part if sign > 0 else current - part
    return {k: v for k, v in delta.items() if not v.is_zero}


# Characters that make a spreadsheet read a cell as a formula (or, for tab and carriage return,
# shift it so that the next character does): OWASP's list for CSV injection.
FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """A text cell no spreadsheet runs as a formula: one starting with a trigger character gets
    a leading single quote (OWASP's advice; shown, but not evaluated). Only for text: a number
    written as a number, even negative, is never a formula and stays as it is."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text
