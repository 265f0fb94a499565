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
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.db import array_params, insert_from_arrays, one_statement
from ccshared.events import Envelope, new_event
from ccshared.events.payloads import (
    RoutingCandidate,
    TicketAssigned,
    TicketRouted,
    TicketStatusChanged,
)
from ccshared.ids import uuid7
from ccshared.logging import correlation_id
from ccshared.outbox import OUTBOX_PART, outbox_params
from router.db.policies import PolicyCache
from router.db.tickets import HISTORY_COLUMNS, add_history, get_ticket
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
from router.domain.classification import PRIORITY_RANK, TicketFacts
from router.domain.lifecycle import transition
from router.domain.policy import UnknownStep, next_step_after_timeout
from router.flows import ROUTER, change_status, publish

log = logging.getLogger(__name__)

HELD = ("assigned", "in_progress", "pending_customer")  # statuses that occupy an agent
_WAITING_WINDOW = 50  # waiting tickets looked at per queue and channel in one batch
_MAX_BATCHES_PER_ROUND = 100  # so deep queues cannot keep one round going for ever
# The best candidates an assignment event carries; the stored decision lists every agent.
EVENT_CANDIDATES = 10
_CANDIDATE_JSON_CACHE = 50_000  # encoded candidates kept for reuse (`_candidates_json`)


@dataclasses.dataclass(frozen=True)
class QueueRow:
    id: str
    required_skills: frozenset[str]
    strategy: Any
    offer_timeout_s: int
    rr_cursor: str | None


def agent_from_row(row: Any, load: dict[str, int]) -> Agent:
    return Agent(
        id=row.id,
        skills=_obj(row.skills),
        status=row.status,
        capacity=_obj(row.capacity),
        load=load,
        last_assigned_at=row.last_assigned_at,
        idle_since=row.idle_since,
        assignments_total=row.assignments_total,
    )


def _obj(value: Any) -> dict[str, Any]:
    return orjson.loads(value) if isinstance(value, str | bytes) else dict(value or {})


async def agent_loads(
    conn: AsyncConnection, agent_ids: str | list[str] | None = None
) -> dict[str, dict[str, int]]:
    """agent → channel → tickets it holds now; of every agent, or of the ones given."""
    ids = [agent_ids] if isinstance(agent_ids, str) else agent_ids
    rows = await conn.execute(
        text(
            "SELECT assignee_agent_id AS agent, channel, count(*) AS n FROM tickets "
            "WHERE assignee_agent_id IS NOT NULL AND status = ANY(:held) "
            "AND (CAST(:ids AS text[]) IS NULL OR assignee_agent_id = ANY(CAST(:ids AS text[]))) "
            "GROUP BY 1, 2"
        ),
        {"held": list(HELD), "ids": ids},
    )
    loads: dict[str, dict[str, int]] = {}
    for r in rows:
        loads.setdefault(r.agent, {})[r.channel] = r.n
    return loads


# The most urgent waiting tickets of every (queue, channel) given, up to :n each, locked (SKIP
# LOCKED: another replica's round takes others). One statement for all: a round used to take a
# transaction per queue, and a new ticket waited for the other queues' batches. A window per
# channel, and only for channels someone could take now: with one window per queue, tickets on
# a channel nobody had room for filled it and hid the others behind them.
_WAITING = text(
    "SELECT w.* FROM unnest(CAST(:queues AS text[]), CAST(:channels AS text[])) "
    "  AS q(id, channel) CROSS JOIN LATERAL ("
    "  SELECT t.id, t.queue_id, t.channel, t.status, t.priority, t.priority_rank, "
    "    t.sla_deadline, t.queued_at, t.policy_version, t.policy_step, t.owner_agent_id, "
    "    ARRAY(SELECT o.agent_id FROM offers o WHERE o.ticket_id = t.id "
    "      AND o.status IN ('declined', 'timed_out')) AS declined "
    "  FROM tickets t WHERE t.queue_id = q.id AND t.channel = q.channel "
    "    AND t.status = 'queued' "
    "  ORDER BY t.priority_rank, t.sla_deadline NULLS LAST, t.queued_at, t.id "
    "  LIMIT :n FOR UPDATE OF t SKIP LOCKED) AS w"
)


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


# NO KEY UPDATE: it serializes rounds of every replica (and status changes, and transfers to
# an agent) on the agent, but not the many ticket updates that merely reference the agent
# (accept, reply, resolve take KEY SHARE on it through the foreign keys); FOR UPDATE made each
# of those wait for a whole offer batch, and the batch for them.
_LOCK_AGENTS = text(
    "SELECT id, skills, capacity, status, idle_since, last_assigned_at, assignments_total "
    "FROM agents WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR NO KEY UPDATE"
)
_LOADS_AND_DECLINES = text(
    "SELECT 'load' AS kind, assignee_agent_id AS agent, channel, count(*) AS n, "
    "  NULL::uuid AS ticket_id FROM tickets "
    "WHERE assignee_agent_id = ANY(CAST(:ids AS text[])) AND status = ANY(:held) "
    "GROUP BY assignee_agent_id, channel "
    "UNION ALL "
    "SELECT 'declined', o.agent_id, NULL, NULL, o.ticket_id FROM offers o "
    "JOIN unnest(CAST(:tickets AS uuid[]), CAST(:agents AS text[])) AS p(ticket_id, agent_id) "
    "  ON o.ticket_id = p.ticket_id AND o.agent_id = p.agent_id "
    "WHERE o.status IN ('declined', 'timed_out')"
)
_YIELD_EVERY = 10
_DECISION_COLUMNS = (
    ("id", "uuid"),
    ("ticket_id", "uuid"),
    ("at", "timestamptz"),
    ("policy_version", "int"),
    ("policy_step", "text"),
    ("queue_id", "text"),
    ("strategy", "text"),
    ("chosen_agent_id", "text"),
    ("candidates", "json"),
    ("tie_breaker", "text"),
)
_OFFER_COLUMNS = (
    ("id", "uuid"),
    ("ticket_id", "uuid"),
    ("agent_id", "text"),
    ("status", "text"),
    ("offered_at", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("decision_id", "uuid"),
)


# A batch's offers in one statement (one round trip): the decisions, the offers, the tickets'
# new status, the agents' counters, the history and the events, as data-modifying CTEs.
# Foreign keys are checked at the end of the statement, so offers may name decisions and
# tickets written in it.
_WRITE_OFFERS = text(
    one_statement(
        ("decisions", insert_from_arrays("routing_decisions", _DECISION_COLUMNS, prefix="d_")),
        ("offers", insert_from_arrays("offers", _OFFER_COLUMNS, prefix="o_")),
        (
            "tickets",
            "UPDATE tickets t SET status = u.status, assignee_agent_id = u.agent, "
            "updated_at = now() FROM unnest(CAST(:t_ids AS uuid[]), CAST(:t_agents AS text[]), "
            "CAST(:t_statuses AS text[])) AS u(id, agent, status) WHERE t.id = u.id",
        ),
        (
            "agents",
            "UPDATE agents a SET last_assigned_at = :now, "
            "assignments_total = a.assignments_total + u.n, updated_at = now() "
            "FROM unnest(CAST(:a_ids AS text[]), CAST(:a_ns AS int[])) AS u(id, n) "
            "WHERE a.id = u.id",
        ),
        (
            "queues",
            "UPDATE queues q SET rr_cursor = u.cursor "
            "FROM unnest(CAST(:rr_queues AS text[]), CAST(:rr_cursors AS text[])) "
            "AS u(id, cursor) WHERE q.id = u.id",
        ),
        ("history", insert_from_arrays("ticket_history", HISTORY_COLUMNS, prefix="h_")),
        OUTBOX_PART,
    )
)


async def _roster(conn: AsyncConnection) -> dict[str, Agent]:
    """Every agent as an assignment round sees it, by id in id order; each agent's `load` is
    a dict of its own that the round updates as it books offers."""
    result = await conn.execute(
        text(
            "SELECT id, skills, capacity, status, idle_since, last_assigned_at, "
            "assignments_total FROM agents ORDER BY id"
        )
    )
    rows = result.all()
    loads = await agent_loads(conn)
    return {r.id: agent_from_row(r, loads.get(r.id, {})) for r in rows}


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


def _book(roster: dict[str, Agent], agent_id: str, channel: str, now: datetime) -> None:
    """The round's view after an offer to the agent: one more ticket on the channel."""
    agent = roster[agent_id]
    load = dict(agent.load)
    load[channel] = load.get(channel, 0) + 1  # type: ignore[index]
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
    rows = (await conn.execute(_LOCK_AGENTS, {"ids": ids})).all()
    # A new statement, so a new snapshot: loads, and declines, committed by others up to the
    # moment the locks were granted. (The waiting-ticket query's snapshot is older: a ticket
    # offered and declined by another replica since then must not go back to that agent.)
    loads: dict[str, dict[str, int]] = {}
    declined: set[tuple[Any, str]] = set()
    found = await conn.execute(
        _LOADS_AND_DECLINES,
        {
            "held": list(HELD),
            "ids": ids,
            "tickets": [t.id for t, _ in plans],
            "agents": [d.chosen_agent_id for _, d in plans],
        },
    )
    for r in found:
        if r.kind == "load":
            loads.setdefault(r.agent, {})[r.channel] = r.n
        else:
            declined.add((r.ticket_id, r.agent))
    for row in rows:
        roster[row.id] = agent_from_row(row, loads.get(row.id, {}))
    for agent_id in set(ids) - {r.id for r in rows}:
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
                roster = await _roster(conn)
            # A change announced while this was being read may not be in it: use it for this
            # round, but read again for the next.
            fresh = changes == self._agent_changes
            self._roster, self._roster_read_at = (roster if fresh else None), read_at
            return roster
        return self._roster

    async def _queues(self) -> list[QueueRow]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT q.id, q.required_skills, q.strategy, q.offer_timeout_s, q.rr_cursor "
                    "FROM queues q WHERE EXISTS (SELECT 1 FROM tickets t "
                    "WHERE t.queue_id = q.id AND t.status = 'queued') ORDER BY q.id"
                )
            )
            return [
                QueueRow(
                    r.id, frozenset(r.required_skills), r.strategy, r.offer_timeout_s, r.rr_cursor
                )
                for r in rows
            ]

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
            rows = (
                await conn.execute(
                    _WAITING,
                    {
                        "queues": [q.id for q, _ in pairs],
                        "channels": [c for _, c in pairs],
                        "n": _WAITING_WINDOW,
                    },
                )
            ).all()
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
        await conn.execute(
            _WRITE_OFFERS,
            {
                **array_params(_DECISION_COLUMNS, decisions, prefix="d_"),
                **array_params(_OFFER_COLUMNS, offers, prefix="o_"),
                "t_ids": [t.id for t, _ in plans],
                "t_agents": [d.chosen_agent_id for _, d in plans],
                "t_statuses": [transition(t.status, "offer") for t, _ in plans],
                "now": now,
                "a_ids": list(per_agent),
                "a_ns": list(per_agent.values()),
                # In queue id order, as every replica locks queue rows.
                "rr_queues": sorted(rr_cursors),
                "rr_cursors": [rr_cursors[q] for q in sorted(rr_cursors)],
                **array_params(HISTORY_COLUMNS, history, prefix="h_"),
                **outbox_params(events),
            },
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
            expired = (
                await conn.execute(
                    text(
                        "UPDATE offers SET status = 'timed_out', responded_at = :now "
                        "WHERE id IN (SELECT id FROM offers WHERE status = 'pending' "
                        "AND expires_at <= :now ORDER BY expires_at LIMIT 100 "
                        "FOR UPDATE SKIP LOCKED) RETURNING ticket_id, agent_id"
                    ),
                    {"now": now},
                )
            ).all()
            for row in expired:
                ticket = await get_ticket(conn, row.ticket_id, lock=True)
                if ticket.status == "assigned" and ticket.assignee_agent_id == row.agent_id:
                    await change_status(
                        conn,
                        ticket,
                        "queue",
                        actor=ROUTER,
                        reason=f"offer to {row.agent_id} timed out",
                    )
        return len(expired)

    async def overflow(self, now: datetime) -> int:
        policy = await self.policies.current()
        moved = 0
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT id FROM tickets WHERE status = 'queued' "
                        "AND step_timeout_at <= :now ORDER BY step_timeout_at LIMIT 100 "
                        "FOR UPDATE SKIP LOCKED"
                    ),
                    {"now": now},
                )
            ).all()
            for row in rows:
                ticket = await get_ticket(conn, row.id)
                facts = TicketFacts(
                    channel=ticket.channel,  # type: ignore[arg-type]
                    language=ticket.language,
                    segment=ticket.segment,
                )
                attrs = facts.attributes(
                    category=ticket.category,
                    priority=ticket.priority,
                    language=ticket.language,
                    queue_hint=ticket.classification.get("queue_hint"),
                )
                try:
                    step = (
                        next_step_after_timeout(policy, ticket.policy_step or "", attrs)
                        if ticket.policy_version == policy.version
                        else None
                    )
                except UnknownStep:
                    step = None
                if step is None:
                    await conn.execute(
                        text("UPDATE tickets SET step_timeout_at = NULL WHERE id = :id"),
                        {"id": ticket.id},
                    )
                    continue
                priority = step.priority_override or ticket.priority
                await conn.execute(
                    text(
                        "UPDATE tickets SET queue_id = :q, policy_step = :s, priority = :p, "
                        "priority_rank = :r, step_timeout_at = :timeout, updated_at = now() "
                        "WHERE id = :id"
                    ),
                    {
                        "q": step.queue_id,
                        "s": step.step_id,
                        "p": priority,
                        "r": PRIORITY_RANK[priority],  # type: ignore[index]
                        "timeout": now + timedelta(seconds=step.timeout_s)
                        if step.timeout_s
                        else None,
                        "id": ticket.id,
                    },
                )
                await add_history(
                    conn,
                    ticket.id,
                    at=now,
                    actor=ROUTER,
                    action="overflow",
                    reason=step.reason,
                    data={"from_queue": ticket.queue_id, "to_queue": step.queue_id},
                )
                await publish(
                    conn,
                    TicketRouted(
                        ticket_id=ticket.id,
                        queue_id=step.queue_id,
                        priority=priority,  # type: ignore[arg-type]
                        category=ticket.category,
                        channel=ticket.channel,  # type: ignore[arg-type]
                        segment=ticket.segment,
                        policy_version=step.policy_version,
                        policy_step=step.step_id,
                        reason=step.reason,
                        at=now,
                    ),
                )
                moved += 1
        return moved
