"""The assignment loop: offers waiting tickets to agents with free capacity, expires offers
nobody accepted, and moves tickets whose routing step timed out to the next step (overflow).

Every offer is made in its own short transaction that locks the ticket (SKIP LOCKED, so several
router replicas share the work) and then the chosen agent, re-counting that agent's load under
the lock: no ticket is offered twice and no agent goes over capacity, whatever the replicas do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.events.payloads import RoutingCandidate, TicketAssigned, TicketRouted
from ccshared.ids import uuid7
from router.db.policies import PolicyCache
from router.db.tickets import add_history, get_ticket
from router.domain.assignment import Agent, Candidate, Decision, TicketToAssign, choose_agent
from router.domain.classification import PRIORITY_RANK, TicketFacts
from router.domain.policy import UnknownStep, next_step_after_timeout
from router.flows import ROUTER, change_status, publish

log = logging.getLogger(__name__)

HELD = ("assigned", "in_progress", "pending_customer")  # statuses that occupy an agent
_WAITING_WINDOW = 20  # tickets looked at per queue and offer round


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
    conn: AsyncConnection, agent_id: str | None = None
) -> dict[str, dict[str, int]]:
    """agent → channel → tickets it holds now."""
    rows = await conn.execute(
        text(
            "SELECT assignee_agent_id AS agent, channel, count(*) AS n FROM tickets "
            "WHERE assignee_agent_id IS NOT NULL AND status = ANY(:held) "
            "AND (CAST(:agent AS text) IS NULL OR assignee_agent_id = :agent) GROUP BY 1, 2"
        ),
        {"held": list(HELD), "agent": agent_id},
    )
    loads: dict[str, dict[str, int]] = {}
    for r in rows:
        loads.setdefault(r.agent, {})[r.channel] = r.n
    return loads


class Assigner:
    def __init__(
        self,
        engine: AsyncEngine,
        policies: PolicyCache,
        *,
        interval_s: float,
        min_gap_s: float = 0.02,
    ) -> None:
        self.engine = engine
        self.policies = policies
        self.interval_s = interval_s
        # Nudges arrive per committed event; rounds closer together than this gain nothing.
        self.min_gap_s = min_gap_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.offers_made = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="assigner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def nudge(self) -> None:
        """Something changed that may allow an offer: run the loop now."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # the loop must outlive a bad round
                log.exception("assignment round failed")
            await asyncio.sleep(self.min_gap_s)

    async def tick(self, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        await self.expire_offers(now)
        await self.overflow(now)
        made = 0
        queues = await self._queues()
        if not queues:
            return 0
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT id, skills, capacity, status, idle_since, last_assigned_at, "
                    "assignments_total FROM agents ORDER BY id"
                )
            )
            # Mutable copies: offers made in this round update them, so later choices in the
            # round see who was just given work.
            agent_rows = [SimpleNamespace(**r._mapping) for r in result]
            loads = await agent_loads(conn)
        for queue in queues:
            if not self._anyone_free(queue, agent_rows, loads):
                continue  # nobody could take any of it: skip the ticket scan
            while offered := await self._offer_batch(queue, now, agent_rows, loads):
                made += offered
        self.offers_made += made
        return made

    @staticmethod
    def _anyone_free(
        queue: QueueRow, agent_rows: list[Any], loads: dict[str, dict[str, int]]
    ) -> bool:
        for row in agent_rows:
            if row.status != "available" or not queue.required_skills <= _obj(row.skills).keys():
                continue
            held = loads.get(row.id, {})
            if any(n > held.get(channel, 0) for channel, n in _obj(row.capacity).items()):
                return True
        return False

    async def _queues(self) -> list[QueueRow]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT q.id, q.required_skills, q.strategy, q.offer_timeout_s, q.rr_cursor "
                    "FROM queues q WHERE EXISTS (SELECT 1 FROM tickets t "
                    "WHERE t.queue_id = q.id AND t.status = 'queued')"
                )
            )
            return [
                QueueRow(
                    r.id, frozenset(r.required_skills), r.strategy, r.offer_timeout_s, r.rr_cursor
                )
                for r in rows
            ]

    async def _offer_batch(
        self,
        queue: QueueRow,
        now: datetime,
        agent_rows: list[Any],
        loads: dict[str, dict[str, int]],
    ) -> int:
        """Offer what can be offered of the queue's most urgent waiting tickets, in one
        transaction; returns how many offers it made."""
        async with self.engine.begin() as conn:
            waiting = (
                await conn.execute(
                    text(
                        "SELECT id, channel, priority, policy_version, policy_step FROM tickets "
                        "WHERE queue_id = :q AND status = 'queued' "
                        "ORDER BY priority_rank, sla_deadline NULLS LAST, queued_at, id "
                        "LIMIT :n FOR UPDATE SKIP LOCKED"
                    ),
                    {"q": queue.id, "n": _WAITING_WINDOW},
                )
            ).all()
            if not waiting:
                return 0
            declined = await self._declined(conn, [t.id for t in waiting])
            offered = 0
            for ticket in waiting:
                decision = await self._choose(
                    conn, queue, ticket, agent_rows, loads, declined.get(ticket.id, set()), now
                )
                if decision is None:
                    continue
                await self._make_offer(conn, queue, ticket, decision, now)
                agent = decision.chosen_agent_id or ""
                held = loads.setdefault(agent, {})
                held[ticket.channel] = held.get(ticket.channel, 0) + 1
                for row in agent_rows:
                    if row.id == agent:
                        row.last_assigned_at = now
                        row.assignments_total += 1
                offered += 1
                if decision.strategy == "round_robin":
                    queue = dataclasses.replace(queue, rr_cursor=agent)
            return offered

    async def _declined(
        self, conn: AsyncConnection, ticket_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, set[str]]:
        rows = await conn.execute(
            text(
                "SELECT ticket_id, agent_id FROM offers WHERE ticket_id = ANY(:ids) "
                "AND status IN ('declined', 'timed_out')"
            ),
            {"ids": ticket_ids},
        )
        found: dict[uuid.UUID, set[str]] = {}
        for r in rows:
            found.setdefault(r.ticket_id, set()).add(r.agent_id)
        return found

    async def _choose(
        self,
        conn: AsyncConnection,
        queue: QueueRow,
        ticket: Any,
        agent_rows: list[Any],
        loads: dict[str, dict[str, int]],
        declined: set[str],
        now: datetime,
    ) -> Decision | None:
        """The best agent, confirmed under its row lock; None if nobody can take it now."""
        excluded = set(declined)
        for _ in range(3):  # a chosen agent may have filled up meanwhile: try the next best
            agents = [
                agent_from_row(r, loads.get(r.id, {})) for r in agent_rows if r.id not in excluded
            ]
            decision = choose_agent(
                TicketToAssign(ticket.channel, queue.required_skills, ticket.priority),
                agents,
                queue.strategy,
                now,
                queue.rr_cursor,
            )
            if decision.chosen_agent_id is None:
                return None
            agent_id = decision.chosen_agent_id
            locked = (
                await conn.execute(
                    text("SELECT status, capacity FROM agents WHERE id = :id FOR UPDATE"),
                    {"id": agent_id},
                )
            ).one()
            held = (await agent_loads(conn, agent_id)).get(agent_id, {}).get(ticket.channel, 0)
            if locked.status == "available" and held < int(
                _obj(locked.capacity).get(ticket.channel, 0)
            ):
                passed = tuple(Candidate(a, None, "declined_before") for a in sorted(declined))
                return dataclasses.replace(decision, candidates=decision.candidates + passed)
            excluded.add(agent_id)
            loads.setdefault(agent_id, {})[ticket.channel] = held
        return None

    async def _make_offer(
        self,
        conn: AsyncConnection,
        queue: QueueRow,
        ticket: Any,
        decision: Decision,
        now: datetime,
    ) -> None:
        agent_id = decision.chosen_agent_id
        assert agent_id is not None
        decision_id = uuid7()
        offer_id = uuid7()
        candidates = [
            {"agent_id": c.agent_id, "score": c.score, "passed_over": c.passed_over}
            for c in decision.candidates
        ]
        await conn.execute(
            text(
                "INSERT INTO routing_decisions (id, ticket_id, at, policy_version, policy_step, "
                "queue_id, strategy, chosen_agent_id, candidates, tie_breaker) VALUES (:id, :t, "
                ":at, :pv, :ps, :q, :s, :a, CAST(:c AS jsonb), :tb)"
            ),
            {
                "id": decision_id,
                "t": ticket.id,
                "at": now,
                "pv": ticket.policy_version,
                "ps": ticket.policy_step,
                "q": queue.id,
                "s": decision.strategy,
                "a": agent_id,
                "c": orjson.dumps(candidates).decode(),
                "tb": decision.tie_breaker,
            },
        )
        await conn.execute(
            text(
                "INSERT INTO offers (id, ticket_id, agent_id, status, offered_at, expires_at, "
                "decision_id) VALUES (:id, :t, :a, 'pending', :now, :exp, :d)"
            ),
            {
                "id": offer_id,
                "t": ticket.id,
                "a": agent_id,
                "now": now,
                "exp": now + timedelta(seconds=queue.offer_timeout_s),
                "d": decision_id,
            },
        )
        await conn.execute(
            text(
                "UPDATE agents SET last_assigned_at = :now, assignments_total = "
                "assignments_total + 1, updated_at = now() WHERE id = :a"
            ),
            {"now": now, "a": agent_id},
        )
        if decision.strategy == "round_robin":
            await conn.execute(
                text("UPDATE queues SET rr_cursor = :a WHERE id = :q"),
                {"a": agent_id, "q": queue.id},
            )
        locked = await get_ticket(conn, ticket.id, lock=True)
        await change_status(
            conn,
            locked,
            "offer",
            actor=ROUTER,
            reason=f"offered to {agent_id}",
            extra={"assignee_agent_id": agent_id},
        )
        await publish(
            conn,
            TicketAssigned(
                ticket_id=ticket.id,
                agent_id=agent_id,
                owner_agent_id=locked.owner_agent_id or agent_id,
                queue_id=queue.id,
                decision_id=decision_id,
                policy_version=ticket.policy_version,
                policy_step=ticket.policy_step,
                strategy=decision.strategy,
                candidates=[RoutingCandidate(**c) for c in candidates],
                tie_breaker=decision.tie_breaker,
                at=now,
            ),
        )

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
