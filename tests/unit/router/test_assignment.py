from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccshared.events.payloads import Channel
from router.domain.assignment import (
    STRATEGIES,
    Agent,
    AgentStatus,
    Candidate,
    Standings,
    Strategy,
    TicketToAssign,
    WaitingTicket,
    candidates_from_json,
    candidates_json,
    choose_agent,
    ineligibility,
    pick_next_ticket,
    split_roster,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
CAPACITY: Mapping[Channel, int] = {"phone": 1, "chat": 3, "email": 5, "social": 5}
CHAT_BILLING = TicketToAssign("chat", frozenset({"billing"}), "normal")


def agent(
    id: str,
    *,
    skills: Mapping[str, int] | None = None,
    status: AgentStatus = "available",
    load: Mapping[Channel, int] | None = None,
    idle_for_s: float | None = 60,
    capacity: Mapping[Channel, int] = CAPACITY,
) -> Agent:
    return Agent(
        id=id,
        skills=skills if skills is not None else {"billing": 3},
        status=status,
        capacity=capacity,
        load=load or {},
        idle_since=None if idle_for_s is None else NOW - timedelta(seconds=idle_for_s),
    )


def by_id(candidates: tuple[Candidate, ...]) -> dict[str, Candidate]:
    return {c.agent_id: c for c in candidates}


# --- eligibility and passed-over reasons ---------------------------------------------------


def test_every_agent_appears_with_the_reason_it_was_passed_over() -> None:
    agents = [
        agent("a-off", status="offline"),
        agent("b-away", status="away"),
        agent("c-busy", status="busy"),
        agent("d-noskill", skills={"technical": 5}),
        agent("e-full", load={"chat": 3}),
        agent("f-nochat", capacity={"phone": 1}),
        agent("g-ok", idle_for_s=300),
        agent("h-ok", idle_for_s=30),
    ]
    decision = choose_agent(CHAT_BILLING, agents, "longest_idle", NOW)
    assert decision.chosen_agent_id == "g-ok"
    assert {c.agent_id: c.passed_over for c in decision.candidates} == {
        "a-off": "offline",
        "b-away": "away",
        "c-busy": "busy",
        "d-noskill": "missing_skill",
        "e-full": "at_capacity",
        "f-nochat": "channel_not_handled",
        "g-ok": None,
        "h-ok": "outranked",
    }
    # Eligible agents first, best first, with scores; the others by id, without.
    assert [c.agent_id for c in decision.candidates[:2]] == ["g-ok", "h-ok"]
    assert [c.score for c in decision.candidates] == [300.0, 30.0] + [None] * 6


def test_status_is_reported_before_missing_skill_and_capacity() -> None:
    tired = agent("x", status="away", skills={}, load={"chat": 3})
    assert ineligibility(tired, "chat", frozenset({"billing"})) == "away"


def test_no_eligible_agent_gives_no_choice_and_keeps_the_cursor() -> None:
    decision = choose_agent(
        CHAT_BILLING, [agent("a", status="offline")], "round_robin", NOW, rr_cursor="a"
    )
    assert decision.chosen_agent_id is None
    assert decision.tie_breaker == "no eligible agent"
    assert decision.rr_cursor == "a"
    assert decision.candidates == (Candidate("a", None, "offline"),)


# --- capacity per channel (multitasking) ---------------------------------------------------


def test_chat_agent_multitasks_up_to_chat_capacity() -> None:
    assert ineligibility(agent("a", load={"chat": 2}), "chat", frozenset()) is None
    assert ineligibility(agent("a", load={"chat": 3}), "chat", frozenset()) == "at_capacity"


def test_full_chat_capacity_does_not_block_email() -> None:
    busy_chatter = agent("a", load={"chat": 3, "email": 4})
    assert ineligibility(busy_chatter, "email", frozenset()) is None


def test_one_phone_call_fills_phone_capacity() -> None:
    assert ineligibility(agent("a", load={"phone": 1}), "phone", frozenset()) == "at_capacity"


# --- strategies ----------------------------------------------------------------------------


def test_longest_idle_picks_the_agent_idle_longest() -> None:
    agents = [agent("a", idle_for_s=10), agent("b", idle_for_s=500), agent("c", idle_for_s=90)]
    decision = choose_agent(CHAT_BILLING, agents, "longest_idle", NOW)
    assert decision.chosen_agent_id == "b"
    assert decision.tie_breaker == "highest longest_idle score"


def test_longest_idle_counts_from_the_last_assignment_when_that_is_later() -> None:
    recently_assigned = dataclasses.replace(
        agent("a", idle_for_s=1000), last_assigned_at=NOW - timedelta(seconds=5)
    )
    decision = choose_agent(
        CHAT_BILLING, [recently_assigned, agent("b", idle_for_s=100)], "longest_idle", NOW
    )
    assert decision.chosen_agent_id == "b"


def test_least_loaded_picks_the_agent_with_most_free_capacity_across_channels() -> None:
    agents = [
        agent("a", load={"chat": 1, "email": 4}),
        agent("b", load={"chat": 2}),
        agent("c", load={"chat": 1, "phone": 1}),
    ]
    decision = choose_agent(CHAT_BILLING, agents, "least_loaded", NOW)
    assert decision.chosen_agent_id == "b"
    assert by_id(decision.candidates)["b"].score == pytest.approx(1 - 2 / 14)


def test_best_skill_match_picks_the_highest_mean_level_over_required_skills() -> None:
    ticket = TicketToAssign("email", frozenset({"billing", "zh"}), "high")
    agents = [
        agent("a", skills={"billing": 5, "zh": 1}),
        agent("b", skills={"billing": 4, "zh": 4}),
        agent("c", skills={"billing": 5, "technical": 5}),
    ]
    decision = choose_agent(ticket, agents, "best_skill_match", NOW)
    assert decision.chosen_agent_id == "b"
    assert by_id(decision.candidates)["b"].score == 4.0
    assert by_id(decision.candidates)["c"].passed_over == "missing_skill"


def test_round_robin_takes_the_next_agent_id_after_the_cursor_and_wraps() -> None:
    agents = [agent("c"), agent("a"), agent("b")]
    first = choose_agent(CHAT_BILLING, agents, "round_robin", NOW, rr_cursor=None)
    second = choose_agent(CHAT_BILLING, agents, "round_robin", NOW, rr_cursor=first.rr_cursor)
    third = choose_agent(CHAT_BILLING, agents, "round_robin", NOW, rr_cursor=second.rr_cursor)
    fourth = choose_agent(CHAT_BILLING, agents, "round_robin", NOW, rr_cursor=third.rr_cursor)
    assert [d.chosen_agent_id for d in (first, second, third, fourth)] == ["a", "b", "c", "a"]


def test_round_robin_skips_ineligible_agents_and_survives_a_departed_cursor() -> None:
    agents = [agent("a"), agent("b", status="away"), agent("d")]
    assert choose_agent(CHAT_BILLING, agents, "round_robin", NOW, "a").chosen_agent_id == "d"
    # "c" signed off since it was chosen; the next id after it is still well defined.
    assert choose_agent(CHAT_BILLING, agents, "round_robin", NOW, "c").chosen_agent_id == "d"


def test_equal_scores_go_to_the_agent_idle_longest() -> None:
    agents = [
        agent("a", skills={"billing": 3}, idle_for_s=10),
        agent("b", skills={"billing": 3}, idle_for_s=200),
    ]
    decision = choose_agent(CHAT_BILLING, agents, "best_skill_match", NOW)
    assert decision.chosen_agent_id == "b"
    assert decision.tie_breaker == (
        "2 agents with equal best_skill_match score; longest idle first, then agent id: "
        "longest idle"
    )


def test_equal_score_and_idle_time_go_to_the_lowest_agent_id() -> None:
    agents = [agent("b"), agent("a"), agent("c")]
    decision = choose_agent(CHAT_BILLING, agents, "least_loaded", NOW)
    assert decision.chosen_agent_id == "a"
    assert decision.tie_breaker.endswith("equally idle, lowest agent id")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_decision_is_independent_of_agent_order(strategy: Strategy) -> None:
    agents = [agent(f"a{i}", idle_for_s=60 * (i % 3), load={"chat": i % 2}) for i in range(8)]
    shuffled = agents[:]
    random.Random(7).shuffle(shuffled)
    assert choose_agent(CHAT_BILLING, agents, strategy, NOW, "a3") == choose_agent(
        CHAT_BILLING, shuffled, strategy, NOW, "a3"
    )


# --- fairness --------------------------------------------------------------------------------


def simulate(
    strategy: Strategy, agents_count: int, tickets: int, handle_s: tuple[int, int] = (60, 240)
) -> dict[str, int]:
    """Tickets arrive every 20 s on chat and take `handle_s` seconds (a random range) each;
    returns the number of assignments per agent."""
    rng = random.Random(42)
    agents = {
        f"agent-{i:02d}": agent(f"agent-{i:02d}", idle_for_s=None) for i in range(agents_count)
    }
    finishing: list[tuple[datetime, str]] = []
    cursor: str | None = None
    now = NOW
    for _ in range(tickets):
        now += timedelta(seconds=20)
        for done in [f for f in finishing if f[0] <= now]:
            finishing.remove(done)
            a = agents[done[1]]
            agents[a.id] = dataclasses.replace(a, load={"chat": a.load["chat"] - 1})
        decision = choose_agent(CHAT_BILLING, list(agents.values()), strategy, now, cursor)
        cursor = decision.rr_cursor
        assert decision.chosen_agent_id is not None
        a = agents[decision.chosen_agent_id]
        agents[a.id] = dataclasses.replace(
            a,
            load={"chat": a.load.get("chat", 0) + 1},
            last_assigned_at=now,
            assignments_total=a.assignments_total + 1,
        )
        finishing.append((now + timedelta(seconds=rng.randint(*handle_s)), a.id))
    return {a.id: a.assignments_total for a in agents.values()}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("agents_count", "tickets"), [(6, 1200), (5, 3000), (12, 2400)])
def test_equal_agents_get_equal_shares_when_handle_times_are_equal(
    strategy: Strategy, agents_count: int, tickets: int
) -> None:
    counts = simulate(strategy, agents_count, tickets, handle_s=(150, 150))
    assert sum(counts.values()) == tickets
    assert max(counts.values()) - min(counts.values()) <= 1, counts


@pytest.mark.parametrize("strategy", ["longest_idle", "round_robin", "best_skill_match"])
def test_turn_taking_strategies_stay_even_when_handle_times_vary(strategy: Strategy) -> None:
    counts = simulate(strategy, agents_count=5, tickets=3000)
    assert max(counts.values()) - min(counts.values()) <= 1, counts


def test_least_loaded_stays_within_a_few_percent_when_handle_times_vary() -> None:
    # least_loaded evens out current load, not counts: whoever happens to finish sooner is
    # offered the next ticket sooner, so counts drift by chance, but only a little.
    counts = simulate("least_loaded", agents_count=5, tickets=3000)
    fair_share = 3000 / 5
    assert max(counts.values()) - min(counts.values()) <= 0.05 * fair_share, counts


# --- pick_next_ticket ------------------------------------------------------------------------


def waiting(
    id: str,
    *,
    priority: str = "normal",
    channel: Channel = "chat",
    skills: frozenset[str] = frozenset({"billing"}),
    waited_s: int = 60,
    deadline_in_s: int | None = None,
) -> WaitingTicket:
    return WaitingTicket(
        ticket_id=id,
        queue_id="billing",
        channel=channel,
        priority=priority,  # type: ignore[arg-type]
        required_skills=skills,
        enqueued_at=NOW - timedelta(seconds=waited_s),
        sla_deadline=None if deadline_in_s is None else NOW + timedelta(seconds=deadline_in_s),
    )


def test_agent_takes_the_highest_priority_ticket_first() -> None:
    tickets = [waiting("t-normal", waited_s=900), waiting("t-urgent", priority="urgent")]
    chosen = pick_next_ticket(agent("a"), tickets, NOW)
    assert chosen is not None
    assert chosen.ticket_id == "t-urgent"


def test_among_equal_priority_the_nearest_deadline_wins_and_no_deadline_is_last() -> None:
    tickets = [
        waiting("t-none", waited_s=999),
        waiting("t-later", deadline_in_s=600),
        waiting("t-soon", deadline_in_s=60),
    ]
    chosen = pick_next_ticket(agent("a"), tickets, NOW)
    assert chosen is not None
    assert chosen.ticket_id == "t-soon"
    rest = pick_next_ticket(agent("a"), [tickets[0], tickets[1]], NOW)
    assert rest is not None
    assert rest.ticket_id == "t-later"


def test_without_deadlines_the_oldest_ticket_wins() -> None:
    tickets = [waiting("t-new", waited_s=10), waiting("t-old", waited_s=400)]
    chosen = pick_next_ticket(agent("a"), tickets, NOW)
    assert chosen is not None
    assert chosen.ticket_id == "t-old"


def test_agent_only_takes_tickets_on_channels_with_free_capacity() -> None:
    on_a_call = agent("a", load={"phone": 1})
    tickets = [waiting("t-phone", priority="urgent", channel="phone"), waiting("t-chat")]
    chosen = pick_next_ticket(on_a_call, tickets, NOW)
    assert chosen is not None
    assert chosen.ticket_id == "t-chat"


def test_agent_only_takes_tickets_whose_queue_skills_it_has() -> None:
    tickets = [
        waiting("t-tech", priority="urgent", skills=frozenset({"technical"})),
        waiting("t-bill"),
    ]
    chosen = pick_next_ticket(agent("a"), tickets, NOW)
    assert chosen is not None
    assert chosen.ticket_id == "t-bill"


def test_unavailable_agent_or_nothing_takeable_picks_nothing() -> None:
    assert pick_next_ticket(agent("a", status="away"), [waiting("t")], NOW) is None
    assert pick_next_ticket(agent("a", load={"chat": 3}), [waiting("t")], NOW) is None


def test_ticket_enqueued_for_later_is_not_taken_yet() -> None:
    callback = waiting("t-callback", priority="urgent", waited_s=-300)
    chosen = pick_next_ticket(agent("a"), [callback, waiting("t-now")], NOW)
    assert chosen is not None
    assert chosen.ticket_id == "t-now"


@pytest.mark.parametrize("seed", range(20))
def test_every_reason_in_a_decision_is_the_agents_ineligibility(seed: int) -> None:
    """choose_agent checks eligibility inline (it runs for every agent on every decision);
    what it reports must be exactly `ineligibility`, for any mix of agents."""
    rng = random.Random(seed)
    statuses: list[AgentStatus] = ["available", "available", "busy", "away", "offline"]
    channels: list[Channel] = ["phone", "chat", "email", "social"]
    agents = [
        agent(
            f"a{n:02d}",
            skills={s: rng.randint(1, 5) for s in rng.sample(["billing", "vip", "tech"], 2)},
            status=rng.choice(statuses),
            load={c: rng.randint(0, 3) for c in channels},
            capacity={c: rng.randint(0, 3) for c in rng.sample(channels, 3)},
        )
        for n in range(30)
    ]
    for channel in channels:
        for required in (frozenset(), frozenset({"billing"}), frozenset({"billing", "vip"})):
            ticket = TicketToAssign(channel, required, "normal")
            decision = choose_agent(ticket, agents, rng.choice(STRATEGIES), NOW)
            by_agent = {a.id: a for a in agents}
            assert sorted(c.agent_id for c in decision.candidates) == sorted(by_agent)
            for c in decision.candidates:
                reason = ineligibility(by_agent[c.agent_id], channel, required)
                if c.passed_over in (None, "outranked"):
                    assert reason is None
                    assert c.score is not None
                else:
                    assert c.passed_over == reason
                    assert c.score is None


@pytest.mark.parametrize("seed", range(10))
def test_a_split_roster_decides_exactly_as_the_whole_roster(seed: int) -> None:
    """The assigner works out once per batch who could take a channel's tickets at all and
    passes the rest as `passed_over`: the decision must be the same as over every agent."""
    rng = random.Random(seed)
    channels: list[Channel] = ["phone", "chat", "email", "social"]
    agents = [
        agent(
            f"a{n:02d}",
            skills={s: rng.randint(1, 5) for s in rng.sample(["billing", "vip", "tech"], 2)},
            status=rng.choice(["available", "available", "busy", "offline"]),
            load={c: rng.randint(0, 2) for c in channels},
            capacity={c: rng.randint(0, 3) for c in rng.sample(channels, 3)},
            idle_for_s=rng.choice([None, 10, 60, 600]),
        )
        for n in range(40)
    ]
    by_id = {a.id: a for a in agents}
    for channel in channels:
        for required in (frozenset(), frozenset({"billing"})):
            ticket = TicketToAssign(channel, required, "normal")
            members, passed_over = split_roster(agents, channel, required)
            for strategy in STRATEGIES:
                whole = choose_agent(ticket, agents, strategy, NOW, "a10")
                split = choose_agent(
                    ticket,
                    [by_id[m] for m in members],
                    strategy,
                    NOW,
                    "a10",
                    passed_over=passed_over,
                )
                assert split == whole


@pytest.mark.parametrize("seed", range(40))
def test_standings_decide_a_run_of_tickets_exactly_as_choose_agent(seed: int) -> None:
    """The assigner decides a batch of one queue's tickets on a channel with `Standings`, which
    re-ranks only the agents that offers went to: every decision of the run, candidates and
    scores and tie-breaker included, must be choose_agent's over the roster as it is then.
    Offers of other queues (other channels, agents outside this queue) change the roster too."""
    rng = random.Random(seed)
    channels: list[Channel] = ["phone", "chat", "email", "social"]
    roster = {
        f"a{n:02d}": agent(
            f"a{n:02d}",
            skills={s: rng.randint(1, 3) for s in rng.sample(["billing", "vip", "tech"], 2)},
            status=rng.choice(["available", "available", "available", "busy", "offline"]),
            load={c: rng.randint(0, 2) for c in channels},
            capacity={c: rng.randint(0, 4) for c in rng.sample(channels, 3)},
            idle_for_s=rng.choice([None, 10, 60, 60, 600]),
        )
        for n in range(rng.randint(1, 40))
    }
    channel = rng.choice(channels)
    required = rng.choice([frozenset(), frozenset({"billing"}), frozenset({"billing", "vip"})])
    strategy = rng.choice(STRATEGIES)
    now = NOW + timedelta(seconds=rng.choice([0, 30]))
    members, passed_over = split_roster(list(roster.values()), channel, required)
    standings = Standings(
        [roster[m] for m in members], passed_over, channel, required, strategy, now
    )
    cursor = rng.choice([None, "a05", "a99"])
    ticket = TicketToAssign(channel, required, "normal")
    for _ in range(60):
        expected = choose_agent(
            ticket, [roster[m] for m in members], strategy, now, cursor, passed_over=passed_over
        )
        assert standings.decide(cursor) == expected
        # The offer goes to the chosen agent, or (another queue's) to anyone on any channel.
        if expected.chosen_agent_id is not None and rng.random() < 0.7:
            booked, on = expected.chosen_agent_id, channel
        else:
            booked, on = rng.choice(sorted(roster)), rng.choice(channels)
        before = roster[booked]
        roster[booked] = dataclasses.replace(
            before,
            load={**before.load, on: before.load.get(on, 0) + 1},
            last_assigned_at=now,
            assignments_total=before.assignments_total + 1,
        )
        standings.update(roster[booked])
        cursor = expected.rr_cursor


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),
            st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
            st.sampled_from([None, "outranked", "missing_skill", "offline", "declined_before"]),
        ),
        max_size=40,
    )
)
def test_stored_candidates_read_back_as_the_list_they_were(
    rows: list[tuple[str, float | None, Any]],
) -> None:
    candidates = [Candidate(agent, score, why) for agent, score, why in rows]
    stored = orjson.loads(candidates_json(candidates))
    assert candidates_from_json(stored) == [
        {"agent_id": c.agent_id, "score": c.score, "passed_over": c.passed_over} for c in candidates
    ]


def test_stored_candidates_are_columns_a_third_the_size_and_the_old_lists_still_read() -> None:
    agents = [agent(f"agent-{n:03}", skills={"technical": 1 + n % 4}) for n in range(300)]
    agents += [agent(f"off-{n:03}", status="offline") for n in range(20)]
    decision = choose_agent(
        TicketToAssign("chat", frozenset({"technical"}), "normal"), agents, "best_skill_match", NOW
    )
    stored = candidates_json(decision.candidates)
    listed = candidates_from_json(orjson.loads(stored))
    assert len(listed) == 320
    assert len(stored) < len(orjson.dumps(listed)) / 3
    assert orjson.loads(stored)["reasons"] == [None, "outranked", "offline"]
    # A decision stored before, as the list itself, reads as it was.
    assert candidates_from_json(listed) == listed
