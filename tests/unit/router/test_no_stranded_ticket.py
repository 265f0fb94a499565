"""No ticket is stranded: a property-based simulation of an assignment round over random
rosters (statuses, skills, capacities, loads), queues (skills, strategies), waiting tickets and
their refusals (declines and timed-out offers, recent or not).

What it models, with the router's own pure functions and no database: the state a round starts
from after the housekeeping (each timed-out offer has moved its agent by
`status_after_missed_offer`; some agents have set themselves available again since), which
(queue, channel) pairs the round looks at (`rounds.servable`), which agents each ticket's row
names as still cooling down from refusing it (`cooling_down`, the rule the SQL applies with
`refusal_cutoff`), and the round's decisions (`rounds.plan_offers`, the code the loop runs).
What it does not model: reading the rows (a window of 50 per queue and channel: here fewer
tickets than that, so one batch is the whole round), SKIP LOCKED between replicas, and the
re-check under the agents' locks (which can only drop an offer another replica got to first).

The invariant: after one round, a waiting ticket is offered whenever some agent is available,
serves its queue (skills), has room on its channel and is not cooling down for it; and no offer
breaks those conditions or an agent's capacity.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ccshared.events.payloads import Channel
from router.domain import rounds
from router.domain.assignment import (
    STRATEGIES,
    Agent,
    AgentStatus,
    Strategy,
    cooling_down,
    ineligibility,
    status_after_missed_offer,
    wrap_up_until,
)

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
SKILLS = ("billing", "technical", "vip")
CHANNELS: tuple[Channel, ...] = ("phone", "email", "chat", "social")
STATUSES: tuple[AgentStatus, ...] = ("available", "busy", "away", "offline", "wrap_up")
PRIORITIES = (("urgent", 0), ("high", 1), ("normal", 2), ("low", 3))


class QueueSpec(NamedTuple):
    id: str
    required_skills: frozenset[str]
    strategy: Strategy
    rr_cursor: str | None


class Row(NamedTuple):
    """A waiting ticket as `router.db.queues.waiting_tickets` returns it."""

    id: str
    queue_id: str
    channel: str
    priority: str
    priority_rank: int
    sla_deadline: datetime | None
    queued_at: datetime | None
    declined: list[str]


class Refusal(NamedTuple):
    agent_id: str
    timed_out: bool  # else declined
    seconds_ago: int


def _moment(seconds_ago: int | None) -> datetime | None:
    return None if seconds_ago is None else NOW - timedelta(seconds=seconds_ago)


# Strategies built once: building them inside every draw cost more than the round itself.
_AGO = st.none() | st.integers(0, 3600)
_DEADLINE = st.none() | st.integers(-3600, 3600)
_SKILLS = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=3)
_CAPACITY = st.dictionaries(st.sampled_from(CHANNELS), st.integers(0, 3), min_size=1, max_size=4)
_LOAD = st.integers(0, 3)
_STATUS = st.sampled_from(STATUSES[:1]) | st.sampled_from(STATUSES)  # about 3 in 5 available
_COUNT = st.integers(0, 20)
_INDEX = st.integers(0, 5)  # an agent or queue, modulo how many there are
_PRIORITY = st.sampled_from(PRIORITIES)
_CHANNEL = st.sampled_from(CHANNELS)
_REFUSALS = st.lists(st.tuples(_INDEX, st.booleans(), st.integers(0, 300)), max_size=3)
_QUEUE_SKILLS = st.sets(st.sampled_from(SKILLS), max_size=1)
_STRATEGY = st.sampled_from(STRATEGIES)
_COOLDOWN = st.sampled_from((0, 30, 60, 120))
_MISSED_OFFER_STATUS = st.sampled_from(("away", "busy", "offline", "available"))


def _agent(draw: st.DrawFn, agent_id: str) -> Agent:
    capacity = draw(_CAPACITY)
    return Agent(
        id=agent_id,
        skills=draw(_SKILLS),
        status=draw(_STATUS),
        capacity=capacity,
        load={c: min(draw(_LOAD), n) for c, n in capacity.items()},
        last_assigned_at=_moment(draw(_AGO)),
        idle_since=_moment(draw(_AGO)),
        assignments_total=draw(_COUNT),
    )


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    ids = [f"a{i}" for i in range(1 + draw(_INDEX))]
    roster = {a: _agent(draw, a) for a in ids}
    queues = {
        f"q{i}": QueueSpec(
            f"q{i}",
            frozenset(draw(_QUEUE_SKILLS)),
            draw(_STRATEGY),
            None if (cursor := draw(_AGO)) is None else ids[cursor % len(ids)],
        )
        for i in range(1 + draw(_INDEX) % 3)
    }
    queue_ids = sorted(queues)
    tickets = []
    for i in range(draw(_COUNT)):
        priority, rank = draw(_PRIORITY)
        refusals = [
            Refusal(ids[agent % len(ids)], timed_out, ago)
            for agent, timed_out, ago in draw(_REFUSALS)
        ]
        tickets.append(
            (
                Row(
                    id=f"t{i:02d}",
                    queue_id=queue_ids[draw(_INDEX) % len(queue_ids)],
                    channel=draw(_CHANNEL),
                    priority=priority,
                    priority_rank=rank,
                    sla_deadline=_moment(draw(_DEADLINE)),
                    queued_at=_moment(draw(_AGO)),
                    declined=[],
                ),
                refusals,
            )
        )
    return {
        "roster": roster,
        "queues": queues,
        "tickets": tickets,
        "cooldown_s": draw(_COOLDOWN),
        "missed_offer_status": draw(_MISSED_OFFER_STATUS),
        "came_back": {a for a in ids if draw(st.booleans())},
    }


def _after_housekeeping(world: dict[str, Any]) -> dict[str, Agent]:
    """The roster a round sees: each missed offer moved its agent (if available), then the
    agents of `came_back` set themselves available again."""
    roster: dict[str, Agent] = dict(world["roster"])
    for _, refusals in world["tickets"]:
        for refusal in refusals:
            agent = roster[refusal.agent_id]
            moved = status_after_missed_offer(agent.status, world["missed_offer_status"])
            if refusal.timed_out and moved is not None:
                roster[agent.id] = Agent(**{**_fields(agent), "status": moved})
    for agent_id in world["came_back"]:
        roster[agent_id] = Agent(**{**_fields(roster[agent_id]), "status": "available"})
    return roster


def _fields(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "skills": agent.skills,
        "status": agent.status,
        "capacity": agent.capacity,
        "load": agent.load,
        "last_assigned_at": agent.last_assigned_at,
        "idle_since": agent.idle_since,
        "assignments_total": agent.assignments_total,
    }


def _could_take(agent: Agent, queue: QueueSpec, row: Row) -> bool:
    """Available, serves the queue, has room on the channel, not cooling down for it."""
    return agent.id not in row.declined and (
        ineligibility(agent, row.channel, queue.required_skills) is None  # type: ignore[arg-type]
    )


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_a_waiting_ticket_is_offered_within_one_round_whenever_someone_could_take_it(
    world: dict[str, Any],
) -> None:
    queues: dict[str, QueueSpec] = world["queues"]
    before = _after_housekeeping(world)
    roster = dict(before)  # the round's view; plan_offers books its offers into it
    pairs = {(q.id, c) for q in queues.values() for c in rounds.servable(q, roster)}
    waiting = [
        row._replace(
            declined=sorted(
                cooling_down(
                    ((r.agent_id, _moment(r.seconds_ago)) for r in refusals),
                    NOW,
                    world["cooldown_s"],
                )
            )
        )
        for row, refusals in world["tickets"]
    ]
    rows = [row for row in waiting if (row.queue_id, row.channel) in pairs]

    plans = [p for p in rounds.plan_offers(rows, queues, roster, NOW) if p is not None]

    offered = {p.ticket.id: p.decision.chosen_agent_id or "" for p in plans}
    assert len(offered) == len(plans)  # one offer per ticket at most
    per_agent = Counter(
        (a, t.channel) for t, a in ((p.ticket, offered[p.ticket.id]) for p in plans)
    )
    for (agent_id, channel), n in per_agent.items():
        agent = before[agent_id]
        assert agent.load.get(channel, 0) + n <= agent.capacity.get(channel, 0)
        assert roster[agent_id].load.get(channel, 0) == agent.load.get(channel, 0) + n
    for p in plans:
        agent = before[offered[p.ticket.id]]
        queue = queues[p.ticket.queue_id]
        assert agent.status == "available"
        assert queue.required_skills <= agent.skills.keys()
        assert agent.id not in p.ticket.declined
    # The invariant: nobody who could take a ticket still waiting is left with room.
    event(f"tickets offered: {'some' if offered else 'none'}")
    event(f"tickets left waiting: {'some' if len(offered) < len(waiting) else 'none'}")
    back = any(
        r.timed_out and r.seconds_ago >= world["cooldown_s"] and r.agent_id == offered.get(row.id)
        for row, refusals in world["tickets"]
        for r in refusals
    )
    event(f"offered to an agent who missed it longer ago than the cooldown: {back}")
    for row in waiting:
        if row.id in offered:
            continue
        queue = queues[row.queue_id]
        able = [a.id for a in roster.values() if _could_take(a, queue, row)]
        assert able == [], f"{row.id} waits while {able} could take it"


def test_cooling_down_holds_a_refusal_for_the_cooldown_only() -> None:
    refusals = [("ann", NOW - timedelta(seconds=59)), ("bob", NOW - timedelta(seconds=61))]
    assert cooling_down(refusals, NOW, 60) == {"ann"}
    assert cooling_down(refusals, NOW, 0) == set()
    assert cooling_down([("cat", None)], NOW, 60) == {"cat"}


def test_a_missed_offer_moves_only_an_available_agent() -> None:
    assert status_after_missed_offer("available", "away") == "away"
    assert status_after_missed_offer("offline", "away") is None
    assert status_after_missed_offer("wrap_up", "busy") is None
    assert status_after_missed_offer("available", "available") is None


def test_wrap_up_lasts_the_queues_seconds_for_an_available_agent_only() -> None:
    assert wrap_up_until("available", 30, NOW) == NOW + timedelta(seconds=30)
    assert wrap_up_until("available", 0, NOW) is None
    assert wrap_up_until("away", 30, NOW) is None
