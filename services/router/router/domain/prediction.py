"""Predicted SLA breach: a waiting ticket whose next SLA deadline comes before it is likely to
be offered (its queue's recent wait, an exponentially weighted mean of the time from queued to
offered) is raised one priority band, and its offer says why; if its routing step overflows,
it overflows early to the step's target, unless that queue is known to wait as long.

Pure: the assigner feeds each offer's wait in (`QueueWaits.observe`) and asks per ticket."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class QueueWaits:
    """Each queue's recent wait, weighted towards the latest offers (`weight` of each new one)."""

    weight: float = 0.2
    _mean_s: dict[str, float] = field(default_factory=dict)

    def observe(self, queue_id: str, wait: timedelta) -> None:
        seconds = max(wait.total_seconds(), 0.0)
        mean = self._mean_s.get(queue_id)
        self._mean_s[queue_id] = seconds if mean is None else mean + self.weight * (seconds - mean)

    def expected(self, queue_id: str) -> timedelta | None:
        """None until the queue has had an offer."""
        mean = self._mean_s.get(queue_id)
        return None if mean is None else timedelta(seconds=mean)

    def known(self) -> dict[str, timedelta]:
        """Every queue with a wait so far."""
        return {q: timedelta(seconds=s) for q, s in self._mean_s.items()}


@dataclass(frozen=True, slots=True)
class BreachForecast:
    deadline: datetime
    metric: str | None
    queue_wait: timedelta
    overdue: bool = False  # the deadline had passed already

    def explain(self) -> str:
        """E.g. 'predicted to breach first response at 10:42 UTC; queue wait 14 min', or
        'breached first response at 10:42 UTC; ...' for one already overdue."""
        what = (self.metric or "its SLA deadline").replace("_", " ")
        minutes = self.queue_wait.total_seconds() / 60
        wait = f"{minutes:.0f} min" if minutes >= 1 else f"{self.queue_wait.total_seconds():.0f} s"
        verb = "breached" if self.overdue else "predicted to breach"
        return f"{verb} {what} at {self.deadline:%H:%M} UTC; queue wait {wait}"


def forecast_breach(
    deadline: datetime | None,
    metric: str | None,
    queue_wait: timedelta | None,
    queued_at: datetime | None,
    now: datetime,
) -> BreachForecast | None:
    """A forecast if the ticket, offered after its queue's usual wait from when it was queued
    (or now, if it has waited longer already), would be offered after its deadline; None if it
    has no deadline, the queue no history, or it is expected in time."""
    if deadline is None or queue_wait is None:
        return None
    expected_offer = max(now, (queued_at or now) + queue_wait)
    if expected_offer < deadline:
        return None
    return BreachForecast(deadline, metric, queue_wait, overdue=deadline <= now)


def raised_rank(priority_rank: int, forecast: BreachForecast | None) -> int:
    """A ticket predicted to breach goes one priority band up (ordered there by its deadline
    with the others); rank 0 (urgent) has nowhere higher to go."""
    return max(priority_rank - 1, 0) if forecast is not None else priority_rank


def overflow_helps(queue_wait: timedelta, target_wait: timedelta | None) -> bool:
    """Whether moving a ticket predicted to breach to the overflow target gets it offered
    sooner: the target's recent wait is shorter, or unknown (no offer there yet on this
    replica: its agents may well be free)."""
    return target_wait is None or target_wait < queue_wait
