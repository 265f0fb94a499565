"""KPI rollups equal a direct computation over the raw records: a few hundred random tickets
with replies, reopens, SLA outcomes, escalations, follow-up contacts and (repeated) answers go
through Kafka and the API; every figure, for every grouping, is recomputed here from what was
generated and compared."""

from __future__ import annotations

import csv
import io
import itertools
import random
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ccshared.events import new_event
from ccshared.events.payloads import SlaBreached, SlaEscalated, SlaMet
from feedback.domain.kpis import BUCKET_BOUNDS_S, bucket_of
from tests.helpers import wait_until
from tests.integration.feedback.conftest import Feedback
from tests.integration.feedback.tickets import contact, opened, reopened, replied, resolved

N_TICKETS = 300
FCR_DAYS = 7
QUEUES, AGENTS = ["billing", "tech", "vip"], ["a1", "a2", "a3", "a4", "a5"]
CHANNELS, CATEGORIES = ["phone", "email", "chat", "social"], ["billing", "technical", "complaint"]


@dataclass
class Ticket:
    id: uuid.UUID
    customer: uuid.UUID
    channel: str
    queue: str
    agent: str
    category: str
    opened_at: datetime
    resolved_at: datetime
    first_response_at: datetime | None = None
    reopened: bool = False
    spam: bool = False
    contacts: list[datetime] = field(default_factory=list)
    sla: dict[str, str] = field(default_factory=dict)
    escalated: bool = False
    answers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def recontacted(self) -> bool:
        until = self.resolved_at + timedelta(days=FCR_DAYS)
        return any(self.resolved_at < c <= until for c in self.contacts)


def _generate(rng: random.Random, now: datetime) -> tuple[list[Ticket], list[Any]]:
    tickets, events = [], []
    for _ in range(N_TICKETS):
        resolved_at = now - timedelta(days=rng.randint(0, 4), seconds=rng.randint(3600, 20_000))
        t = Ticket(
            id=uuid.uuid4(),
            customer=uuid.uuid4(),
            channel=rng.choice(CHANNELS),
            queue=rng.choice(QUEUES),
            agent=rng.choice(AGENTS),
            category=rng.choice(CATEGORIES),
            opened_at=resolved_at - timedelta(seconds=rng.randint(60, 200_000)),
            resolved_at=resolved_at,
        )
        kind = dict(channel=t.channel, category=t.category, queue_id=t.queue, agent=t.agent)
        events.append(
            opened(t.id, t.customer, t.opened_at, channel=t.channel, category=t.category,
                   queue_id=t.queue)
        )  # fmt: skip
        if rng.random() < 0.8:
            t.first_response_at = t.opened_at + timedelta(seconds=rng.randint(5, 3000))
            events.append(replied(t.id, t.first_response_at))
        t.spam = rng.random() < 0.05
        first_resolution = resolved(
            t.id, t.customer, t.opened_at, t.resolved_at, code="spam" if t.spam else "solved",
            **kind,
        )  # fmt: skip
        events.append(first_resolution)
        if not t.spam and rng.random() < 0.1:
            t.reopened = True
            events.append(reopened(t.id, t.resolved_at + timedelta(minutes=5)))
            t.resolved_at += timedelta(minutes=rng.randint(10, 50))
            events.append(resolved(t.id, t.customer, t.opened_at, t.resolved_at, **kind))
        for metric in ("first_response", "resolution"):
            outcome = rng.choice(["met", "breached", None, "met-then-breached"])
            if outcome is None:
                continue
            deadline = t.opened_at + timedelta(hours=4)
            common = dict(ticket_id=t.id, metric=metric, policy_id="p", policy_version=1,
                          deadline=deadline)  # fmt: skip
            if outcome in ("met", "met-then-breached"):
                events.append(SlaMet(**common, met_at=deadline))  # type: ignore[arg-type]
            if outcome in ("breached", "met-then-breached"):
                events.append(SlaBreached(**common, at=deadline))  # type: ignore[arg-type]
            t.sla[metric] = "met" if outcome == "met" else "breached"
        if rng.random() < 0.1:
            t.escalated = True
            events.append(
                SlaEscalated(
                    ticket_id=t.id, metric="resolution", level=1, actions=["notify_supervisor"],
                    at=t.opened_at + timedelta(hours=1),
                )
            )  # fmt: skip
        for chance, offset in ((0.15, timedelta(days=2)), (0.1, timedelta(days=FCR_DAYS + 1)),
                               (0.1, -timedelta(seconds=30))):  # fmt: skip
            if rng.random() < chance:
                at = (t.resolved_at if offset > timedelta(0) else t.opened_at) + offset
                t.contacts.append(at)
                events.append(contact(t.customer, at, channel=t.channel))
        tickets.append(t)
    return tickets, events


def _answer(rng: random.Random) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "csat": rng.choice([None, 1, 2, 3, 4, 5, 5]),
        "nps": rng.choice([None, *range(11), 9, 10]),
        "solved_first_contact": rng.choice([None, True, False]),
    }
    if rng.random() < 0.4:
        answer["comment"] = rng.choice(["很好", "great help", "  ", "slow"])
    if answer["csat"] is None and answer["nps"] is None and answer["solved_first_contact"] is None:
        answer["csat"] = 3
    return answer


def _praise(a: dict[str, Any]) -> bool:
    comment = (a.get("comment") or "").strip()
    return a["csat"] == 5 and a["nps"] is not None and a["nps"] >= 9 and bool(comment)


def _p90(seconds: list[float]) -> float | None:
    """The exact nearest-rank p90."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    return ordered[-(-9 * len(ordered) // 10) - 1]


def _p90_bucket(seconds: list[float]) -> int | None:
    """The exact nearest-rank p90 of the whole milliseconds, reported as the bound of its
    histogram bucket (what the default, histogram-based p90 reports)."""
    exact = _p90([float(round(s * 1000)) for s in seconds])
    return None if exact is None else BUCKET_BOUNDS_S[bucket_of(int(exact))]


def _ms(a: datetime, b: datetime) -> int:
    return round((b - a).total_seconds() * 1000)


def _expected(tickets: list[Ticket], exact: bool = True) -> dict[str, Any]:
    """The figures computed straight from the generated records."""
    p90 = _p90 if exact else _p90_bucket
    n = len(tickets)
    sent = [t for t in tickets if not t.spam]
    answered = [t for t in sent if t.answers]
    final = [t.answers[-1] for t in answered]
    csat = [a["csat"] for a in final if a["csat"] is not None]
    nps = [a["nps"] for a in final if a["nps"] is not None]
    solved = [a["solved_first_contact"] for a in final if a["solved_first_contact"] is not None]
    frt = [_ms(t.opened_at, t.first_response_at) for t in tickets if t.first_response_at]
    res = [_ms(t.opened_at, t.resolved_at) for t in tickets]
    outcomes = [o for t in tickets for o in t.sla.values()]

    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "tickets": n,
        "csat": share(sum(c >= 4 for c in csat), len(csat)),
        "nps": (sum(x >= 9 for x in nps) - sum(x <= 6 for x in nps)) * 100 / len(nps)
        if nps
        else None,
        "fcr_answered": share(sum(solved), len(solved)),
        "fcr_observed": share(sum(not t.reopened and not t.recontacted for t in tickets), n),
        "first_response_avg_s": sum(frt) / len(frt) / 1000 if frt else None,
        "first_response_p90_s": p90(
            [
                (t.first_response_at - t.opened_at).total_seconds()
                for t in tickets
                if t.first_response_at
            ]
        ),
        "resolution_avg_s": sum(res) / len(res) / 1000,
        "resolution_p90_s": p90([(t.resolved_at - t.opened_at).total_seconds() for t in tickets]),
        "sla_attainment": share(outcomes.count("met"), len(outcomes)),
        "escalation_rate": share(sum(t.escalated for t in tickets), n),
        "complaint_rate": share(sum(t.category == "complaint" for t in tickets), n),
        "survey_response_rate": share(len(answered), len(sent)),
        "surveys_sent": len(sent),
        "answers": len(answered),
        "praise_count": sum(any(_praise(a) for a in t.answers) for t in answered),
    }


def _assert_figures(actual: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    for name, value in expected.items():
        if isinstance(value, float):
            assert actual[name] == pytest.approx(value, rel=1e-9), f"{where}: {name}"
        else:
            assert actual[name] == value, f"{where}: {name}"


async def test_kpi_rollups_equal_a_direct_computation_over_the_raw_records(
    feedback_factory: Callable[..., Awaitable[Feedback]],
) -> None:
    # Private topics: tickets other tests publish meanwhile must not enter these figures.
    feedback = await feedback_factory(
        private_topics=True,
        observed_fcr_days=FCR_DAYS, customer_quiet_days=0, reply_window_s=30 * 86_400,
        reminder_after_s=0,
    )  # fmt: skip
    rng = random.Random(20250303)
    now = datetime.now(UTC).replace(microsecond=0)
    tickets, payloads = _generate(rng, now)
    for payload in payloads:
        event = new_event(payload, producer="test")
        await feedback.producer.send(
            feedback.topic_of(event.topic), event.to_bytes(), key=event.key.encode(),
            headers=[("event_type", event.event_type.encode())],
        )  # fmt: skip
    await feedback.producer.flush()

    async def all_processed() -> bool:
        done = await feedback.db.fetchval("SELECT count(*) FROM processed_events")
        return bool(done == len(payloads))

    await wait_until(all_processed, timeout=90)

    async def all_sent() -> bool:
        rows = await feedback.db.fetch("SELECT status, count(*) FROM surveys GROUP BY status")
        counts = {r["status"]: r["count"] for r in rows}
        return counts == {"sent": N_TICKETS - sum(t.spam for t in tickets), "suppressed":
                          sum(t.spam for t in tickets)}  # fmt: skip

    await wait_until(all_sent, timeout=60)

    by_id = {t.id: t for t in tickets}
    for row in await feedback.db.fetch("SELECT id, ticket_id, expires_at FROM surveys "
                                       "WHERE status = 'sent' ORDER BY ticket_id"):  # fmt: skip
        if rng.random() < 0.3:
            continue
        ticket = by_id[row["ticket_id"]]
        token = feedback.token(row["id"], row["expires_at"])
        for _ in range(2 if rng.random() < 0.15 else 1):  # some customers answer twice
            answer = _answer(rng)
            response = await feedback.client.post(f"/v1/surveys/{token}", json=answer)
            assert response.status_code == 200, response.text
            ticket.answers.append(answer)

    first, last = min(t.resolved_at for t in tickets).date(), now.date()
    dimensions: dict[str, Callable[[Ticket], str]] = {
        "queue": lambda t: t.queue,
        "agent": lambda t: t.agent,
        "channel": lambda t: t.channel,
        "category": lambda t: t.category,
        "day": lambda t: t.resolved_at.date().isoformat(),
    }
    for (group_by, key_of), exact in itertools.product(dimensions.items(), (False, True)):
        response = await feedback.client.get(
            "/v1/kpis",
            params={
                "from": first.isoformat(),
                "to": last.isoformat(),
                "group_by": group_by,
                "exact_percentiles": str(exact).lower(),
            },
        )
        assert response.status_code == 200, response.text
        report = response.json()
        groups: dict[str, list[Ticket]] = defaultdict(list)
        for t in tickets:
            groups[key_of(t)].append(t)
        assert [g["key"] for g in report["groups"]] == sorted(groups)
        for group in report["groups"]:
            where = f"{group_by}={group['key']} exact={exact}"
            _assert_figures(group, _expected(groups[group["key"]], exact), where)
        _assert_figures(report["total"], _expected(tickets, exact), f"{group_by} total {exact}")

    # A sub-range counts only the tickets resolved in it.
    day = (now - timedelta(days=2)).date()
    response = await feedback.client.get(
        "/v1/kpis", params={"from": day.isoformat(), "to": day.isoformat(), "group_by": "channel"}
    )
    in_range = [t for t in tickets if t.resolved_at.date() == day]
    _assert_figures(response.json()["total"], _expected(in_range, exact=False), "one day")

    # CSV carries the same figures.
    params = {"from": first.isoformat(), "to": last.isoformat(), "group_by": "queue"}
    as_csv = await feedback.client.get("/v1/kpis", params=params, headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["queue"] for r in rows] == [*sorted(QUEUES), "total"]
    assert int(rows[-1]["tickets"]) == N_TICKETS
    assert float(rows[-1]["csat"]) == pytest.approx(_expected(tickets)["csat"])
    same = await feedback.client.get("/v1/kpis.csv", params=params)
    assert same.text == as_csv.text


async def test_kpi_query_errors_name_the_parameter(feedback: Feedback) -> None:
    bad_group = await feedback.client.get("/v1/kpis?from=2025-01-01&to=2025-01-31&group_by=team")
    assert bad_group.status_code == 422
    assert bad_group.json()["errors"][0]["field"] == "query.group_by"
    backwards = await feedback.client.get("/v1/kpis?from=2025-02-01&to=2025-01-01")
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "query.to"
    missing = await feedback.client.get("/v1/kpis?to=2025-01-01")
    assert missing.json()["errors"][0]["field"] == "query.from"
    empty = await feedback.client.get("/v1/kpis?from=2001-01-01&to=2001-01-31&group_by=day")
    assert empty.json()["groups"] == []
    assert empty.json()["total"]["csat"] is None
