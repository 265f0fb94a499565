"""An assignment round's decisions, in memory: which (queue, channel) pairs someone could take
a ticket from now, and, for a batch of waiting tickets, the agent each one is offered to, queue
by queue, most urgent first, each offer booked into the round's view of the agents so the next
ticket sees the agent's new load. Pure: `router.tasks.assignment` reads the batch and the
agents, runs `plan_offers`, then confirms the offers under the agents' locks and writes them.

A waiting ticket's row (a `router.db.queues.waiting_tickets` row, or any object with the same
attributes): id, queue_id, channel, priority, priority_rank, sla_deadline, queued_at, and
`declined`: the agents still cooling down from refusing it (`assignment.cooling_down`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from ccshared.events.payloads import Channel
from router.domain.assignment import (
    Agent,
    Candidate,
    Decision,
    Standings,
    Strategy,
    TicketToAssign,
    choose_agent,
    split_roster,
)
from router.domain.prediction import BreachForecast, raised_rank

_LATEST = datetime.max.replace(tzinfo=UTC)


class QueueView(Protocol):
    """What a round needs of a queue (`router.db.queues.QueueRow`)."""

    @property
    def id(self) -> str: ...
    @property
    def required_skills(self) -> frozenset[str]: ...
    @property
    def strategy(self) -> Strategy: ...
    @property
    def rr_cursor(self) -> str | None: ...


def urgency(ticket: Any, forecasts: Mapping[Any, BreachForecast]) -> tuple[Any, ...]:
    """The waiting tickets' order within a queue: priority, SLA deadline (none last), age, id
    (as the SQL orders them; NULLs sort last there, here they must not reach a comparison with
    a datetime); a ticket predicted to breach (`forecasts`, by ticket id) one priority band
    up."""
    deadline, queued_at = ticket.sla_deadline, ticket.queued_at
    return (
        raised_rank(ticket.priority_rank, forecasts.get(ticket.id)),
        deadline is None,
        deadline or _LATEST,
        queued_at is None,
        queued_at or _LATEST,
        ticket.id,
    )


def servable(queue: QueueView, roster: Mapping[str, Agent]) -> list[str]:
    """The channels on which some available agent with the queue's skills has room now."""
    channels: set[str] = set()
    for agent in roster.values():
        if agent.status == "available" and queue.required_skills <= agent.skills.keys():
            channels.update(c for c, n in agent.capacity.items() if n > agent.load.get(c, 0))
    return sorted(channels)


def _decide(
    queue: QueueView,
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


def book(roster: dict[str, Agent], agent_id: str, channel: Channel, now: datetime) -> None:
    """The round's view after an offer to the agent: one more ticket on the channel."""
    agent = roster[agent_id]
    load = dict(agent.load)
    load[channel] = load.get(channel, 0) + 1
    roster[agent_id] = dataclasses.replace(
        agent, load=load, last_assigned_at=now, assignments_total=agent.assignments_total + 1
    )


class Planned(NamedTuple):
    """A waiting ticket (row) and the agent chosen for it."""

    ticket: Any
    decision: Decision


_Split = tuple[list[str], tuple[Candidate, ...]]


class QueueBatch:
    """One queue's part of a batch: its round-robin cursor as offers are planned, who could
    take its tickets on each channel (`split_roster`, worked out once per channel: status,
    skills and channels do not change within the batch, only loads), and those agents kept
    ranked as offers are booked (`Standings`, shared across queues to update on every offer)."""

    def __init__(
        self,
        queue: QueueView,
        roster: dict[str, Agent],
        standings: dict[tuple[str, str], Standings],
        now: datetime,
    ) -> None:
        self.queue = queue
        self.rr_cursor = queue.rr_cursor
        self._roster = roster
        self._standings = standings
        self._now = now
        self._splits: dict[str, _Split] = {}

    def _split(self, channel: Channel) -> _Split:
        split = self._splits.get(channel)
        if split is None:
            agents = list(self._roster.values())
            split = self._splits[channel] = split_roster(
                agents, channel, self.queue.required_skills
            )
        return split

    def _ranked(self, channel: Channel, split: _Split) -> Standings:
        key = (self.queue.id, channel)
        ranked = self._standings.get(key)
        if ranked is None:
            members, passed_over = split
            ranked = self._standings[key] = Standings(
                [self._roster[a] for a in members],
                passed_over,
                channel,
                self.queue.required_skills,
                self.queue.strategy,
                self._now,
            )
        return ranked

    def decide(self, ticket: Any) -> Decision | None:
        """The best agent for the ticket now; None if nobody can take it."""
        split = self._split(ticket.channel)
        if ticket.declined:
            declined = set(ticket.declined)
            return _decide(
                self.queue, self.rr_cursor, ticket, self._roster, declined, self._now, split
            )
        decision = self._ranked(ticket.channel, split).decide(self.rr_cursor)
        return decision if decision.chosen_agent_id is not None else None

    def book(self, ticket: Any, decision: Decision) -> None:
        """The round's view after the offer: the agent's new load, re-ranked everywhere."""
        agent_id = decision.chosen_agent_id or ""
        book(self._roster, agent_id, ticket.channel, self._now)
        for ranked in self._standings.values():
            ranked.update(self._roster[agent_id])
        if decision.strategy == "round_robin":
            self.rr_cursor = agent_id


def plan_offers(
    rows: list[Any],
    queues: Mapping[str, QueueView],
    roster: dict[str, Agent],
    now: datetime,
    forecasts: Mapping[Any, BreachForecast] | None = None,
) -> Iterator[Planned | None]:
    """Decide a batch's waiting tickets, queue by queue, most urgent first (`urgency`, with the
    batch's breach `forecasts`), booking each offer into `roster` (the round's view of the
    agents). Yields each ticket's plan as it is decided (None: nobody can take it now), so a
    caller can let other work in between."""
    forecasts = forecasts or {}
    waiting: dict[str, list[Any]] = {}
    for row in rows:
        waiting.setdefault(row.queue_id, []).append(row)
    standings: dict[tuple[str, str], Standings] = {}
    for queue_id, tickets in waiting.items():
        batch = QueueBatch(queues[queue_id], roster, standings, now)
        for ticket in sorted(tickets, key=lambda t: urgency(t, forecasts)):
            decision = batch.decide(ticket)
            if decision is None:
                yield None
                continue
            batch.book(ticket, decision)
            yield Planned(ticket, decision)
