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
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.events import Envelope, new_event
from ccshared.events.payloads import Channel, RoutingCandidate, TicketAssigned, TicketStatusChanged
from ccshared.ids import uuid7
from ccshared.logging import correlation_id
from router.db import agents as agents_db
from router.db import offers as offers_db
from router.db import queues as queues_db
from router.db.policies import PolicyCache
from router.db.queues import QueueRow
from router.db.tickets import get_ticket, write_change
from router.domain import tickets
from router.domain.assignment import (
    Agent,
    Candidate,
    Decision,
    Standings,
    TicketToAssign,
    choose_agent,
    ineligibility,
    split_roster,
)
from router.domain.lifecycle import transition
from router.domain.tickets import ROUTER, overflow_change

log = logging.getLogger(__name__)

_WAITING_WINDOW = 50  # waiting tickets looked at per queue and channel in one batch
_MAX_BATCHES_PER_ROUND = 100  # so deep queues cannot keep one round going for ever
# The best candidates an assignment event carries; the stored decision lists every agent.
EVENT_CANDIDATES = 10
_CANDIDATE_JSON_CACHE = 50_000  # encoded candidates kept for reuse (`_candidates_json`)


def _urgency(ticket: Any) -> tuple[Any, ...]:
    """_WAITING's order within a queue: priority, SLA deadline (none last), age, id. (NULLs
    sort last there; here they must not reach a comparison with a datetime.)"""
    deadline, queued_at = ticket.sla_deadline, ticket.queued_at
    return (
        ticket.priority_rank,
        deadline is None,
        deadline or _LATEST,
        queued_at is None,
        queued_at or _LATEST,
        ticket.id,
    )


_LATEST = datetime.max.replace(tzinfo=UTC)


_YIELD_EVERY = 10


def _servable(queue: QueueRow, roster: dict[str, Agent]) -> list[str]:
    """The channels on which some available agent with the queue's skills has room now."""
    channels: set[str] = set()
    for agent in roster.values():
        if agent.status == "available" and queue.required_skills <= agent.skills.keys():
            channels.update(c for c, n in agent.capacity.items() if n > agent.load.get(c, 0))
    return sorted(channels)


def _decide(
    queue: QueueRow,
    rr_cursor: str | None,
    ticket: Any,
    roster: dict[str, Agent],
    declined: set[str],
    now: datetime,
    split: tuple[list[str], tuple[Candidate, ...]],
) -> Decision | None:
    """The best agent for the ticket as the round sees the agents; None if nobody can take
    it now. Agents who declined it (or let its offer time out) are listed, not considered.
    `split`: the roster split for the ticket's channel (`split_roster`)."""
    members, passed_over = split
    agents = [roster[a] for a in members if a not in declined]
    decision = choose_agent(
        TicketToAssign(ticket.channel, queue.required_skills, ticket.priority),
        agents,
        queue.strategy,
        now,
        rr_cursor,
        passed_over=[c for c in passed_over if c.agent_id not in declined]
        if declined
        else passed_over,
    )
    if decision.chosen_agent_id is None:
        return None
    if declined:
        passed = tuple(Candidate(a, None, "declined_before") for a in sorted(declined))
        decision = dataclasses.replace(decision, candidates=decision.candidates + passed)
    return decision


def _book(roster: dict[str, Agent], agent_id: str, channel: Channel, now: datetime) -> None:
    """The round's view after an offer to the agent: one more ticket on the channel."""
    agent = roster[agent_id]
    load = dict(agent.load)
    load[channel] = load.get(channel, 0) + 1
    roster[agent_id] = dataclasses.replace(
        agent, load=load, last_assigned_at=now, assignments_total=agent.assignments_total + 1
    )


async def _confirm(
    conn: AsyncConnection,
    plans: list[tuple[Any, Decision]],
    roster: dict[str, Agent],
    now: datetime,
) -> list[tuple[Any, Decision]]:
    """Lock the chosen agents (in id order) and re-read them and their load under the lock:
    what another replica or an API call changed since the round began is seen here. Keeps,
    in order, the offers each agent still has room for; the round's view of those agents
    becomes the locked truth plus the kept offers."""
    ids = sorted({d.chosen_agent_id for _, d in plans if d.chosen_agent_id})
    offers = [(t.id, d.chosen_agent_id or "") for t, d in plans]
    locked, declined = await agents_db.lock_agents(conn, ids, offers)
    roster.update(locked)
    for agent_id in set(ids) - locked.keys():
        roster.pop(agent_id, None)  # deleted meanwhile
    kept = []
    for ticket, decision in plans:
        agent = roster.get(decision.chosen_agent_id or "")
        if agent is None or ineligibility(agent, ticket.channel, frozenset()) is not None:
            continue
        if (ticket.id, agent.id) in declined:
            continue
        _book(roster, agent.id, ticket.channel, now)
        kept.append((ticket, decision))
    return kept


class Assigner:
    def __init__(
        self,
        engine: AsyncEngine,
        policies: PolicyCache,
        *,
        interval_s: float,
        min_gap_s: float = 0.005,
    ) -> None:
        self.engine = engine
        self.policies = policies
        self.interval_s = interval_s
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
        self._candidate_json: dict[Candidate, str] = {}

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
                self._roster = None  # those agents hold less now
            await self.overflow(now)
        made = 0
        queues = await self._queues()
        if not queues:
            return 0
        roster = await self._current_roster()
        # (queue, channel) pairs nobody could take anything from now are skipped without
        # scanning their tickets.
        active = [(q, channel) for q in queues for channel in _servable(q, roster)]
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
        by_id = {q.id: q for q, _ in pairs}
        cursors: dict[str, str] = {}
        async with self.engine.begin() as conn:
            rows = await queues_db.waiting_tickets(
                conn, [(q.id, c) for q, c in pairs], _WAITING_WINDOW
            )
            if not rows:
                return 0, set(), {}
            waiting: dict[str, list[Any]] = {}
            for row in rows:
                waiting.setdefault(row.queue_id, []).append(row)
            plans: list[tuple[Any, Decision]] = []
            standings: dict[tuple[str, str], Standings] = {}
            decided = 0
            for queue_id, tickets in waiting.items():
                queue = by_id[queue_id]
                tickets.sort(key=_urgency)
                rr_cursor = queue.rr_cursor
                # Status, skills and channels do not change within the batch, only loads: who
                # could take a ticket on a channel is worked out once per channel and queue,
                # and they stay ranked as offers are booked (Standings).
                splits: dict[str, tuple[list[str], tuple[Candidate, ...]]] = {}
                for ticket in tickets:
                    decided += 1
                    if decided % _YIELD_EVERY == 0:
                        # Deciding is CPU: let the consumer, the relay and API calls in
                        # between, or they wait for the batch.
                        await asyncio.sleep(0)
                    split = splits.get(ticket.channel)
                    if split is None:
                        agents = list(roster.values())
                        split = split_roster(agents, ticket.channel, queue.required_skills)
                        splits[ticket.channel] = split
                    if ticket.declined:
                        decision = _decide(
                            queue, rr_cursor, ticket, roster, set(ticket.declined), now, split
                        )
                    else:
                        ranked = standings.get((queue_id, ticket.channel))
                        if ranked is None:
                            ranked = Standings(
                                [roster[a] for a in split[0]],
                                split[1],
                                ticket.channel,
                                queue.required_skills,
                                queue.strategy,
                                now,
                            )
                            standings[(queue_id, ticket.channel)] = ranked
                        decision = ranked.decide(rr_cursor)
                        if decision.chosen_agent_id is None:
                            decision = None
                    if decision is None:
                        continue
                    agent_id = decision.chosen_agent_id or ""
                    _book(roster, agent_id, ticket.channel, now)
                    for other in standings.values():
                        other.update(roster[agent_id])
                    plans.append((ticket, decision))
                    if decision.strategy == "round_robin":
                        rr_cursor = agent_id
            if not plans:
                return 0, set(), {}
            kept = await _confirm(conn, plans, roster, now)
            if kept:
                cursors = await self._write_offers(conn, by_id, kept, now)
        # Another batch may offer more on a (queue, channel) where this one planned offers and
        # saw a full window of waiting tickets, or dropped some under the agents' lock (its
        # view of an agent was corrected). One it planned nothing for is done for this round.
        seen: dict[tuple[str, str], int] = {}
        for row in rows:
            seen[(row.queue_id, row.channel)] = seen.get((row.queue_id, row.channel), 0) + 1
        planned: dict[tuple[str, str], int] = {}
        dropped: dict[tuple[str, str], int] = {}
        for ticket, _ in plans:
            pair = (ticket.queue_id, ticket.channel)
            planned[pair] = planned.get(pair, 0) + 1
            dropped[pair] = dropped.get(pair, 0) + 1
        for ticket, _ in kept:
            dropped[(ticket.queue_id, ticket.channel)] -= 1
        progressing = {
            pair
            for pair, n in planned.items()
            if n > 0 and (seen[pair] == _WAITING_WINDOW or dropped[pair] > 0)
        }
        return len(kept), progressing, cursors

    async def _write_offers(
        self,
        conn: AsyncConnection,
        queues: dict[str, QueueRow],
        plans: list[tuple[Any, Decision]],
        now: datetime,
    ) -> dict[str, str]:
        """The offers, their routing decisions, the tickets' new status and history, and the
        events, for a whole batch: one statement per table. Returns the round-robin cursors
        written (queue → the last agent offered)."""
        decisions: list[tuple[Any, ...]] = []
        offers: list[tuple[Any, ...]] = []
        history: list[tuple[Any, ...]] = []
        events: list[Envelope] = []
        per_agent: dict[str, int] = {}
        rr_cursors: dict[str, str] = {}
        cid = correlation_id.get()
        for ticket, decision in plans:
            queue = queues[ticket.queue_id]
            expires = now + timedelta(seconds=queue.offer_timeout_s)
            agent_id = decision.chosen_agent_id
            assert agent_id is not None
            per_agent[agent_id] = per_agent.get(agent_id, 0) + 1
            if decision.strategy == "round_robin":
                rr_cursors[queue.id] = agent_id  # the queue's last offer, in decision order
            decision_id, offer_id = uuid7(), uuid7()
            decisions.append(
                (
                    decision_id,
                    ticket.id,
                    now,
                    ticket.policy_version,
                    ticket.policy_step,
                    queue.id,
                    decision.strategy,
                    agent_id,
                    self._candidates_json(decision.candidates),
                    decision.tie_breaker,
                )
            )
            offers.append((offer_id, ticket.id, agent_id, "pending", now, expires, decision_id))
            new_status = transition(ticket.status, "offer")
            reason = f"offered to {agent_id}"
            history.append(
                (ticket.id, now, ROUTER, "offer", ticket.status, new_status, reason, "{}")
            )
            events.append(
                new_event(
                    TicketStatusChanged(
                        ticket_id=ticket.id,
                        from_status=ticket.status,
                        to_status=new_status,
                        actor=ROUTER,
                        reason=reason,
                        at=now,
                    ),
                    producer=ROUTER,
                    correlation_id=cid,
                )
            )
            events.append(
                new_event(
                    TicketAssigned(
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
                    ),
                    producer=ROUTER,
                    correlation_id=cid,
                )
            )
        await offers_db.write_offers(
            conn,
            now=now,
            decisions=decisions,
            offers=offers,
            tickets=[
                (t.id, d.chosen_agent_id or "", transition(t.status, "offer")) for t, d in plans
            ],
            per_agent=per_agent,
            rr_cursors=rr_cursors,
            history=history,
            events=events,
        )
        return rr_cursors

    def _candidates_json(self, candidates: tuple[Candidate, ...]) -> str:
        """A decision's candidates as the JSON list of objects stored with it. Each candidate
        is encoded once and its text reused: a batch lists the same agents, mostly with the
        same scores, in decision after decision."""
        cache = self._candidate_json
        if len(cache) > _CANDIDATE_JSON_CACHE:
            cache.clear()
        parts = []
        for c in candidates:
            part = cache.get(c)
            if part is None:
                part = cache[c] = orjson.dumps(
                    {"agent_id": c.agent_id, "score": c.score, "passed_over": c.passed_over}
                ).decode()
            parts.append(part)
        return f"[{','.join(parts)}]"

    async def expire_offers(self, now: datetime) -> int:
        async with self.engine.begin() as conn:
            expired = await offers_db.expire_offers(conn, now)
            for row in expired:
                ticket = await get_ticket(conn, row.ticket_id, lock=True)
                if ticket.status == "assigned" and ticket.assignee_agent_id == row.agent_id:
                    reason = f"offer to {row.agent_id} timed out"
                    change = tickets.change(ticket, "queue", actor=ROUTER, at=now, reason=reason)
                    await write_change(conn, change)
        return len(expired)

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
        return moved
