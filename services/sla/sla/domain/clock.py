"""SLA clocks: one per ticket and metric, fed by the ticket's events in order. A clock counts
business time while it runs, knows its deadline and warning moment, and keeps a timeline that
shows a person why the deadline is where it is.

Rules (`TicketClocks` applies them to a ticket's events):
- first_response starts when the ticket opens and is fulfilled by the first agent reply.
- next_response starts on a customer message once an agent has replied and no reply is owed
  yet; a further customer message while it runs does not restart it. Any agent reply, on any
  channel, fulfils it. Each start is a new cycle (cycle 1, 2, ...).
- resolution starts when the ticket opens, pauses while the ticket is pending the customer and
  is fulfilled when it is resolved. A reopen resumes it with the business time already consumed
  (the customer's clock does not start over because the first fix did not hold).
- Resolving cancels a response clock still owed (nothing was answered, so neither met nor
  breached); closing without resolving (spam, duplicate) cancels every running clock.

Breach: a running clock is breached once `now >= deadline`; a clock fulfilled at or before its
deadline is met. A breach, once recorded, stays recorded even if a re-target moves the deadline
later (it was announced). Events stamped earlier than the clock's last entry (clock skew between
producers) are treated as happening at that last entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from ccshared.events.payloads import SlaMetric, TicketStatus
from sla.domain.calendar import BusinessCalendar, add_business_time, business_time_between

ClockState = Literal["not_started", "running", "paused", "fulfilled", "cancelled"]
ClockStatus = Literal["not_started", "running", "at_risk", "paused", "breached", "met", "cancelled"]
EntryKind = Literal[
    "started", "paused", "resumed", "fulfilled", "warned", "breached", "retargeted", "cancelled"
]

_ZERO: Final = timedelta(0)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened to a clock. `consumed` is business time consumed at `at`;
    `deadline` is the deadline as it stood right after the entry (None while not running)."""

    kind: EntryKind
    at: datetime
    cycle: int
    consumed: timedelta
    deadline: datetime | None
    note: str = ""


@dataclass(eq=False)
class SlaClock:
    """The clock of one metric of one ticket. Transition methods return whether anything
    changed: repeating an event (a redelivery, a second pause) is a no-op, not an error."""

    ticket_id: uuid.UUID
    metric: SlaMetric
    target: timedelta
    calendar: BusinessCalendar
    warn_at_share: float = 0.75
    cycle: int = 0
    state: ClockState = "not_started"
    consumed: timedelta = _ZERO  # business time consumed before `running_since`
    running_since: datetime | None = None
    deadline: datetime | None = None
    warning_at: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    fulfilled_at: datetime | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)

    # --- transitions -------------------------------------------------------------------------

    def start(self, at: datetime) -> bool:
        """Start a new cycle (from not started, fulfilled or cancelled)."""
        if self.state in ("running", "paused"):
            return False
        at = self._in_order(at)
        self.cycle += 1
        self.consumed = _ZERO
        self.warned_at = self.breached_at = self.fulfilled_at = None
        self._run_from(at)
        self._record("started", at)
        return True

    def pause(self, at: datetime) -> bool:
        if self.state != "running":
            return False
        at = self._in_order(at)
        self._observe(at)
        self._stop_running(at, "paused")
        self._record("paused", at)
        return True

    def resume(self, at: datetime, note: str = "") -> bool:
        """Continue counting from the business time already consumed. Also reopens a fulfilled
        clock (a reopened ticket's resolution clock)."""
        if self.state not in ("paused", "fulfilled"):
            return False
        at = self._in_order(at)
        self.fulfilled_at = None
        self._run_from(at)
        self._record("resumed", at, note)
        self._observe(at)
        return True

    def fulfill(self, at: datetime) -> bool:
        if self.state not in ("running", "paused"):
            return False
        at = self._in_order(at)
        if self.state == "paused":
            # Resolved while pending the customer: report the deadline it would have had.
            self._run_from(at)
        self._observe(at, fulfilling=True)
        self._stop_running(at, "fulfilled")
        self.fulfilled_at = at
        self._record("fulfilled", at, "met" if self.breached_at is None else "late")
        return True

    def cancel(self, at: datetime, note: str = "") -> bool:
        if self.state not in ("running", "paused"):
            return False
        at = self._in_order(at)
        self._observe(at)
        self._stop_running(at, "cancelled")
        self._record("cancelled", at, note)
        return True

    def retarget(
        self,
        at: datetime,
        target: timedelta,
        calendar: BusinessCalendar | None = None,
        warn_at_share: float | None = None,
    ) -> bool:
        """The policy changed. Time consumed so far was counted by the old calendar and stays;
        the rest counts by the new one against the new target. A new target already used up
        breaches at `at`."""
        calendar = calendar or self.calendar
        warn_at_share = self.warn_at_share if warn_at_share is None else warn_at_share
        if (target, calendar, warn_at_share) == (self.target, self.calendar, self.warn_at_share):
            return False
        if target <= _ZERO:
            raise ValueError(f"target must be positive, got {target}")
        at = self._in_order(at)
        running = self.state == "running"
        if running:
            self._observe(at)
            self._stop_running(at, "running")
        note = f"target {self.target} -> {target}"
        if calendar.id != self.calendar.id:
            note += f", calendar {self.calendar.id} -> {calendar.id}"
        if warn_at_share != self.warn_at_share:
            note += f", warn at {self.warn_at_share:g} -> {warn_at_share:g}"
        self.target, self.calendar, self.warn_at_share = target, calendar, warn_at_share
        if running:
            self._run_from(at)
        self._record("retargeted", at, note)
        self._observe(at)
        return True

    def observe(self, now: datetime) -> list[TimelineEntry]:
        """Record the warning and breach the clock has reached by `now` (the timer handler
        calls this); returns the entries it added."""
        before = len(self.timeline)
        self._observe(self._in_order(now))
        return self.timeline[before:]

    # --- queries -----------------------------------------------------------------------------

    def consumed_at(self, now: datetime) -> timedelta:
        """Business time consumed by `now` (pauses excluded)."""
        if self.state == "running" and self.running_since is not None:
            return self.consumed + max(
                business_time_between(self.calendar, self.running_since, now), _ZERO
            )
        return self.consumed

    def remaining_at(self, now: datetime) -> timedelta:
        """Business time left until the deadline at `now`; negative once overdue."""
        return self.target - self.consumed_at(now)

    def status(self, now: datetime) -> ClockStatus:
        if self.state in ("not_started", "cancelled"):
            return self.state
        if self.state == "fulfilled":
            return "met" if self.breached_at is None else "breached"
        running = self.state == "running"
        if self.breached_at is not None or (
            running and self.deadline is not None and now >= self.deadline
        ):
            return "breached"
        if running and self.warning_at is not None and now >= self.warning_at:
            return "at_risk"
        return self.state

    # --- internals ---------------------------------------------------------------------------

    def _in_order(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError(f"clock events need an aware datetime, got {at!r}")
        if self.timeline and at < self.timeline[-1].at:
            return self.timeline[-1].at
        return at

    def _run_from(self, at: datetime) -> None:
        self.state = "running"
        self.running_since = at
        # A moment already passed stays where it was (a resumed overdue clock shows its real
        # deadline, and its escalations count from it); one still ahead counts from `at`.
        left = self.target - self.consumed
        if left <= _ZERO and self.breached_at is not None:
            self.deadline = self.breached_at
        else:
            self.deadline = add_business_time(self.calendar, at, max(left, _ZERO))
        warn_left = self.target * self.warn_at_share - self.consumed
        if warn_left <= _ZERO and self.warned_at is not None:
            self.warning_at = self.warned_at
        else:
            self.warning_at = add_business_time(self.calendar, at, max(warn_left, _ZERO))

    def _stop_running(self, at: datetime, state: ClockState) -> None:
        self.consumed = self.consumed_at(at)
        self.state = state
        self.running_since = None
        if state != "running":
            # A stopped clock has no deadline ahead; a fulfilled one keeps it for the met event.
            self.deadline = self.deadline if state == "fulfilled" else None
            self.warning_at = None

    def _observe(self, until: datetime, *, fulfilling: bool = False) -> None:
        if self.state == "running":
            if self.warned_at is None and self.warning_at is not None and self.warning_at <= until:
                self.warned_at = self.warning_at
                self._record("warned", self.warning_at, consumed=self.target * self.warn_at_share)
            reached = self.deadline is not None and (
                self.deadline < until or (self.deadline == until and not fulfilling)
            )
            if self.breached_at is None and reached and self.deadline is not None:
                self.breached_at = self.deadline
                self._record("breached", self.deadline, consumed=max(self.target, self.consumed))
        elif self.state == "paused":
            # Only a re-target can make a paused clock cross its target.
            if self.warned_at is None and self.consumed >= self.target * self.warn_at_share:
                self.warned_at = until
                self._record("warned", until)
            if self.breached_at is None and self.consumed >= self.target:
                self.breached_at = until
                self._record("breached", until)

    def _record(
        self, kind: EntryKind, at: datetime, note: str = "", consumed: timedelta | None = None
    ) -> None:
        self.timeline.append(
            TimelineEntry(
                kind=kind,
                at=at,
                cycle=self.cycle,
                consumed=self.consumed_at(at) if consumed is None else consumed,
                deadline=self.deadline if self.state == "running" else None,
                note=note,
            )
        )


# --- a ticket's clocks ---------------------------------------------------------------------------

_RESPONSE_METRICS: Final[tuple[SlaMetric, ...]] = ("first_response", "next_response")


@dataclass(eq=False)
class TicketClocks:
    """The clocks of one ticket, with the rules of which event moves which clock. Only the
    metrics the policy has a target for get a clock. Each handler returns the clocks it changed
    (to persist, reschedule timers for, and announce met ones)."""

    ticket_id: uuid.UUID
    clocks: dict[SlaMetric, SlaClock]
    agent_replied: bool = False

    @classmethod
    def open(
        cls,
        ticket_id: uuid.UUID,
        targets: Mapping[SlaMetric, timedelta],
        calendar: BusinessCalendar,
        at: datetime,
        warn_at_share: float = 0.75,
    ) -> tuple[TicketClocks, list[SlaClock]]:
        clocks = {
            metric: SlaClock(ticket_id, metric, target, calendar, warn_at_share)
            for metric, target in targets.items()
        }
        ticket = cls(ticket_id, clocks)
        return ticket, ticket._each(("first_response", "resolution"), lambda c: c.start(at))

    def customer_message(self, at: datetime) -> list[SlaClock]:
        """A customer message joined the ticket: a reply is owed again (if one was given)."""
        if not self.agent_replied:
            return []  # the first response is still owed; it covers this message too
        return self._each(("next_response",), lambda c: c.start(at))

    def agent_reply(self, at: datetime) -> list[SlaClock]:
        self.agent_replied = True
        return self._each(_RESPONSE_METRICS, lambda c: c.fulfill(at))

    def status_changed(
        self, from_status: TicketStatus, to_status: TicketStatus, at: datetime
    ) -> list[SlaClock]:
        if to_status == "pending_customer":
            return self._each(("resolution",), lambda c: c.pause(at))
        if from_status == "pending_customer" and to_status not in ("resolved", "closed"):
            return self._each(("resolution",), lambda c: c.resume(at))
        return []

    def resolved(self, at: datetime) -> list[SlaClock]:
        changed = self._each(_RESPONSE_METRICS, lambda c: c.cancel(at, "ticket resolved"))
        return changed + self._each(("resolution",), lambda c: c.fulfill(at))

    def reopened(self, at: datetime) -> list[SlaClock]:
        return self._each(("resolution",), lambda c: c.resume(at, "ticket reopened"))

    def closed(self, at: datetime) -> list[SlaClock]:
        return self._each(tuple(self.clocks), lambda c: c.cancel(at, "ticket closed"))

    def retarget(
        self,
        targets: Mapping[SlaMetric, timedelta],
        calendar: BusinessCalendar,
        at: datetime,
        warn_at_share: float = 0.75,
    ) -> list[SlaClock]:
        """A new policy (version) applies: re-target the clocks it still has a target for and
        cancel those it no longer has. A metric the old policy had no target for stays
        untracked for this ticket."""
        changed: list[SlaClock] = []
        for metric, clock in self.clocks.items():
            target = targets.get(metric)
            done = (
                clock.cancel(at, "policy has no target")
                if target is None
                else clock.retarget(at, target, calendar, warn_at_share)
            )
            if done:
                changed.append(clock)
        return changed

    def _each(
        self, metrics: tuple[SlaMetric, ...], move: Callable[[SlaClock], bool]
    ) -> list[SlaClock]:
        return [c for m in metrics if (c := self.clocks.get(m)) is not None and move(c)]
