"""Router benchmark, breaches: how many tickets breach their first-response deadline with the
breach prediction and without, same load, same run.

Two phases back to back, each on a fresh router database with the same agents and the same
arrivals (seeded): the router's own code (the contact handler opens and routes the tickets,
SLA's deadlines arrive through the `sla.deadline_changed` handler, the real `Assigner` runs the
rounds, offers are accepted and tickets resolved through the router's handlers), once with
`predict_breach=False`, once with `True`. Time is simulated (a round every `STEP_S`), so an
hour of a contact center takes seconds and both phases see exactly the same arrivals;
the clock the router is handed runs ahead of the wall clock, and arrival, queue and step-timeout
times are set to it.

The mix: chat tickets to frontline, half high priority with an hour to first response, half
normal with 4-10 minutes or an hour; phone tickets of VIP customers to VIP care (whose step
overflows to escalations after 5 minutes), with 3-8 minutes or an hour. Agents: frontline chat
agents, VIP phone agents and escalation phone agents (who take only what VIP care overflows),
each holding one ticket for a handling time. More arrive than the agents finish, so queues grow
and some tickets must breach; the question is which.

A ticket breaches when its first offer comes after its deadline, or it is never offered.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import text

from bench.harness import database_url, recreate_database_async, write_result
from ccshared.auth import Principal
from ccshared.db import make_engine
from ccshared.events.payloads import ContactReceived, SlaDeadlineChanged
from ccshared.migrate import apply_migrations, service_migrations
from router.db.agents import change_status, upsert_agent
from router.db.policies import PolicyCache
from router.db.rules import DEFAULT_RULE_SET
from router.db.tickets import SqlTicketsUnitOfWork
from router.domain.policy import DEFAULT_POLICY
from router.handlers.contacts import receive_contacts
from router.handlers.deadlines import apply_deadlines
from router.handlers.offers import accept
from router.handlers.tickets import resolve
from router.settings import RouterSettings
from router.tasks.assignment import Assigner

STEP_S = 10  # simulated seconds between rounds
ARRIVALS_S = 45 * 60  # tickets arrive for 45 simulated minutes
DRAIN_LIMIT_S = 4 * 3600  # then the agents work the queues down, at most this long
# Each seed is a run of its own (about 90 tickets); the figures are their sum, and each's.
SEEDS = tuple(int(s) for s in os.environ.get("BENCH_BREACH_SEEDS", "1,2,3,4").split(","))
MIN = 60.0


@dataclass(frozen=True)
class Arrival:
    at_s: float
    kind: str  # frontline-high, frontline-normal, vip
    deadline_s: float  # after arrival
    handle_s: float  # how long the agent who takes it holds it


def arrivals(seed: int) -> list[Arrival]:
    """The same mix for both phases: ~1.6 frontline chats and ~0.5 VIP calls a minute."""
    rng = random.Random(seed)
    out: list[Arrival] = []
    t = 0.0
    while t < ARRIVALS_S:
        t += rng.expovariate(1 / 37.5)
        out.append(
            Arrival(
                t,
                "frontline-high",
                60 * MIN,
                rng.uniform(3, 6) * MIN,
            )
            if rng.random() < 0.5
            else Arrival(
                t,
                "frontline-normal",
                rng.choice([rng.uniform(4, 10) * MIN, 60 * MIN]),
                rng.uniform(3, 6) * MIN,
            )
        )
    t = 0.0
    while t < ARRIVALS_S:
        t += rng.expovariate(1 / 120)
        deadline = rng.choice([rng.uniform(3, 8) * MIN, 60 * MIN])
        out.append(Arrival(t, "vip", deadline, rng.uniform(4, 8) * MIN))
    return sorted(out, key=lambda a: a.at_s)


AGENTS: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    **{f"front-{n}": ({}, {"chat": 1, "phone": 0, "email": 0, "social": 0}) for n in range(4)},
    **{
        f"vip-{n}": ({"vip": 3}, {"chat": 0, "phone": 1, "email": 0, "social": 0}) for n in range(1)
    },
    **{
        f"escalation-{n}": ({"escalations": 3}, {"chat": 0, "phone": 1, "email": 0, "social": 0})
        for n in range(2)
    },
}


def _contact(n: int, arrival: Arrival, at: datetime) -> ContactReceived:
    vip = arrival.kind == "vip"
    return ContactReceived(
        contact_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        channel="phone" if vip else "chat",
        external_id=f"breach-{n}",
        received_at=at,
        text="请帮我看一下我的订单" if n % 2 else "Can you check my order, please?",
        metadata={"segment": "vip"} if vip else {},
    )


class Phase:
    """One router (one database, one Assigner) through the whole simulated day."""

    def __init__(self, predict: bool, database: str, start: datetime) -> None:
        self.predict = predict
        self.database = database
        self.start = start
        self.offered: dict[uuid.UUID, datetime] = {}
        self.busy_until: dict[uuid.UUID, tuple[datetime, str]] = {}
        self.ticket_of: dict[int, uuid.UUID] = {}

    async def run(self, mix: list[Arrival]) -> dict[str, Any]:
        await recreate_database_async(self.database)
        url = database_url(self.database)
        settings = RouterSettings(database_url=SecretStr(url))
        engine = make_engine(url, pool_size=4, app_name="bench-breach")
        try:
            await apply_migrations(engine, settings, service_migrations(settings, "router"))
            await self._agents(engine)
            assigner = Assigner(
                engine,
                PolicyCache(engine, ttl_s=3600),
                interval_s=STEP_S,
                predict_breach=self.predict,
                missed_offer_status="available",
            )
            return await self._simulate(engine, assigner, mix)
        finally:
            await engine.dispose()

    async def _agents(self, engine: Any) -> None:
        async with engine.begin() as conn:
            for agent_id, (skills, capacity) in AGENTS.items():
                await upsert_agent(
                    conn, agent_id, name=agent_id, role="agent", skills=skills, capacity=capacity
                )
                await change_status(
                    conn, agent_id, "available", reason=None, actor="bench", at=self.start
                )

    async def _simulate(
        self, engine: Any, assigner: Assigner, mix: list[Arrival]
    ) -> dict[str, Any]:
        pending = list(enumerate(mix))
        step = 0
        while True:
            now = self.start + timedelta(seconds=step * STEP_S)
            due = [(n, a) for n, a in pending if a.at_s <= step * STEP_S]
            pending = pending[len(due) :]
            if due:
                await self._arrive(engine, due)
            await self._finish(engine, now)
            assigner.nudge()  # agents' loads changed: the round reads them again
            await assigner.tick(now)
            await self._take_offers(engine, now, mix)
            step += 1
            done = not pending and len(self.offered) == len(mix)
            if done or step * STEP_S > ARRIVALS_S + DRAIN_LIMIT_S:
                break
        return await self._count(engine, mix, now)

    async def _arrive(self, engine: Any, due: list[tuple[int, Arrival]]) -> None:
        contacts = [(n, a, _contact(n, a, self.start)) for n, a in due]
        async with engine.begin() as conn:
            await receive_contacts(
                conn, [(None, c) for _, _, c in contacts], DEFAULT_POLICY, DEFAULT_RULE_SET
            )
            deadlines = []
            for n, arrival, contact in contacts:
                at = self.start + timedelta(seconds=arrival.at_s)
                row = (
                    await conn.execute(
                        text("SELECT ticket_id FROM ticket_contacts WHERE contact_id = :c"),
                        {"c": contact.contact_id},
                    )
                ).one()
                self.ticket_of[n] = row.ticket_id
                # The ticket arrived at simulated `at`: its queue and step-timeout times too;
                # a high-priority one as classification would have made it.
                rank = 1 if arrival.kind == "frontline-high" else 2
                await conn.execute(
                    text(
                        "UPDATE tickets SET opened_at = CAST(:at AS timestamptz), "
                        "queued_at = CAST(:at AS timestamptz), step_timeout_at = "
                        "CAST(:at AS timestamptz) + (step_timeout_at - queued_at), "
                        "priority = :priority, priority_rank = :rank WHERE id = :id"
                    ),
                    {
                        "at": at,
                        "rank": rank,
                        "priority": "high" if rank == 1 else "normal",
                        "id": row.ticket_id,
                    },
                )
                deadlines.append(
                    SlaDeadlineChanged(
                        ticket_id=row.ticket_id,
                        next_deadline=at + timedelta(seconds=arrival.deadline_s),
                        metric="first_response",
                        version=1,
                        at=at,
                    )
                )
            await apply_deadlines(conn, deadlines)

    async def _take_offers(self, engine: Any, now: datetime, mix: list[Arrival]) -> None:
        """Every new offer is accepted at once; its agent holds the ticket for its handling
        time."""
        handle = {self.ticket_of[n]: a.handle_s for n, a in enumerate(mix) if n in self.ticket_of}
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT id, ticket_id, agent_id FROM offers WHERE status = 'pending'")
                )
            ).all()
        for row in rows:
            await accept(engine, row.id, Principal(subject=row.agent_id, role="agent"))
            self.offered.setdefault(row.ticket_id, now)
            until = now + timedelta(seconds=handle[row.ticket_id])
            self.busy_until[row.ticket_id] = (until, row.agent_id)

    async def _finish(self, engine: Any, now: datetime) -> None:
        for ticket_id, (until, agent_id) in list(self.busy_until.items()):
            if until <= now:
                agent = Principal(subject=agent_id, role="agent")
                await resolve(SqlTicketsUnitOfWork(engine), ticket_id, agent, "solved", True)
                del self.busy_until[ticket_id]

    async def _count(self, engine: Any, mix: list[Arrival], end: datetime) -> dict[str, Any]:
        async with engine.connect() as conn:
            early = int(
                await conn.scalar(
                    text(
                        "SELECT count(*) FROM ticket_history WHERE action = 'overflow' "
                        "AND data->>'early' = 'true'"
                    )
                )
                or 0
            )
        breached: dict[str, int] = {}
        for n, arrival in enumerate(mix):
            ticket = self.ticket_of[n]
            deadline = self.start + timedelta(seconds=arrival.at_s + arrival.deadline_s)
            offered = self.offered.get(ticket)
            if offered is None or offered > deadline:
                breached[arrival.kind] = breached.get(arrival.kind, 0) + 1
        return {
            "breached": sum(breached.values()),
            "breached_by_kind": dict(sorted(breached.items())),
            "never_offered": len(mix) - len(self.offered),
            "overflowed_early": early,
            "simulated_minutes": round((end - self.start).total_seconds() / 60, 1),
        }


async def compare_one(seed: int) -> dict[str, Any]:
    """Both phases, prediction off then on, on the arrivals of `seed`."""
    mix = arrivals(seed)
    # The router's clock runs ahead of the wall clock by a day: `max(now, wall clock)` in
    # the assigner then keeps the simulated time.
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    without = await Phase(False, "bench_router_breach", start).run(mix)
    with_ = await Phase(True, "bench_router_breach", start).run(mix)
    kinds: dict[str, int] = {}
    for a in mix:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    return {
        "seed": seed,
        "tickets": len(mix),
        "tickets_by_kind": dict(sorted(kinds.items())),
        "without_prediction": without,
        "with_prediction": with_,
    }


async def compare() -> dict[str, Any]:
    runs = [await compare_one(seed) for seed in SEEDS]

    def total(phase: str, key: str) -> int:
        return sum(int(r[phase][key]) for r in runs)

    return {
        "tickets": sum(r["tickets"] for r in runs),
        "agents": len(AGENTS),
        "breached_without_prediction": total("without_prediction", "breached"),
        "breached_with_prediction": total("with_prediction", "breached"),
        "overflowed_early": total("with_prediction", "overflowed_early"),
        "runs": runs,
        "method": "per seed, two phases back to back in one run (prediction off, then on), "
        "same seeded arrivals and agents, a fresh router database each; simulated time, a "
        f"round every {STEP_S} s; breach = first offer after the first-response deadline, or "
        "never offered (bench/router_breach.py)",
    }


def describe(result: dict[str, Any]) -> str:
    per_seed = "; ".join(
        f"seed {r['seed']}: {r['without_prediction']['breached']} → "
        f"{r['with_prediction']['breached']} of {r['tickets']}"
        for r in result["runs"]
    )
    return (
        f"SLA breaches (first response), {result['tickets']} tickets, {result['agents']} agents, "
        f"same arrivals: without prediction {result['breached_without_prediction']}, with "
        f"prediction {result['breached_with_prediction']} "
        f"({result['overflowed_early']} overflowed early) [{per_seed}]"
    )


def main() -> None:
    """`python -m bench.router_breach`: this part of the router benchmark alone, written to
    bench/results/router_breach.json (`python -m bench router` puts it in router.json)."""
    result = asyncio.run(compare())
    path = write_result("router_breach", result)
    print(describe(result) + f"; written to {path}")


if __name__ == "__main__":
    main()
