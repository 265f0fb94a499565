"""The assignment loop: offers waiting tickets to agents with free capacity, expires offers
nobody accepted, and moves tickets whose routing step timed out to the next step (overflow).

A round takes the most urgent waiting tickets of every queue in one short transaction that
locks them (SKIP LOCKED, so several router replicas share the work), decides them in memory,
then locks the chosen agents in id order and re-counts their load under the lock: no ticket is
offered twice and no agent goes over capacity, whatever the replicas do. The offers, decisions,
status changes, history and events of the whole batch are written in one statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.trace import Span, Tracer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared import tracing
from ccshared.events import Envelope, new_event
from ccshared.events.payloads import RoutingCandidate, TicketAssigned, TicketStatusChanged
from ccshared.ids import uuid7
from ccshared.logging import correlation_id
from router.db import agents as agents_db
from router.db import offers as offers_db
from router.db import queues as queues_db
from router.db.notifications import write_notifications
from router.db.policies import PolicyCache
from router.db.queues import QueueRow
from router.db.tickets import (
    get_ticket,
    ticket_traceparent,
    ticket_traceparents,
    write_change,
)
from router.domain import notifications, rounds, tickets
from router.domain.assignment import (
    MISSED_OFFER,
    WRAP_UP_ENDED,
    Agent,
    AgentStatus,
    Candidate,
    Decision,
    candidates_json,
    ineligibility,
    refusal_cutoff,
    status_after_missed_offer,
)
from router.domain.lifecycle import transition
from router.domain.notifications import Notification
from router.domain.prediction import BreachForecast, QueueWaits, forecast_breach, overflow_helps
from router.domain.rounds import Planned
from router.domain.tickets import ROUTER, overflow_change
from router.metrics import OFFERS_MADE, TIMED_OUT

log = logging.getLogger(__name__)

_WAITING_WINDOW = 50  # waiting tickets looked at per queue and channel in one batch
_MAX_BATCHES_PER_ROUND = 100  # so deep queues cannot keep one round going for ever
# The best candidates an assignment event carries; the stored decision lists every agent.
EVENT_CANDIDATES = 10


Forecasts = dict[uuid.UUID, BreachForecast]


def _forecasts(rows: list[Any], waits: QueueWaits | None, now: datetime) -> Forecasts:
    """The batch's tickets predicted to breach their next SLA deadline before they are likely
    to be offered (their queue's recent wait); none without prediction."""
    if waits is None:
        return {}
    found: Forecasts = {}
    for row in rows:
        forecast = forecast_breach(
            row.sla_deadline,
            row.sla_deadline_metric,
            waits.expected(row.queue_id),
            row.queued_at,
            now,
        )
        if forecast is not None:
            found[row.id] = forecast
    return found


_YIELD_EVERY = 10


async def _confirm(
    conn: AsyncConnection,
    plans: list[Planned],
    roster: dict[str, Agent],
    now: datetime,
    refused_since: datetime,
) -> list[Planned]:
    """Lock the chosen agents (in id order) and re-read them and their load under the lock:
    what another replica or an API call changed since the round began is seen here. Keeps,
    in order, the offers each agent still has room for; the round's view of those agents
    becomes the locked truth plus the kept offers."""
    ids = sorted({d.chosen_agent_id for _, d in plans if d.chosen_agent_id})
    offers = [(t.id, d.chosen_agent_id or "") for t, d in plans]
    locked, declined = await agents_db.lock_agents(conn, ids, offers, refused_since)
    roster.update(locked)
    for agent_id in set(ids) - locked.keys():
        roster.pop(agent_id, None)  # deleted meanwhile
    kept: list[Planned] = []
    for ticket, decision in plans:
        agent = roster.get(decision.chosen_agent_id or "")
        if agent is None or ineligibility(agent, ticket.channel, frozenset()) is not None:
            continue
        if (ticket.id, agent.id) in declined:
            continue
        rounds.book(roster, agent.id, ticket.channel, now)
        kept.append(Planned(ticket, decision))
    return kept


async def _plan_offers(
    rows: list[Any],
    queues: dict[str, QueueRow],
    roster: dict[str, Agent],
    now: datetime,
    forecasts: Forecasts | None = None,
) -> list[Planned]:
    """Decide the batch's waiting tickets in memory (`rounds.plan_offers`), queue by queue,
    most urgent first, booking each offer into the round's view of the agents."""
    plans: list[Planned] = []
    for decided, plan in enumerate(rounds.plan_offers(rows, queues, roster, now, forecasts), 1):
        if plan is not None:
            plans.append(plan)
        if decided % _YIELD_EVERY == 0:
            # Deciding is CPU: let the consumer, the relay and API calls in between, or
            # they wait for the batch.
            await asyncio.sleep(0)
    return plans


def _progressing(
    rows: list[Any], plans: list[Planned], kept: list[Planned]
) -> set[tuple[str, str]]:
    """The (queue, channel) pairs where another batch may offer more: this one planned offers
    there and saw a full window of waiting tickets, or dropped some under the agents' lock
    (its view of an agent was corrected). One it planned nothing for is done for this round."""
    seen = Counter((row.queue_id, row.channel) for row in rows)
    planned = Counter((t.queue_id, t.channel) for t, _ in plans)
    dropped = planned - Counter((t.queue_id, t.channel) for t, _ in kept)
    return {pair for pair in planned if seen[pair] == _WAITING_WINDOW or dropped[pair] > 0}


@dataclasses.dataclass
class _OfferRows:
    """A batch's rows for `offers_db.write_offers`, gathered offer by offer."""

    now: datetime
    correlation_id: str | None
    candidates_json: Callable[[tuple[Candidate, ...]], str]
    forecasts: Forecasts = dataclasses.field(default_factory=dict)
    decisions: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    offers: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    tickets: list[tuple[uuid.UUID, str, str]] = dataclasses.field(default_factory=list)
    history: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    events: list[Envelope] = dataclasses.field(default_factory=list)
    notifications: list[Notification] = dataclasses.field(default_factory=list)
    per_agent: dict[str, int] = dataclasses.field(default_factory=dict)
    rr_cursors: dict[str, str] = dataclasses.field(default_factory=dict)
    # Each ticket's events, and the agent offered, to continue the ticket's trace (if traced).
    events_of: dict[uuid.UUID, tuple[str, list[uuid.UUID]]] = dataclasses.field(
        default_factory=dict
    )

    def add(self, queue: QueueRow, ticket: Any, decision: Decision) -> None:
        now, agent_id = self.now, decision.chosen_agent_id
        assert agent_id is not None
        self.per_agent[agent_id] = self.per_agent.get(agent_id, 0) + 1
        if decision.strategy == "round_robin":
            self.rr_cursors[queue.id] = agent_id  # the queue's last offer, in decision order
        decision_id, offer_id = uuid7(), uuid7()
        self.decisions.append(
            (
                decision_id,
                ticket.id,
                now,
                ticket.policy_version,
                ticket.policy_step,
                queue.id,
                decision.strategy,
                agent_id,
                self.candidates_json(decision.candidates),
                decision.tie_breaker,
            )
        )
        expires = now + timedelta(seconds=queue.offer_timeout_s)
        self.offers.append((offer_id, ticket.id, agent_id, "pending", now, expires, decision_id))
        self.notifications.append(notifications.new_offer(agent_id, ticket.id, offer_id, now))
        new_status = transition(ticket.status, "offer")
        self.tickets.append((ticket.id, agent_id, new_status))
        reason = f"offered to {agent_id}"
        forecast = self.forecasts.get(ticket.id)
        if forecast is not None:
            reason += f"; {forecast.explain()}"  # why it went ahead of its priority band
        self.history.append(
            (ticket.id, now, ROUTER, "offer", ticket.status, new_status, reason, "{}")
        )
        changed = TicketStatusChanged(
            ticket_id=ticket.id,
            from_status=ticket.status,
            to_status=new_status,
            actor=ROUTER,
            reason=reason,
            at=now,
        )
        assigned = TicketAssigned(
            ticket_id=ticket.id,
            agent_id=agent_id,
            owner_agent_id=ticket.owner_agent_id or agent_id,
            queue_id=queue.id,
            decision_id=decision_id,
            policy_version=ticket.policy_version,
            policy_step=ticket.policy_step,
            strategy=decision.strategy,
            candidates=[
                RoutingCandidate.model_construct(
                    agent_id=c.agent_id, score=c.score, passed_over=c.passed_over
                )
                for c in decision.candidates[:EVENT_CANDIDATES]
            ],
            candidates_considered=len(decision.candidates),
            tie_breaker=decision.tie_breaker,
            at=now,
        )
        cid = self.correlation_id
        written = [
            new_event(changed, producer=ROUTER, correlation_id=cid),
            new_event(assigned, producer=ROUTER, correlation_id=cid),
        ]
        self.events.extend(written)
        self.events_of[ticket.id] = (agent_id, [e.event_id for e in written])


class Assigner:
    def __init__(
        self,
        engine: AsyncEngine,
        policies: PolicyCache,
        *,
        interval_s: float,
        min_gap_s: float = 0.005,
        predict_breach: bool = True,
        refusal_cooldown_s: float = 60.0,
        missed_offer_status: AgentStatus = "away",
        tracer: Tracer | None = None,
    ) -> None:
        self.engine = engine
        # The service's, when tracing is on: an offer continues the trace of its contact.
        self.tracer = tracer
        # Each queue's recent wait from queued to offered (this replica's offers): a waiting
        # ticket predicted to breach its SLA deadline before then goes one band up.
        self.waits: QueueWaits | None = QueueWaits() if predict_breach else None
        self.policies = policies
        self.interval_s = interval_s
        # A refusal (decline or timeout) keeps its agent from the ticket this long, no longer.
        self.refusal_cooldown_s = refusal_cooldown_s
        # Where an agent who let an offer time out goes (reason `missed_offer`).
        self.missed_offer_status = missed_offer_status
        # Nudges arrive per committed event; rounds closer together than this gain nothing.
        self.min_gap_s = min_gap_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.offers_made = 0
        # The agents as the last round left them (its own offers booked). Read again when
        # something may have changed them that the rounds do not see: an API call (status,
        # an answered offer, a resolved ticket), an expired offer, or at the latest after
        # `interval_s` (another replica's offers; its rounds re-check every chosen agent
        # under its lock anyway, so a stale view can cost a better choice, never capacity).
        self._roster: dict[str, Agent] | None = None
        self._roster_read_at = 0.0
        self._agent_changes = 0
        self._housekeeping_at = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="assigner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def nudge(self, *, agents_changed: bool = True) -> None:
        """Something changed that may allow an offer: run the loop now. `agents_changed`:
        an agent's status or load may have changed (not so for a new or moved ticket)."""
        if agents_changed:
            self._roster = None
            self._agent_changes += 1
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            self._wake.clear()
            try:
                # Offer timeouts and overflow steps are checked every interval, not on every
                # nudge: a round right after each committed contact would mostly repeat them.
                due = time.monotonic() - self._housekeeping_at >= self.interval_s
                await self.tick(housekeeping=due)
            except Exception:  # the loop must outlive a bad round
                log.exception("assignment round failed")
            await asyncio.sleep(self.min_gap_s)

    async def tick(self, now: datetime | None = None, *, housekeeping: bool = True) -> int:
        now = now or datetime.now(UTC)
        if housekeeping:
            self._housekeeping_at = time.monotonic()
            if await self.expire_offers(now):
                self._roster = None  # those agents hold less now, and may be away
            if await self.end_wrap_ups(now):
                self._roster = None
            await self.overflow(now)
            await self.overflow_early(now)
        made = 0
        queues = await self._queues()
        if not queues:
            return 0
        roster = await self._current_roster()
        # (queue, channel) pairs nobody could take anything from now are skipped without
        # scanning their tickets.
        active = [(q, channel) for q in queues for channel in rounds.servable(q, roster)]
        for _ in range(_MAX_BATCHES_PER_ROUND):
            if not active:
                break
            offered, progressing, cursors = await self._offer_batch(active, now, roster)
            made += offered
            active = [
                (dataclasses.replace(q, rr_cursor=cursors[q.id]) if q.id in cursors else q, c)
                for q, c in active
                if (q.id, c) in progressing
            ]
        self.offers_made += made
        OFFERS_MADE.inc(made)
        return made

    async def _current_roster(self) -> dict[str, Agent]:
        if self._roster is None or time.monotonic() - self._roster_read_at >= self.interval_s:
            read_at, changes = time.monotonic(), self._agent_changes
            async with self.engine.connect() as conn:
                roster = await agents_db.roster(conn)
            # A change announced while this was being read may not be in it: use it for this
            # round, but read again for the next.
            fresh = changes == self._agent_changes
            self._roster, self._roster_read_at = (roster if fresh else None), read_at
            return roster
        return self._roster

    async def _queues(self) -> list[QueueRow]:
        async with self.engine.connect() as conn:
            return await queues_db.queues_with_waiting(conn)

    async def _offer_batch(
        self, pairs: list[tuple[QueueRow, str]], now: datetime, roster: dict[str, Agent]
    ) -> tuple[int, set[tuple[str, str]], dict[str, str]]:
        """Offer what can be offered of the most urgent waiting tickets of each (queue,
        channel), in one transaction. Returns how many offers it made, the pairs where another
        batch may make more (it planned offers there and saw a full window of waiting tickets,
        or had to drop some under the agents' lock), and the round-robin cursors it wrote."""
        now = max(now, datetime.now(UTC))  # the offers' own time, not the round's start
        try:
            return await self._offer_batch_in(pairs, now, roster)
        except BaseException:
            # The batch's bookings in the round's view of the agents were rolled back with it.
            self._roster = None
            raise

    async def _offer_batch_in(
        self, pairs: list[tuple[QueueRow, str]], now: datetime, roster: dict[str, Agent]
    ) -> tuple[int, set[tuple[str, str]], dict[str, str]]:
        queues = {q.id: q for q, _ in pairs}
        refused_since = refusal_cutoff(now, self.refusal_cooldown_s)
        async with self.engine.begin() as conn:
            rows = await queues_db.waiting_tickets(
                conn, [(q.id, c) for q, c in pairs], _WAITING_WINDOW, refused_since
            )
            forecasts = _forecasts(rows, self.waits, now)
            plans = await _plan_offers(rows, queues, roster, now, forecasts)
            kept = await _confirm(conn, plans, roster, now, refused_since) if plans else []
            cursors = await self._write_offers(conn, queues, kept, now, forecasts) if kept else {}
        if self.waits is not None:
            for ticket, _decision in kept:
                if ticket.queued_at is not None:
                    self.waits.observe(ticket.queue_id, now - ticket.queued_at)
        return len(kept), _progressing(rows, plans, kept), cursors

    async def _write_offers(
        self,
        conn: AsyncConnection,
        queues: dict[str, QueueRow],
        plans: list[Planned],
        now: datetime,
        forecasts: Forecasts | None = None,
    ) -> dict[str, str]:
        """The offers, their routing decisions, the tickets' new status and history, and the
        events, for a whole batch, in one statement. Returns the round-robin cursors written
        (queue → the last agent offered)."""
        batch = _OfferRows(now, correlation_id.get(), candidates_json, forecasts or {})
        for ticket, decision in plans:
            batch.add(queues[ticket.queue_id], ticket, decision)
        spans = await self._offer_spans(conn, batch)
        try:
            await offers_db.write_offers(
                conn,
                now=now,
                decisions=batch.decisions,
                offers=batch.offers,
                tickets=batch.tickets,
                per_agent=batch.per_agent,
                rr_cursors=batch.rr_cursors,
                history=batch.history,
                events=batch.events,
                notifications=batch.notifications,
                parents={
                    event_id: parent
                    for ticket_id, span in spans.items()
                    if (parent := tracing.traceparent_of(span)) is not None
                    for event_id in batch.events_of[ticket_id][1]
                },
            )
        except BaseException as exc:
            for span in spans.values():
                tracing.failed(span, exc)
            raise
        finally:
            for span in spans.values():
                span.end()
        return batch.rr_cursors

    async def _offer_spans(self, conn: AsyncConnection, batch: _OfferRows) -> dict[uuid.UUID, Span]:
        """When traced: for each ticket of the batch whose contact was, a span `ticket offer`
        continuing that contact's trace, parent of the ticket's events. Nothing (and no query)
        when tracing is off."""
        if self.tracer is None or not tracing.active() or not batch.events_of:
            return {}
        parents = await ticket_traceparents(conn, list(batch.events_of))
        spans = {}
        for ticket_id, parent in parents.items():
            span = tracing.start_continuing(
                parent,
                "ticket offer",
                self.tracer,
                attributes={
                    "cc.ticket_id": str(ticket_id),
                    "cc.agent_id": batch.events_of[ticket_id][0],
                },
            )
            if span is not None:
                spans[ticket_id] = span
        return spans

    async def expire_offers(self, now: datetime) -> int:
        """Offers past their time: the ticket back to its queue, the agent told (a
        `missed_offer` notification) and, if available, moved to `missed_offer_status` (reason
        `missed_offer`) until they come back."""
        away = status_after_missed_offer("available", self.missed_offer_status)
        async with self.engine.begin() as conn:
            expired = await offers_db.expire_offers(conn, now)
            for row in expired:
                ticket = await get_ticket(conn, row.ticket_id, lock=True)
                if ticket.status == "assigned" and ticket.assignee_agent_id == row.agent_id:
                    reason = f"offer to {row.agent_id} timed out"
                    change = tickets.change(ticket, "queue", actor=ROUTER, at=now, reason=reason)
                    # When traced, its events continue the trace of the ticket's contact.
                    parent = (
                        await ticket_traceparent(conn, ticket.id)
                        if self.tracer is not None and tracing.active()
                        else None
                    )
                    with tracing.continuing(
                        parent,
                        "offer expired",
                        self.tracer,
                        attributes={"cc.ticket_id": str(ticket.id), "cc.agent_id": row.agent_id},
                    ):
                        await write_change(conn, change)
            await write_notifications(
                conn,
                [notifications.missed_offer(r.agent_id, r.ticket_id, r.id, now) for r in expired],
            )
            for agent_id, ticket_id in sorted({(r.agent_id, r.ticket_id) for r in expired}):
                if away is not None:  # in agent id order, as every replica locks agents
                    await agents_db.change_status(
                        conn,
                        agent_id,
                        away,
                        reason=MISSED_OFFER,
                        actor=ROUTER,
                        at=now,
                        ticket_id=ticket_id,
                        only_from=("available",),
                    )
        TIMED_OUT.inc(len(expired))
        return len(expired)

    async def end_wrap_ups(self, now: datetime) -> int:
        """Agents whose wrap-up is over are available again (reason `wrap_up_ended`)."""
        async with self.engine.begin() as conn:
            over = await agents_db.wrap_ups_over(conn, now)
            for agent_id in over:
                await agents_db.change_status(
                    conn,
                    agent_id,
                    "available",
                    reason=WRAP_UP_ENDED,
                    actor=ROUTER,
                    at=now,
                    only_from=("wrap_up",),
                )
        return len(over)

    async def overflow_early(self, now: datetime) -> int:
        """Waiting tickets predicted to breach their SLA deadline before they are likely to be
        offered in their queue move now to their step's overflow target, if the policy has
        one and that queue is not known to wait as long (`overflow_helps`); the history and
        `ticket.routed` say why. Nothing without prediction."""
        if self.waits is None:
            return 0
        waits = self.waits.known()
        if not waits:
            return 0
        policy = await self.policies.current()
        moved = 0
        async with self.engine.begin() as conn:
            seconds = {q: w.total_seconds() for q, w in waits.items()}
            for row in await queues_db.early_overflow_candidates(conn, now, seconds):
                forecast = forecast_breach(
                    row.sla_deadline,
                    row.sla_deadline_metric,
                    waits[row.queue_id],
                    row.queued_at,
                    now,
                )
                if forecast is None:
                    continue
                ticket = await get_ticket(conn, row.id)
                change = overflow_change(ticket, policy, now, forecast)
                if change is None:
                    continue
                if not overflow_helps(waits[row.queue_id], waits.get(change.sets["queue_id"])):
                    continue
                await write_change(conn, change)
                moved += 1
        return moved

    async def overflow(self, now: datetime) -> int:
        """Waiting tickets whose routing step timed out move to the policy's next step."""
        policy = await self.policies.current()
        moved = 0
        async with self.engine.begin() as conn:
            for ticket_id in await queues_db.overflow_due(conn, now):
                ticket = await get_ticket(conn, ticket_id)
                change = overflow_change(ticket, policy, now)
                if change is None:
                    await queues_db.clear_step_timeout(conn, ticket.id)
                    continue
                await write_change(conn, change)
                moved += 1
                if self.waits is not None and ticket.queued_at is not None:
                    # It waited its step's whole timeout without an offer: the queue's wait
                    # is at least that. Only offers fed the mean before, so a queue whose
                    # tickets overflowed away unoffered looked quick.
                    self.waits.observe(ticket.queue_id or "", now - ticket.queued_at)
        return moved
