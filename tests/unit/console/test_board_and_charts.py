"""The board's figures from the router's and SLA's answers, and the KPI charts' geometry."""

from __future__ import annotations

from console.domain.board import duration_text, escalation_level, queue_rows, risk_rows
from console.domain.kpi_charts import chart, value_text


def test_agents_count_in_the_queues_whose_skills_they_cover() -> None:
    queues = [
        {
            "id": "frontline",
            "name": "Front",
            "required_skills": [],
            "depth": 3,
            "oldest_wait_s": 42,
        },
        {"id": "vip", "name": "VIP", "required_skills": ["vip"], "depth": 0},
    ]
    agents = [
        {"id": "amy", "status": "available", "skills": {"vip": 3}},
        {"id": "bob", "status": "busy", "skills": {}},
        {"id": "sam", "status": "offline", "skills": {"vip": 5}, "role": "supervisor"},
    ]
    offered = [{"queue_id": "frontline"}, {"queue_id": "frontline"}, {"queue_id": "vip"}]
    front, vip = queue_rows(queues, agents, offered, offered_complete=False)
    assert (front.waiting, front.oldest_wait_s, front.offers_pending) == (3, 42, 2)
    assert front.offers_more is True
    assert front.agents["available"] == 1
    assert front.agents["busy"] == 1
    assert vip.agents["available"] == 1
    assert vip.agents["busy"] == 0
    assert vip.agents_serving == 1  # the supervisor's record is never offered tickets


def test_the_escalation_level_is_the_highest_the_history_records() -> None:
    history = [
        {"action": "notify_supervisor", "reason": "SLA first_response escalation level 1"},
        {"action": "escalate", "reason": "SLA first_response escalation level 2"},
        {"action": "transfer", "reason": "customer asked"},
    ]
    assert escalation_level(history) == 2
    assert escalation_level([{"reason": None}]) is None


def test_only_clocks_at_risk_or_breached_are_listed_breached_first() -> None:
    at_risk = [
        {
            "ticket_id": "a",
            "metric": "resolution",
            "status": "running",
            "deadline": "d",
            "remaining_s": 9,
        },
        {
            "ticket_id": "b",
            "metric": "first_response",
            "status": "at_risk",
            "deadline": "d",
            "remaining_s": 60,
        },
        {
            "ticket_id": "c",
            "metric": "first_response",
            "status": "breached",
            "deadline": "d",
            "remaining_s": -5,
        },
    ]
    tickets = {"c": {"priority": "urgent", "queue_id": "vip", "summary": {"subject": "Help"}}}
    rows = risk_rows(at_risk, tickets)
    assert [(r.ticket_id, r.status) for r in rows] == [("c", "breached"), ("b", "at_risk")]
    assert (rows[0].priority, rows[0].subject, rows[0].escalation_level) == ("urgent", "Help", None)


def test_durations_read_as_people_say_them() -> None:
    assert duration_text(12.4) == "12 s"
    assert duration_text(250) == "4 min 10 s"
    assert duration_text(3900) == "1 h 05 min"
    assert duration_text(-182) == "-3 min 02 s"
    assert duration_text(None) == "—"


def test_a_share_below_its_target_is_drawn_under_the_target_line_and_marked() -> None:
    drawn = chart(
        "csat",
        "share",
        0.9,
        [{"key": "d1", "csat": 0.75}, {"key": "d2", "csat": 0.95}, {"key": "d3"}],
    )
    low, high, empty = drawn.bars
    assert drawn.target_y is not None
    assert low.below_target
    assert not high.below_target
    assert not empty.below_target
    assert low.y > drawn.target_y > high.y  # SVG's y grows downwards
    assert empty.height == 0
    assert empty.text == "—"
    assert drawn.target_text == "90.0 %"


def test_nps_bars_grow_from_zero_both_ways() -> None:
    drawn = chart("nps", "points", None, [{"key": "a", "nps": 40}, {"key": "b", "nps": -20}])
    up, down = drawn.bars
    assert up.y + up.height == drawn.zero_y
    assert down.y == drawn.zero_y
    assert value_text(-20, "points") == "-20.0"
    assert value_text(5400, "seconds") == "90.0 min"
    assert value_text(7200 * 2, "seconds") == "4.0 h"
