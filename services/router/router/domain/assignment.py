"""Agent selection: which agent a queued ticket goes to under a queue's strategy, with every
agent considered, its score and why it was passed over; and which waiting ticket an agent
with free capacity takes next."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NamedTuple

import orjson

from ccshared.events.payloads import AgentStatusChanged, Channel, Priority
from router.domain.classification import PRIORITY_RANK

# As `ccshared.events.payloads.AgentStatus`. wrap_up: after resolving, for the queue's seconds.
AgentStatus = Literal["available", "busy", "away", "offline", "wrap_up"]
Strategy = Literal["longest_idle", "least_loaded", "round_robin", "best_skill_match"]
PassedOver = Literal[
    "offline",
    "away",
    "busy",
    "wrap_up",
    "missing_skill",
    "channel_not_handled",
    "at_capacity",
    "outranked",
    "declined_before",  # the agent declined this ticket, or let its offer time out, recently
]
MISSED_OFFER: Final = "missed_offer"  # the status reason after an offer timed out
WRAP_UP: Final = "wrap_up"  # the status reason (and status) after resolving a ticket
WRAP_UP_ENDED: Final = "wrap_up_ended"  # back to available when the wrap-up is over
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


def cooling_down(
    refusals: Iterable[tuple[str, datetime | None]], now: datetime, cooldown_s: float
) -> frozenset[str]:
    """The agents not to offer a ticket to now: of its refusals (agent, when the agent declined
    it or its offer timed out), those less than `cooldown_s` ago. A refusal holds for one
    attempt, not for ever: after the cooldown the agent is a candidate like any other (one
    agent who missed an offer and came back gets it again)."""
    since = refusal_cutoff(now, cooldown_s)
    return frozenset(a for a, at in refusals if at is None or at > since)


def status_changed(
    agent_id: str,
    before: str | None,
    status: AgentStatus,
    reason: str | None,
    actor: str,
    at: datetime,
    ticket_id: Any = None,
    until: datetime | None = None,
) -> AgentStatusChanged:
    """The `agent.status_changed` event of a change (`before`: the status the row held)."""
    return AgentStatusChanged(
        agent_id=agent_id,
        from_status=before,  # a status the database holds
        to_status=status,
        reason=reason,
        actor=actor,
        ticket_id=ticket_id,
        until=until,
        at=at,
    )


def refusal_cutoff(now: datetime, cooldown_s: float) -> datetime:
    """Refusals after this moment still keep their agent from the ticket (`cooling_down`; the
    assignment round's SQL filters by it: `responded_at > cutoff`)."""
    return now - timedelta(seconds=cooldown_s)


def status_after_missed_offer(status: AgentStatus, configured: AgentStatus) -> AgentStatus | None:
    """The status an agent moves to when an offer to them times out (Twilio TaskRouter's
    missed-reservation activity): `configured` if they were available and it differs, else
    None (an agent who already went away or offline stays as they are)."""
    if status != "available" or configured == "available":
        return None
    return configured


def wrap_up_until(status: AgentStatus, wrap_up_s: int, resolved_at: datetime) -> datetime | None:
    """When an available agent who resolved a ticket of a queue with `wrap_up_s` seconds of
    wrap-up gets new offers again; None if the queue has none or the agent is not available
    (an away agent stays away; one already in wrap-up keeps the current one)."""
    if wrap_up_s <= 0 or status != "available":
        return None
    return resolved_at + timedelta(seconds=wrap_up_s)


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


def candidates_json(candidates: Sequence[Candidate]) -> str:
    """A decision's candidates as stored with it, by column: `agents`, `scores` (null where
    not eligible) and `why` (an index into `reasons`, the distinct passed-over reasons, null
    for the chosen agent). With 300 agents that is ~6 kB where a list of objects was ~20 kB,
    for the database to parse, compress and keep on every offer. Read back with
    `candidates_from_json`."""
    codes: dict[str | None, int] = {}
    why = [codes.setdefault(c.passed_over, len(codes)) for c in candidates]
    return orjson.dumps(
        {
            "agents": [c.agent_id for c in candidates],
            "scores": [c.score for c in candidates],
            "reasons": list(codes),
            "why": why,
        }
    ).decode()


def candidates_from_json(stored: Any) -> list[dict[str, Any]]:
    """The candidates as the API lists them (`agent_id`, `score`, `passed_over`, in decision
    order) from what `candidates_json` stored, or from the list of objects stored before."""
    if isinstance(stored, list):
        return stored
    reasons = stored["reasons"]
    return [
        {"agent_id": agent, "score": score, "passed_over": reasons[why]}
        for agent, score, why in zip(stored["agents"], stored["scores"], stored["why"], strict=True)
    ]


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


class Standings:
    """`choose_agent` for a run of tickets of one queue and channel, kept up to date as offers
    are booked: the agents who could take such a ticket stay ranked by the queue's strategy,
    and an offer re-ranks only the agent it went to (`update`), so a decision costs what
    changed rather than a scoring of the whole roster. Decides exactly as `choose_agent` does
    for a ticket nobody declined (a declined one goes through `choose_agent`, the decliners
    left out).

    `agents`: the members of `split_roster` for the channel and skills, as they are now;
    `passed_over`: its others."""

    __slots__ = (
        "_at_capacity",
        "_cands",
        "_channel",
        "_ids",
        "_key",
        "_keys",
        "_members",
        "_now",
        "_others",
        "_passed_over",
        "_required",
        "_strategy",
    )

    def __init__(
        self,
        agents: Sequence[Agent],
        passed_over: Sequence[Candidate],
        channel: Channel,
        required_skills: frozenset[str],
        strategy: Strategy,
        now: datetime,
    ) -> None:
        self._channel = channel
        self._required = required_skills
        self._strategy = strategy
        self._now = now
        self._passed_over = tuple(passed_over)
        self._members = {a.id for a in agents}
        self._at_capacity = {a.id for a in agents if not self._has_room(a)}
        self._others: tuple[Candidate, ...] | None = None
        # The agents with room, best first, as three parallel lists (rank keys, ids, and the
        # candidate each is listed as when passed over), and each one's key.
        ranked = sorted(self._entry(a) for a in agents if a.id not in self._at_capacity)
        self._keys = [key for key, _ in ranked]
        self._ids = [candidate.agent_id for _, candidate in ranked]
        self._cands = [candidate for _, candidate in ranked]
        self._key = {candidate.agent_id: key for key, candidate in ranked}

    def _has_room(self, agent: Agent) -> bool:
        return agent.capacity.get(self._channel, 0) > agent.load.get(self._channel, 0)

    def _entry(self, agent: Agent) -> tuple[tuple[Any, ...], Candidate]:
        # choose_agent's order: score (higher first), longest idle, agent id. Round robin
        # ranks by id (from the cursor on; scores are positions, worked out per decision).
        if self._strategy == "round_robin":
            return (agent.id,), Candidate(agent.id, 0.0, "outranked")
        score = _score(self._strategy, agent, self._required, self._now)
        return (-score, agent.idle_reference(), agent.id), Candidate(agent.id, score, "outranked")

    def update(self, agent: Agent) -> None:
        """The agent changed (say, an offer was booked to it): rank it again."""
        if agent.id not in self._members:
            return
        if agent.id in self._at_capacity:
            self._at_capacity.discard(agent.id)
            self._others = None
        else:
            i = bisect_left(self._keys, self._key.pop(agent.id))
            del self._keys[i], self._ids[i], self._cands[i]
        if not self._has_room(agent):
            self._at_capacity.add(agent.id)
            self._others = None
            return
        key, candidate = self._entry(agent)
        i = bisect_left(self._keys, key)
        self._keys.insert(i, key)
        self._ids.insert(i, agent.id)
        self._cands.insert(i, candidate)
        self._key[agent.id] = key

    def decide(self, rr_cursor: str | None = None) -> Decision:
        """What `choose_agent` decides for a ticket of this queue and channel now."""
        others = self._others_by_id()
        if not self._ids:
            return Decision(None, self._strategy, others, "no eligible agent", rr_cursor)
        if self._strategy == "round_robin":
            ids = self._ids
            start = bisect_right(ids, rr_cursor) if rr_cursor is not None else 0
            order = ids[start:] + ids[:start] if start < len(ids) else ids
            n = len(order)
            ranked = [Candidate(a, float(n - p), "outranked") for p, a in enumerate(order)]
            ranked[0] = Candidate(order[0], float(n), None)
            return Decision(order[0], self._strategy, (*ranked, *others), _ROUND_ROBIN, order[0])
        best = self._cands[0]
        return Decision(
            best.agent_id,
            self._strategy,
            (Candidate(best.agent_id, best.score, None), *self._cands[1:], *others),
            self._tie_breaker(),
            rr_cursor,
        )

    def _tie_breaker(self) -> str:
        best = self._keys[0][0]
        tied = bisect_right(self._keys, best, key=lambda k: k[0])
        if tied == 1:
            return f"highest {self._strategy} score"
        rule = f"{tied} agents with equal {self._strategy} score; longest idle first, then agent id"
        if self._keys[0][1] == self._keys[1][1]:
            return f"{rule}: equally idle, lowest agent id"
        return f"{rule}: longest idle"

    def _others_by_id(self) -> tuple[Candidate, ...]:
        if self._others is None:
            full = [Candidate(a, None, "at_capacity") for a in self._at_capacity]
            self._others = tuple(sorted((*self._passed_over, *full), key=lambda c: c.agent_id))
        return self._others


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


def _score(strategy: Strategy, agent: Agent, required: frozenset[str], now: datetime) -> float:
    """An agent's score under a strategy other than round robin (higher is better)."""
    if strategy == "longest_idle":
        return round((now - agent.idle_reference()).total_seconds(), 3)
    if strategy == "least_loaded":
        return round(1.0 - agent.utilization(), 6)
    # best_skill_match
    return round(sum(agent.skills[s] for s in required) / len(required), 6) if required else 0.0


def _scores(
    strategy: Strategy,
    agents: Sequence[Agent],
    ticket: TicketToAssign,
    now: datetime,
    rr_cursor: str | None,
    idle: Mapping[str, datetime],
) -> dict[str, float]:
    if strategy != "round_robin":
        return {a.id: _score(strategy, a, ticket.required_skills, now) for a in agents}
    # round_robin: the first id after the cursor scores highest, wrapping around.
    ids = sorted(a.id for a in agents)
    after = [i for i, agent_id in enumerate(ids) if rr_cursor is None or agent_id > rr_cursor]
    start = after[0] if after else 0
    order = ids[start:] + ids[:start]
    return {agent_id: float(len(order) - position) for position, agent_id in enumerate(order)}


_ROUND_ROBIN: Final = "round robin: next agent id after the last one chosen, wrapping around"


def _tie_breaker(strategy: Strategy, ranked: Sequence[Agent], scores: Mapping[str, float]) -> str:
    if strategy == "round_robin":
        return _ROUND_ROBIN
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
