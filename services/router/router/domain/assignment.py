"""Agent selection: which agent a queued ticket goes to under a queue's strategy, with every
agent considered, its score and why it was passed over; and which waiting ticket an agent
with free capacity takes next."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, NamedTuple

from ccshared.events.payloads import Channel, Priority
from router.domain.classification import PRIORITY_RANK

AgentStatus = Literal["available", "busy", "away", "offline"]
Strategy = Literal["longest_idle", "least_loaded", "round_robin", "best_skill_match"]
PassedOver = Literal[
    "offline",
    "away",
    "busy",
    "missing_skill",
    "channel_not_handled",
    "at_capacity",
    "outranked",
    "declined_before",  # the agent declined this ticket, or let its offer time out
]
STRATEGIES: Final[tuple[Strategy, ...]] = (
    "longest_idle",
    "least_loaded",
    "round_robin",
    "best_skill_match",
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Agent:
    """`skills` maps each skill (role) to a level 1..5. `status` says whether the agent takes
    new work at all ("busy" = not now, e.g. after-call work); how much work the agent holds is
    `load` against `capacity`, per channel, so a chat agent can hold 3 chats and 5 e-mails.
    A channel missing from `capacity` is one the agent does not handle."""

    id: str
    skills: Mapping[str, int]
    status: AgentStatus
    capacity: Mapping[Channel, int]
    load: Mapping[Channel, int] = field(default_factory=dict)
    last_assigned_at: datetime | None = None
    idle_since: datetime | None = None
    assignments_total: int = 0
    # Derived once (an Agent is immutable; a changed one is a new Agent): every decision
    # looks at them for every agent.
    _idle_reference: datetime = field(init=False, repr=False, compare=False)
    _utilization: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        moments = [t for t in (self.idle_since, self.last_assigned_at) if t is not None]
        object.__setattr__(self, "_idle_reference", max(moments) if moments else _EPOCH)
        total = sum(self.capacity.values())
        used = sum(min(self.load.get(ch, 0), cap) for ch, cap in self.capacity.items())
        object.__setattr__(self, "_utilization", used / total if total else 1.0)

    def free_capacity(self, channel: Channel) -> int:
        return self.capacity.get(channel, 0) - self.load.get(channel, 0)

    def utilization(self) -> float:
        """Share of total capacity in use, across channels (0.0 idle .. 1.0 full)."""
        return self._utilization

    def idle_reference(self) -> datetime:
        """Since when the agent has had nothing new: the later of becoming available and the
        last assignment. An agent with neither counts as idle since the epoch (first in line)."""
        return self._idle_reference


@dataclass(frozen=True, slots=True)
class Queue:
    id: str
    required_skills: frozenset[str]
    strategy: Strategy


@dataclass(frozen=True, slots=True)
class TicketToAssign:
    channel: Channel
    required_skills: frozenset[str]
    priority: Priority


class Candidate(NamedTuple):
    """One agent considered. `score` is None for agents not eligible; `passed_over` is None
    only for the chosen agent. (A tuple: a decision lists every agent, hundreds of them.)"""

    agent_id: str
    score: float | None
    passed_over: PassedOver | None


@dataclass(frozen=True, slots=True)
class Decision:
    """`candidates` lists the eligible agents best first, then the others by agent id.
    `rr_cursor` is the round-robin cursor to store for the queue's next decision."""

    chosen_agent_id: str | None
    strategy: Strategy
    candidates: tuple[Candidate, ...]
    tie_breaker: str
    rr_cursor: str | None


def ineligibility(
    agent: Agent, channel: Channel, required_skills: frozenset[str]
) -> PassedOver | None:
    """Why the agent cannot take a ticket on `channel` needing `required_skills` now, or None.
    Checked in this order: status, skills, channel, capacity (the first reason reported is the
    one that would remain longest)."""
    if agent.status != "available":
        return agent.status
    if not required_skills <= agent.skills.keys():
        return "missing_skill"
    if agent.capacity.get(channel, 0) <= 0:
        return "channel_not_handled"
    if agent.free_capacity(channel) <= 0:
        return "at_capacity"
    return None


def choose_agent(
    ticket: TicketToAssign,
    agents: Sequence[Agent],
    strategy: Strategy,
    now: datetime,
    rr_cursor: str | None = None,
    *,
    passed_over: Sequence[Candidate] = (),
) -> Decision:
    """Pick an agent for `ticket`. Scores (higher is better) by strategy:
    longest_idle: seconds idle; least_loaded: 1 - utilization across channels;
    best_skill_match: mean level over the required skills; round_robin: agents in id order
    starting after `rr_cursor` (the last agent chosen), scored by closeness to it.
    Ties go to the agent idle longest, then the lowest agent id, so equal agents take turns.
    `passed_over`: agents the caller already knows cannot take it (see `split_roster`), listed
    with the others without being looked at again."""
    eligible: list[Agent] = []
    others: list[Candidate] = list(passed_over)
    channel, required = ticket.channel, ticket.required_skills
    for agent in agents:
        # `ineligibility`, inlined: this loop runs for every agent on every decision.
        if agent.status != "available":
            others.append(Candidate(agent.id, None, agent.status))
        elif required and not required <= agent.skills.keys():
            others.append(Candidate(agent.id, None, "missing_skill"))
        else:
            capacity = agent.capacity.get(channel, 0)
            if capacity <= 0:
                others.append(Candidate(agent.id, None, "channel_not_handled"))
            elif capacity <= agent.load.get(channel, 0):
                others.append(Candidate(agent.id, None, "at_capacity"))
            else:
                eligible.append(agent)
    others.sort(key=lambda c: c.agent_id)
    if not eligible:
        return Decision(None, strategy, tuple(others), "no eligible agent", rr_cursor)

    idle = {a.id: a.idle_reference() for a in eligible}
    scores = _scores(strategy, eligible, ticket, now, rr_cursor, idle)
    ranked = sorted(eligible, key=lambda a: (-scores[a.id], idle[a.id], a.id))
    chosen = ranked[0]
    ranked_candidates = [Candidate(a.id, scores[a.id], "outranked") for a in ranked]
    ranked_candidates[0] = Candidate(chosen.id, scores[chosen.id], None)
    return Decision(
        chosen.id,
        strategy,
        (*ranked_candidates, *others),
        _tie_breaker(strategy, ranked, scores),
        chosen.id if strategy == "round_robin" else rr_cursor,
    )


def split_roster(
    agents: Sequence[Agent], channel: Channel, required_skills: frozenset[str]
) -> tuple[list[str], tuple[Candidate, ...]]:
    """(ids of the agents who could take such a ticket given free capacity, and the others
    with the reason, which does not change while only loads do: status, skills, channel).
    A caller deciding many tickets between changes of status passes the second to
    `choose_agent` as `passed_over` and only the first as `agents`."""
    members: list[str] = []
    others: list[Candidate] = []
    for agent in agents:
        reason = ineligibility(agent, channel, required_skills)
        if reason is None or reason == "at_capacity":
            members.append(agent.id)
        else:
            others.append(Candidate(agent.id, None, reason))
    return members, tuple(others)


def _scores(
    strategy: Strategy,
    agents: Sequence[Agent],
    ticket: TicketToAssign,
    now: datetime,
    rr_cursor: str | None,
    idle: Mapping[str, datetime],
) -> dict[str, float]:
    if strategy == "longest_idle":
        return {a.id: round((now - idle[a.id]).total_seconds(), 3) for a in agents}
    if strategy == "least_loaded":
        return {a.id: round(1.0 - a.utilization(), 6) for a in agents}
    if strategy == "best_skill_match":
        required = ticket.required_skills
        return {
            a.id: round(sum(a.skills[s] for s in required) / len(required), 6) if required else 0.0
            for a in agents
        }
    # round_robin: the first id after the cursor scores highest, wrapping around.
    ids = sorted(a.id for a in agents)
    after = [i for i, agent_id in enumerate(ids) if rr_cursor is None or agent_id > rr_cursor]
    start = after[0] if after else 0
    order = ids[start:] + ids[:start]
    return {agent_id: float(len(order) - position) for position, agent_id in enumerate(order)}


def _tie_breaker(strategy: Strategy, ranked: Sequence[Agent], scores: Mapping[str, float]) -> str:
    if strategy == "round_robin":
        return "round robin: next agent id after the last one chosen, wrapping around"
    best = scores[ranked[0].id]
    tied = [a for a in ranked if scores[a.id] == best]
    if len(tied) == 1:
        return f"highest {strategy} score"
    rule = f"{len(tied)} agents with equal {strategy} score; longest idle first, then agent id"
    if tied[0].idle_reference() == tied[1].idle_reference():
        return f"{rule}: equally idle, lowest agent id"
    return f"{rule}: longest idle"


# --- an agent frees capacity ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaitingTicket:
    ticket_id: str
    queue_id: str
    channel: Channel
    priority: Priority
    required_skills: frozenset[str]
    enqueued_at: datetime
    sla_deadline: datetime | None = None


def pick_next_ticket(
    agent: Agent, waiting_tickets: Sequence[WaitingTicket], now: datetime
) -> WaitingTicket | None:
    """The most urgent waiting ticket the agent can take now: by priority, then the nearest SLA
    deadline (none: last), then the longest wait, then ticket id. Only tickets whose channel
    has free capacity for the agent and whose queue's skills the agent has, and not tickets
    enqueued for later than `now` (scheduled callbacks); None if none, or if the agent is not
    available."""
    if agent.status != "available":
        return None
    takeable = [
        t
        for t in waiting_tickets
        if t.enqueued_at <= now and ineligibility(agent, t.channel, t.required_skills) is None
    ]
    if not takeable:
        return None
    return min(
        takeable,
        key=lambda t: (
            PRIORITY_RANK[t.priority],
            t.sla_deadline is None,
            t.sla_deadline or now,
            t.enqueued_at,
            t.ticket_id,
        ),
    )
