"""The supervisor's board, computed from what the router and SLA answer: per queue the
waiting count, oldest wait, offers pending and the agents who serve it by status; the tickets
at risk or breached with their escalation level. Pure: the API module fetches, this decides."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

AGENT_STATUSES: tuple[str, ...] = ("available", "busy", "wrap_up", "away", "offline")
# The router writes "SLA first_response escalation level 2" as the reason of the history
# entries an escalation makes (router/domain/tickets.py `escalate`).
_ESCALATION = re.compile(r"\bescalation level (\d+)\b")


@dataclass(frozen=True)
class QueueRow:
    id: str
    name: str
    waiting: int
    oldest_wait_s: float | None
    offers_pending: int
    offers_more: bool  # the count is a lower bound (the router's page was full)
    agents: dict[str, int]  # status -> agents serving the queue in it
    agents_serving: int


@dataclass(frozen=True)
class RiskRow:
    ticket_id: str
    metric: str
    status: str  # at_risk or breached
    deadline: str
    remaining_s: float
    priority: str
    queue_id: str | None
    escalation_level: int | None
    subject: str | None = None
    assignee: str | None = None


@dataclass(frozen=True)
class Board:
    queues: list[QueueRow]
    risks: list[RiskRow]
    agents_total: dict[str, int] = field(default_factory=dict)


def serves(agent: Mapping[str, Any], queue: Mapping[str, Any]) -> bool:
    """The router's rule: an agent serves a queue when their skills cover every skill the
    queue requires (supervisors' records are never offered tickets)."""
    if agent.get("role", "agent") != "agent":
        return False
    skills = agent.get("skills") or {}
    return all(skill in skills for skill in queue.get("required_skills") or [])


def queue_rows(
    queues: Sequence[Mapping[str, Any]],
    agents: Sequence[Mapping[str, Any]],
    offered: Iterable[Mapping[str, Any]],
    *,
    offered_complete: bool = True,
) -> list[QueueRow]:
    pending = Counter(t.get("queue_id") for t in offered)
    rows = []
    for queue in queues:
        by_status = Counter(a["status"] for a in agents if serves(a, queue))
        rows.append(
            QueueRow(
                id=queue["id"],
                name=queue.get("name") or queue["id"],
                waiting=int(queue.get("depth") or 0),
                oldest_wait_s=queue.get("oldest_wait_s"),
                offers_pending=pending.get(queue["id"], 0),
                offers_more=not offered_complete,
                agents={s: by_status.get(s, 0) for s in AGENT_STATUSES},
                agents_serving=sum(by_status.values()),
            )
        )
    return rows


def escalation_level(history: Iterable[Mapping[str, Any]]) -> int | None:
    """The highest SLA escalation level the ticket's history records (None: none yet)."""
    levels = [
        int(found.group(1))
        for entry in history
        for found in [_ESCALATION.search(str(entry.get("reason") or ""))]
        if found
    ]
    return max(levels) if levels else None


def risk_rows(
    at_risk: Sequence[Mapping[str, Any]],
    tickets: Mapping[str, Mapping[str, Any]],
) -> list[RiskRow]:
    """The clocks at risk or breached (not those merely running), most urgent first, with
    what the router says of their tickets (`tickets`: id -> detail, when read)."""
    rows = []
    for item in at_risk:
        if item.get("status") not in ("at_risk", "breached"):
            continue
        ticket = tickets.get(str(item["ticket_id"])) or {}
        summary = ticket.get("summary") or {}
        rows.append(
            RiskRow(
                ticket_id=str(item["ticket_id"]),
                metric=str(item["metric"]),
                status=str(item["status"]),
                deadline=str(item["deadline"]),
                remaining_s=float(item["remaining_s"]),
                priority=str(ticket.get("priority") or item.get("priority") or ""),
                queue_id=ticket.get("queue_id") or item.get("queue_id"),
                escalation_level=escalation_level(ticket.get("history") or []),
                subject=summary.get("subject"),
                assignee=ticket.get("assignee_agent_id"),
            )
        )
    rows.sort(key=lambda r: (r.status != "breached", r.remaining_s))
    return rows


def agent_totals(agents: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = Counter(a["status"] for a in agents if a.get("role", "agent") == "agent")
    return {s: counts.get(s, 0) for s in AGENT_STATUSES}


def duration_text(seconds: float | None) -> str:
    """`1 h 05 min`, `4 min 10 s`, `12 s`; negative: overdue by that much (`-3 min 02 s`)."""
    if seconds is None:
        return "—"
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    if minutes:
        return f"{sign}{minutes} min {secs:02d} s"
    return f"{sign}{secs} s"
