"""End to end: the four services as uvicorn processes on fresh databases, a realistic mixed load
for a fixed time, and every figure beside a ceiling measured in the same run.

The load (three processes on this machine, bench/e2e_roles.py: the contact poster, the people,
the tail consumer; each reports its CPU and event-loop lag, and a run where any lags more than
100 ms at p99 is marked invalid):
- contacts on the four channels posted to intake at a fixed rate, built from
  tests/fixtures/contacts.jsonl with fresh customers; a share of them continue an earlier thread
  of the same customer (e-mail In-Reply-To/References, the same chat session, a social reply,
  a call from the same number);
- a pool of agents (router API, one signed agent token each) polling their offers, accepting,
  replying and resolving after a short think time;
- customers answering the surveys feedback sends (the link of each `survey.requested`): mostly
  promoters, some passives, some detractors (whose answers open follow-up tickets);
- an SLA policy (BENCH_E2E_SCENARIO): `realistic` by default, targets of minutes that most
  tickets meet while ~10 % of first replies come late enough for a warning and ~2 % for a
  breach; `storm`, targets of seconds, so nearly every ticket warns and breaches (feedback
  sends surveys at once: its per-channel delays are set to 0).

Measured: contacts accepted per second; p50/p99 from POST to the ticket's `ticket.assigned`,
from the agent's resolve call to `survey.requested`, and from each SLA deadline to its
`sla.breached`; CPU seconds and RSS per service. Every event is timed when the tail consumer
(a process of its own) receives it.

Ceilings, in the same run once the load has stopped:
- HTTP: a bare FastAPI endpoint validating the same request model (bench/ceiling_app.py), driven
  by the same client at the same rate (latency, CPU, RSS) and flat out (requests/s);
- Kafka: a consumer that does nothing, reading this run's contacts from intake.contacts
  (messages/s, CPU), and the delivery time of every record the tail received (a no-op
  consumer's produce-to-receive time, under the same load);
- PostgreSQL: single-row INSERTs, each committed, from one asyncpg connection (rows/s, latency).
Latency floors are sums of those hops (documented with the table), so a ratio says how many
times the bare hops the real path takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.e2e_roles import LAG_LIMIT_MS
from bench.harness import (
    KAFKA,
    RESULTS,
    ROOT,
    Server,
    create_bench_key,
    database_url,
    recreate_database_async,
    socket_database_url,
    start_groups_at_end,
    start_uvicorn,
    topic,
    user_headers,
    write_result,
)
from bench.loadgen import RawHttpClient, Response
from ccshared.events.catalog import FEEDBACK_EVENTS, INTAKE_CONTACTS, ROUTER_TICKETS, SLA_EVENTS
from ccshared.kafka import topic_partitions

RATE = float(os.environ.get("BENCH_E2E_RATE", "100"))
AGENTS = int(os.environ.get("BENCH_E2E_AGENTS", "40"))
THREAD_SHARE = float(os.environ.get("BENCH_E2E_THREAD_SHARE", "0.2"))
POLL_S = float(os.environ.get("BENCH_E2E_POLL_S", "1.0"))
SURVEY_TICK_S = os.environ.get("BENCH_E2E_SURVEY_TICK_S", "0.5")
INTAKE_WORKERS = int(os.environ.get("BENCH_E2E_INTAKE_WORKERS", "1"))
CEILING_S = int(os.environ.get("BENCH_E2E_CEILING_S", "5"))
PORTS = {
    "intake": int(os.environ.get("INTAKE_PORT", "18301")),
    "router": int(os.environ.get("ROUTER_PORT", "18302")),
    "sla": int(os.environ.get("SLA_PORT", "18303")),
    "feedback": int(os.environ.get("FEEDBACK_PORT", "18304")),
    "ceiling": int(os.environ.get("BENCH_CEILING_PORT", "18300")),
}
SERVICES = ("intake", "router", "sla", "feedback")
TOPICS = [topic(t) for t in (INTAKE_CONTACTS, ROUTER_TICKETS, SLA_EVENTS, FEEDBACK_EVENTS)]
SKILLS = ["complaints", "technical", "billing", "vip", "escalations"]
# The SLA scenario (BENCH_E2E_SCENARIO). `realistic` (the default): targets of a minute or two,
# which quick agents meet; about 10 % of first replies come late enough for a warning (past
# half the target) and about 2 % past the target, a breach. `storm`: targets of seconds, so
# nearly every ticket warns and breaches (about 11,000 escalations per 6,000 contacts), the
# load of an SLA policy gone wrong. A reply mix is (share, (seconds from, to)).
SCENARIOS: dict[str, dict[str, Any]] = {
    "realistic": {
        "policy": {
            "id": "bench-e2e",
            "name": "End-to-end benchmark (a realistic mix)",
            "rank": 0,
            "conditions": {},
            "targets": {"first_response": 60, "next_response": 120, "resolution": 180},
            "warn_at_share": 0.5,
            "escalation": [{"level": 1, "offset": "PT0S", "actions": ["notify_supervisor"]}],
        },
        "reply_think_s": [(0.88, (0.5, 3.0)), (0.10, (32.0, 45.0)), (0.02, (62.0, 70.0))],
        "drain_s": 90.0,
    },
    "storm": {
        "policy": {
            "id": "bench-e2e",
            "name": "End-to-end benchmark (seconds: an escalation storm)",
            "rank": 0,
            "conditions": {},
            "targets": {"first_response": 4, "next_response": 6, "resolution": 8},
            "warn_at_share": 0.5,
            "escalation": [{"level": 1, "offset": "PT0S", "actions": ["notify_supervisor"]}],
        },
        "reply_think_s": [(1.0, (0.5, 3.0))],
        "drain_s": 20.0,
    },
}
SCENARIO = os.environ.get("BENCH_E2E_SCENARIO", "realistic")
if SCENARIO not in SCENARIOS:
    raise SystemExit(f"BENCH_E2E_SCENARIO must be one of {', '.join(SCENARIOS)}, not {SCENARIO}")
SLA_POLICY: dict[str, Any] = SCENARIOS[SCENARIO]["policy"]
DRAIN_S = float(os.environ.get("BENCH_E2E_DRAIN_S", SCENARIOS[SCENARIO]["drain_s"]))
RESOLVE_THINK_S = (1.0, 5.0)
ANSWER_THINK_S = (0.5, 3.0)
ANSWERS_IN_FLIGHT = 64
REQUEST_TIMEOUT_S = 30
# What an agent's or a customer's request may fail with (counted, not raised).
CALL_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError)


def _pct(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _ms(values: list[float], missing: int = 0) -> dict[str, Any]:
    """p50/p99/max in milliseconds of values in seconds. `missing` counts the items that never
    arrived before the end of the run: they rank above every value, and a percentile that falls
    among them is None (not reached)."""
    ranked = sorted(values) + [float("inf")] * missing

    def at(share: float) -> float | None:
        if not ranked:
            return None
        value = ranked[min(len(ranked) - 1, int(share * len(ranked)))]
        return None if value == float("inf") else round(1000 * value, 1)

    return {
        "n": len(values),
        "missing": missing,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": None if missing or not values else round(1000 * max(values), 1),
    }


# --- the contacts -------------------------------------------------------------------------


def _fixtures() -> list[dict[str, Any]]:
    path = ROOT / "tests" / "fixtures" / "contacts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Contacts:
    """New contacts from the fixtures with a fresh customer each, and follow-ups continuing an
    earlier thread of the same customer."""

    def __init__(self, run: str, seed: int = 8) -> None:
        self.run = run
        self.templates = _fixtures()
        self.random = random.Random(seed)
        self.threads: deque[dict[str, Any]] = deque(maxlen=2000)
        self.last_was_new = True
        self.number_base = int(uuid.uuid5(uuid.NAMESPACE_OID, run).int % 1_000_000_000)

    def next(self, n: int) -> dict[str, Any]:
        self.last_was_new = not (self.threads and self.random.random() < THREAD_SHARE)
        if not self.last_was_new:
            return self._follow_up(n, self.random.choice(self.threads))
        return self._new(n)

    def _new(self, n: int) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(json.dumps(self.templates[n % len(self.templates)]))
        ext = f"e2e-{self.run}-{n}"
        now = datetime.now(UTC).isoformat()
        body["external_id"], body["received_at"] = ext, now
        channel = body["channel"]
        customer = body.get("customer") or {}
        hints: dict[str, Any] = {}
        if customer.get("name"):
            hints["name"] = customer["name"]
        if customer.get("account_id"):
            hints["account_id"] = f"{customer['account_id']}-{self.run}-{n}"
        if channel == "phone":
            caller = f"+8613{(self.number_base + n) % 1_000_000_000:09d}"
            body["phone"] |= {"caller": caller, "call_id": ext, "started_at": now}
            hints["phone"] = caller
        elif channel == "email":
            address = f"c{self.run}{n}@example.com"
            body["email"] |= {
                "message_id": f"<{ext}@mail.example.com>",
                "from": address,
                "in_reply_to": None,
                "references": [],
            }
            body["external_id"] = body["email"]["message_id"]
            hints["email"] = address
        elif channel == "chat":
            body["chat"] |= {"session_id": f"s-{ext}", "visitor_id": f"v-{ext}"}
            body["chat"]["messages"] = [{**m, "at": now} for m in body["chat"].get("messages", [])]
            hints["email"] = f"c{self.run}{n}@example.cn"
        else:
            handle = f"@u{self.run}{n}"
            body["social"] |= {"post_id": ext, "author": handle, "parent_post_id": None}
            hints["social_handle"] = handle
        body["customer"] = hints
        self.threads.append(body)
        return body

    def _follow_up(self, n: int, first: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(json.dumps(first))
        ext = f"e2e-{self.run}-{n}"
        now = datetime.now(UTC).isoformat()
        body["external_id"], body["received_at"] = ext, now
        body["text"] = "Any update on this? 还有进展吗？"
        channel = body["channel"]
        if channel == "phone":
            body["phone"] |= {"call_id": ext, "started_at": now}
        elif channel == "email":
            earlier = first["email"]["message_id"]
            body["email"] |= {
                "message_id": f"<{ext}@mail.example.com>",
                "in_reply_to": earlier,
                "references": [earlier],
            }
            body["external_id"] = body["email"]["message_id"]
            body["subject"] = f"Re: {first.get('subject') or ''}".strip()
        elif channel == "chat":
            body["chat"]["messages"] = [{"from": "visitor", "at": now, "text": body["text"]}]
        else:
            body["social"] |= {"post_id": ext, "parent_post_id": first["social"]["post_id"]}
        return body


# --- watching the topics ------------------------------------------------------------------


class Tail:
    """Every event of `topics` from now on, timed on receipt (wall clock). With
    `survey_urls_only`, only the survey links (the customers' inbox)."""

    def __init__(self, topics: list[str], *, survey_urls_only: bool = False) -> None:
        self.topics = topics
        self.survey_urls_only = survey_urls_only
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=KAFKA, enable_auto_commit=False, max_poll_records=5000
        )
        self.task: asyncio.Task[None] | None = None
        self.start_offsets: dict[TopicPartition, int] = {}
        self.contact_on_kafka: dict[str, float] = {}
        self.ticket_of_contact: dict[str, str] = {}
        self.assigned_at: dict[str, float] = {}
        self.resolved_on_kafka: dict[str, float] = {}
        self.survey_at: dict[str, float] = {}
        self.breach_lag_s: list[float] = []
        self.warning_lag_s: list[float] = []
        self.tickets_by_sla_outcome: dict[str, set[str]] = {
            "met": set(),
            "warned": set(),
            "breached": set(),
        }
        self.delivery_s: list[float] = []
        self.counts: dict[str, int] = {}
        self.surveys: asyncio.Queue[str] = asyncio.Queue()
        self.warn_share = 0.5
        self.targets_s: dict[str, float] = {}

    async def start(self) -> None:
        await self.consumer.start()
        tps = await topic_partitions(self.consumer, self.topics)
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            self.start_offsets[tp] = await self.consumer.position(tp)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                for record in records:
                    if self.survey_urls_only:
                        self._survey_url(record)
                        continue
                    self.delivery_s.append(now - record.timestamp / 1000)
                    self._record(orjson.loads(record.value), now)

    def _survey_url(self, record: Any) -> None:
        if not any(v == b"survey.requested" for k, v in record.headers if k == "event_type"):
            return
        payload = orjson.loads(record.value)["payload"]
        if not payload.get("reminder"):
            self.surveys.put_nowait(payload["url"])

    def _record(self, event: dict[str, Any], now: float) -> None:
        kind, payload = event["event_type"], event["payload"]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "contact.received":
            self.contact_on_kafka[payload["contact_id"]] = now
        elif kind == "ticket.opened" and payload.get("contact_id"):
            self.ticket_of_contact[payload["contact_id"]] = payload["ticket_id"]
        elif kind == "ticket.assigned":
            self.assigned_at.setdefault(payload["ticket_id"], now)
        elif kind == "ticket.resolved":
            self.resolved_on_kafka.setdefault(payload["ticket_id"], now)
        elif kind == "sla.breached":
            deadline = datetime.fromisoformat(payload["deadline"]).timestamp()
            self.breach_lag_s.append(now - deadline)
            self.tickets_by_sla_outcome["breached"].add(payload["ticket_id"])
        elif kind == "sla.warning":
            # Due at warn_at_share of the target: the deadline less the rest of the target.
            target = self.targets_s.get(payload["metric"])
            if target:
                due = datetime.fromisoformat(payload["deadline"]).timestamp()
                self.warning_lag_s.append(now - (due - (1 - self.warn_share) * target))
            self.tickets_by_sla_outcome["warned"].add(payload["ticket_id"])
        elif kind == "sla.met":
            self.tickets_by_sla_outcome["met"].add(payload["ticket_id"])
        elif kind == "survey.requested" and not payload.get("reminder"):
            self.survey_at.setdefault(payload["ticket_id"], now)
            self.surveys.put_nowait(payload["url"])

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        with contextlib.suppress(asyncio.CancelledError):
            await self.consumer.stop()

    def offsets(self) -> list[tuple[str, int, int]]:
        return [(tp.topic, tp.partition, o) for tp, o in self.start_offsets.items()]

    def unassigned(self, contacts: list[str]) -> int:
        """Of these contacts, those whose ticket opened and is not assigned yet."""
        tickets = (self.ticket_of_contact.get(c) for c in contacts)
        return sum(1 for t in tickets if t and t not in self.assigned_at)

    def result(self) -> dict[str, Any]:
        return {
            "start_offsets": self.offsets(),
            "contact_on_kafka": self.contact_on_kafka,
            "ticket_of_contact": self.ticket_of_contact,
            "assigned_at": self.assigned_at,
            "resolved_on_kafka": self.resolved_on_kafka,
            "survey_at": self.survey_at,
            "breach_lag_s": self.breach_lag_s,
            "warning_lag_s": self.warning_lag_s,
            "tickets_by_sla_outcome": {
                k: sorted(v) for k, v in self.tickets_by_sla_outcome.items()
            },
            "delivery_s": self.delivery_s,
            "counts": self.counts,
        }


# --- the people ---------------------------------------------------------------------------


class People:
    """Agents answering offers and customers answering surveys, with counters."""

    def __init__(
        self,
        router_url: str,
        tail: Tail,
        *,
        scenario: str = "realistic",
        agents: int = AGENTS,
        seed: int = 9,
    ) -> None:
        self.router_url = router_url
        self.tail = tail
        self.reply_think = SCENARIOS[scenario]["reply_think_s"]
        self.agents = agents
        self.random = random.Random(seed)
        self.stopping = False
        self.loops: list[asyncio.Task[None]] = []
        self.handling: set[asyncio.Task[None]] = set()
        self.resolved_at: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.answered: set[str] = set()
        # Survey answers in flight at once. Unbounded, a slow feedback service left thousands
        # of requests queued in the client's connection pool, whose bookkeeping then cost this
        # process more CPU than the services (a minute-long stall of its event loop).
        self.answering = asyncio.Semaphore(ANSWERS_IN_FLIGHT)
        # The agents' and customers' HTTP: the lean client of bench/loadgen.py (httpx cost this
        # process several times the CPU per request, and it was the one lagging).
        self.router: RawHttpClient
        self.survey_clients: dict[tuple[str, int], RawHttpClient] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def start(self) -> None:
        host, port = self.router_url.removeprefix("http://").rsplit(":", 1)
        self.router = await RawHttpClient(host, int(port), connections=128).__aenter__()
        self.loops = [asyncio.create_task(self.agent(f"agent-{n:03d}")) for n in range(self.agents)]
        self.loops.append(asyncio.create_task(self.customers()))

    def in_progress(self) -> int:
        """Offers being worked on: accepted, not yet resolved (or failed)."""
        return len(self.handling)

    def reply_after_s(self) -> float:
        """An agent's think time before the first reply: the scenario's mix of quick, slow
        (an SLA warning) and very slow (a breach) replies."""
        draw = self.random.random()
        for share, (low, high) in self.reply_think:
            if draw < share:
                return self.random.uniform(low, high)
            draw -= share
        low, high = self.reply_think[-1][1]
        return self.random.uniform(low, high)

    async def stop(self) -> None:
        """The agents' and customers' requests first, while their clients are still open; then
        the loops that own the clients."""
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for task in self.loops:
            task.cancel()
        await asyncio.gather(*self.loops, return_exceptions=True)
        for task in list(self.tasks):  # spawned by a loop in its last moment
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in [self.router, *self.survey_clients.values()]:
            await client.__aexit__(None, None, None)

    async def _call(
        self, client: RawHttpClient, method: str, path: str, json: object = None, **kw: Any
    ) -> Response:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            return await client.request(method, path, json, **kw)

    async def agent(self, agent_id: str) -> None:
        headers = user_headers(agent_id, "agent")
        await asyncio.sleep(self.random.uniform(0, POLL_S))
        while not self.stopping:
            try:
                polled = await self._call(
                    self.router, "GET", f"/v1/agents/{agent_id}/offers", headers=headers
                )
                offers = polled.json() if polled.status == 200 else []
            except (*CALL_ERRORS, ValueError):
                self._count("poll_error")
                offers = []
            for offer in offers:
                if self.stopping:  # the client closes soon: start nothing new on it
                    break
                # An offer stays pending until the accept commits: a poll while the accept
                # is on its way must not answer it twice.
                if offer["id"] not in self.answered:
                    self.answered.add(offer["id"])
                    task = self._spawn(self._handle(headers, agent_id, offer))
                    self.handling.add(task)
                    task.add_done_callback(self.handling.discard)
            await asyncio.sleep(POLL_S)

    async def _handle(self, headers: dict[str, str], agent_id: str, offer: dict[str, Any]) -> None:
        ticket = offer["ticket_id"]

        async def ok(path: str, json: object, what: str) -> bool:
            response = await self._call(self.router, "POST", path, json, headers=headers)
            if response.status == 200:
                self._count(what)
                return True
            self._count(f"{what}_{response.status}")
            return False

        try:
            if not await ok(f"/v1/offers/{offer['id']}/accept", None, "accept"):
                return
            await asyncio.sleep(self.reply_after_s())
            reply = {"agent_id": agent_id, "text": "Thanks, we are on it. 我们正在处理。"}
            if not await ok(f"/v1/tickets/{ticket}/reply", reply, "reply"):
                return
            await asyncio.sleep(self.random.uniform(*RESOLVE_THINK_S))
            body = {"resolution_code": "solved", "first_contact_resolution": True}
            started = time.time()
            if await ok(f"/v1/tickets/{ticket}/resolve", body, "resolve"):
                self.resolved_at.setdefault(ticket, started)
        except CALL_ERRORS as error:
            self._count(f"agent_{type(error).__name__}")

    async def customers(self) -> None:
        while not self.stopping:
            url = await self.tail.surveys.get()
            if not self.stopping:
                self._spawn(self._answer(url))

    async def _survey_client(self, url: str) -> tuple[RawHttpClient, str]:
        parts = urlsplit(url)
        where = (parts.hostname or "127.0.0.1", parts.port or 80)
        client = self.survey_clients.get(where)
        if client is None:
            client = RawHttpClient(*where, connections=ANSWERS_IN_FLIGHT)
            self.survey_clients[where] = await client.__aenter__()
        return client, parts.path + (f"?{parts.query}" if parts.query else "")

    async def _answer(self, url: str) -> None:
        await asyncio.sleep(self.random.uniform(*ANSWER_THINK_S))
        draw = self.random.random()
        if draw < 0.55:
            answer: dict[str, Any] = {"csat": 5, "nps": self.random.choice([9, 10])}
            answer |= {"solved_first_contact": True, "comment": "Very quick, thank you! 很快"}
            kind = "promoter"
        elif draw < 0.8:
            answer = {"csat": 4, "nps": self.random.choice([7, 8]), "solved_first_contact": True}
            kind = "passive"
        else:
            answer = {"csat": self.random.choice([1, 2]), "nps": self.random.randint(0, 6)}
            answer |= {"solved_first_contact": False, "comment": "Still broken. 还是不行"}
            kind = "detractor"
        try:
            async with self.answering:
                client, path = await self._survey_client(url)
                response = await self._call(
                    client, "POST", path, answer, headers={"Accept": "application/json"}
                )
        except CALL_ERRORS as error:
            self._count(f"answer_{type(error).__name__}")
            return
        self._count(f"answer_{kind}" if response.status == 200 else f"answer_{kind}_"
                    f"{response.status}")  # fmt: skip


# --- setting up ---------------------------------------------------------------------------


async def _prepare(run: str) -> str:
    suffix = f".e2e-{run}"
    for service in SERVICES:
        await recreate_database_async(f"bench_e2e_{service}")
    await recreate_database_async("bench_e2e_ceiling")
    await start_groups_at_end(suffix)
    return suffix


def _start_services(suffix: str) -> dict[str, Server]:
    common = {"KAFKA_BOOTSTRAP": KAFKA, "CONSUMER_GROUP_SUFFIX": suffix, "LOG_LEVEL": "WARNING"}
    extra = {
        "intake": {},  # its rate limits are shared across workers (no INTAKE_WORKERS)
        "router": {},
        "sla": {},
        "feedback": {
            **{f"SURVEY_DELAY_{c}_S": "0" for c in ("PHONE", "EMAIL", "CHAT", "SOCIAL")},
            "CUSTOMER_QUIET_DAYS": "0",
            "REMINDER_AFTER_S": "0",
            "SCHEDULER_INTERVAL_S": SURVEY_TICK_S,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{PORTS['feedback']}",
        },
    }
    servers: dict[str, Server] = {}
    try:
        for service in SERVICES:
            prefix = service.upper() + "_"
            env = {prefix + k: v for k, v in (common | extra[service]).items()}
            env[prefix + "DATABASE_URL"] = socket_database_url(f"bench_e2e_{service}")
            workers = INTAKE_WORKERS if service == "intake" else 1
            servers[service] = start_uvicorn(
                f"e2e-{service}",
                f"{service}.app:create_app",
                PORTS[service],
                workers,
                env,
                "/readyz",
            )
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


async def _setup() -> str:
    headers = user_headers("bench-supervisor", "supervisor")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{PORTS['sla']}", timeout=30, headers=headers
    ) as c:
        created = await c.post("/v1/policies", json=SLA_POLICY)
        if created.status_code != 201:
            raise RuntimeError(f"SLA policy not created: {created.status_code} {created.text}")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{PORTS['router']}", timeout=30, headers=headers
    ) as c:
        for n in range(AGENTS):
            agent = f"agent-{n:03d}"
            skills = {SKILLS[n % len(SKILLS)]: 1 + n % 5, SKILLS[(n + 2) % len(SKILLS)]: 3}
            body = {
                "name": agent,
                "skills": skills,
                "capacity": {"phone": 5, "chat": 20, "email": 20, "social": 20},
            }
            (await c.put(f"/v1/agents/{agent}", json=body)).raise_for_status()
            status = await c.put(f"/v1/agents/{agent}/status", json={"status": "available"})
            status.raise_for_status()
    return await create_bench_key("bench_e2e_intake", "bench-e2e")


# --- load ---------------------------------------------------------------------------------


async def _open_loop(
    url: str, key: str, contacts: Contacts, rate: float, seconds: float
) -> dict[str, Any]:
    """POST contacts at a fixed rate; each 202's contact id with when its POST was sent."""
    sent: dict[str, float] = {}
    new_threads: set[str] = set()
    took: list[float] = []
    statuses: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {key}"}
    host, port = url.removeprefix("http://").rsplit(":", 1)
    async with RawHttpClient(host, int(port), headers=headers, connections=256) as c:

        async def post(n: int) -> None:
            started = time.time()
            body = contacts.next(n)
            new = contacts.last_was_new
            try:
                response = await c.post("/v1/contacts", body)
            except (OSError, asyncio.IncompleteReadError) as error:
                statuses[type(error).__name__] = statuses.get(type(error).__name__, 0) + 1
                return
            took.append(time.time() - started)
            code = str(response.status)
            statuses[code] = statuses.get(code, 0) + 1
            if response.status == 202:
                contact_id = response.json()["id"]
                sent[contact_id] = started
                if new:
                    new_threads.add(contact_id)

        tasks = []
        t0 = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = t0 + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(n)))
        posted_s = time.perf_counter() - t0
        await asyncio.gather(*tasks)
    return {
        "sent": sent,
        "new_threads": new_threads,
        "took": took,
        "statuses": statuses,
        "posting_s": posted_s,
    }


async def _closed_loop(url: str, key: str, contacts: Contacts, seconds: float) -> float:
    """As many POSTs as 64 concurrent clients get answered: 2xx per second."""
    ok = 0
    counter = iter(range(10**9))
    headers = {"Authorization": f"Bearer {key}"}
    host, port = url.removeprefix("http://").rsplit(":", 1)
    async with RawHttpClient(host, int(port), headers=headers, connections=64) as c:
        end = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal ok
            while time.perf_counter() < end:
                with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                    response = await c.post("/v1/contacts", contacts.next(next(counter)))
                    ok += 200 <= response.status < 300

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(64)))
        return ok / (time.perf_counter() - started)


async def _pg_commits() -> int:
    conn = await asyncpg.connect(database_url("postgres").replace("+asyncpg", ""))
    try:
        return int(
            await conn.fetchval(
                "SELECT sum(xact_commit) FROM pg_stat_database WHERE datname LIKE 'bench_e2e_%'"
            )
        )
    finally:
        await conn.close()


async def _loop_lag(into: list[float]) -> None:
    """How late this process's event loop wakes a 50 ms sleep: when the load generator itself is
    short of CPU, every time it measures is late by about this much."""
    while True:
        began = time.perf_counter()
        await asyncio.sleep(0.05)
        into.append(time.perf_counter() - began - 0.05)


async def _sample_pg_waits(into: dict[str, int]) -> None:
    """What the services' PostgreSQL sessions are doing, sampled twice a second: active or
    waiting (and on what), per database. Tells where latency goes when CPU is not the limit."""
    conn = await asyncpg.connect(database_url("postgres").replace("+asyncpg", ""))
    try:
        while True:
            rows = await conn.fetch(
                "SELECT datname, state, wait_event_type, wait_event FROM pg_stat_activity "
                "WHERE datname LIKE 'bench_e2e_%' AND state <> 'idle'"
            )
            for r in rows:
                what = f"{r['datname'].removeprefix('bench_e2e_')}: {r['state']}"
                if r["wait_event_type"]:
                    what += f", waiting on {r['wait_event_type']}:{r['wait_event']}"
                into[what] = into.get(what, 0) + 1
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


class Role:
    """One process of the load (bench/e2e_roles.py), spoken to in JSON lines. Its stdout is
    read all the time (a pipe nobody reads fills up and blocks the writer's event loop): the
    answers are queued, any other line goes to its log."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Any) -> None:
        self.name = name
        self.process = process
        self.log = log
        self.answers: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.pump = asyncio.create_task(self._pump())

    @classmethod
    async def start(cls, name: str) -> Role:
        log = (RESULTS / f"e2e-load-{name}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.e2e_roles",
            name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            limit=2**28,
        )
        return cls(name, process, log)

    async def _pump(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                if line.startswith(b"@@"):
                    self.answers.put_nowait(orjson.loads(line[2:]))
                else:
                    self.log.write(line)
        finally:
            self.answers.put_nowait(None)

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(command) + b"\n")

    async def answer(self) -> dict[str, Any]:
        message = await self.answers.get()
        if message is None:
            self.answers.put_nowait(None)
            raise RuntimeError(
                f"the load's {self.name} process ended: see bench/results/e2e-load-{self.name}.log"
            )
        return message

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        self.send(command)
        return await self.answer()

    async def finish(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 10)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        await asyncio.gather(self.pump, return_exceptions=True)
        self.log.close()


async def _drive(servers: dict[str, Server], key: str, seconds: int, run: str) -> dict[str, Any]:
    """The load from three processes: the contact poster, the people (agents and customers),
    the tail timing events. This process only starts, stops and samples."""
    roles = {name: await Role.start(name) for name in ("tail", "people", "poster")}
    try:
        return await _drive_roles(roles, servers, key, seconds, run)
    finally:
        for role in roles.values():
            await role.finish()


async def _drive_roles(
    roles: dict[str, Role], servers: dict[str, Server], key: str, seconds: int, run: str
) -> dict[str, Any]:
    tail, people, poster = roles["tail"], roles["people"], roles["poster"]
    start_offsets = (await tail.answer())["start_offsets"]
    await poster.answer()
    pg_waits: dict[str, int] = {}
    sampler = asyncio.create_task(_sample_pg_waits(pg_waits))
    loop_lag: list[float] = []
    lag_monitor = asyncio.create_task(_loop_lag(loop_lag))
    cpu0 = {name: s.cpu_seconds() for name, s in servers.items()}
    commits0 = await _pg_commits()
    began = time.time()
    try:
        tail.send({"cmd": "go", "policy": SLA_POLICY})
        await people.ask(
            {
                "cmd": "go",
                "router_url": f"http://127.0.0.1:{PORTS['router']}",
                "scenario": SCENARIO,
                "agents": AGENTS,
            }
        )
        posted = await poster.ask(
            {
                "cmd": "go",
                "url": f"http://127.0.0.1:{PORTS['intake']}",
                "key": key,
                "run": run,
                "rate": RATE,
                "seconds": seconds,
            }
        )
        load = posted["result"]
        # Let what was posted reach its agents, resolutions their surveys, and answers in.
        deadline = time.time() + DRAIN_S
        watch: dict[str, Any] = {"cmd": "status", "contacts": list(load["sent"])}
        while time.time() < deadline:
            await asyncio.sleep(0.5)
            unassigned = (await tail.ask(watch))["unassigned"]
            watch = {"cmd": "status"}
            if unassigned == 0 and (await people.ask({"cmd": "status"}))["in_progress"] == 0:
                break
        elapsed = time.time() - began
        cpu = {name: s.cpu_seconds() - cpu0[name] for name, s in servers.items()}
        rss = {name: s.rss_mb() for name, s in servers.items()}
        commits = await _pg_commits() - commits0
    finally:
        sampler.cancel()
        lag_monitor.cancel()
        await asyncio.gather(sampler, lag_monitor, return_exceptions=True)
    crowd = await people.ask({"cmd": "stop"})
    events = await tail.ask({"cmd": "stop"})
    health = {"poster": posted["health"], "people": crowd["health"], "tail": events["health"]}
    tail_data = SimpleNamespace(**events["result"])
    tail_data.start_offsets = {TopicPartition(t, p): o for t, p, o in start_offsets}
    return {
        "load": load,
        "tail": tail_data,
        "people": SimpleNamespace(**crowd["result"]),
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "rss_mb": rss,
        "pg_commits": commits,
        "load_health": health,
        "driver_loop_lag": loop_lag,
        "pg_sessions_sampled": dict(sorted(pg_waits.items(), key=lambda kv: -kv[1])),
    }


# --- ceilings -----------------------------------------------------------------------------


async def _noop_consumer(start_offsets: dict[TopicPartition, int]) -> dict[str, float]:
    """Reads this run's messages of intake.contacts and does nothing with them."""
    tps = {tp: o for tp, o in start_offsets.items() if tp.topic == topic(INTAKE_CONTACTS)}
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(tps))
        ends = await consumer.end_offsets(list(tps))
        for tp, offset in tps.items():
            consumer.seek(tp, offset)
        total = sum(ends[tp] - o for tp, o in tps.items())
        read, cpu0, started = 0, time.process_time(), time.perf_counter()
        while read < total and time.perf_counter() - started < 120:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            read += sum(len(records) for records in batch.values())
        seconds = time.perf_counter() - started
        return {
            "messages": read,
            "per_s": read / seconds if seconds else 0.0,
            "cpu_s_per_1k": 1000 * (time.process_time() - cpu0) / max(1, read),
        }
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def _bare_inserts(seconds: float) -> dict[str, float]:
    """Single-row INSERTs, each its own committed transaction, from one connection."""
    conn = await asyncpg.connect(socket_database_url("bench_e2e_ceiling").replace("+asyncpg", ""))
    try:
        await conn.execute(
            "CREATE TABLE rows (id uuid PRIMARY KEY, at timestamptz NOT NULL, body jsonb)"
        )
        insert = await conn.prepare("INSERT INTO rows VALUES ($1, now(), $2)")
        took: list[float] = []
        end = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < end:
            t = time.perf_counter()
            await insert.fetch(uuid.uuid4(), '{"event": "contact.received"}')
            took.append(time.perf_counter() - t)
        return {
            "rows": len(took),
            "per_s": len(took) / (time.perf_counter() - started),
            "p50_s": _pct(took, 0.5) or 0.0,
            "p99_s": _pct(took, 0.99) or 0.0,
        }
    finally:
        await conn.close()


async def _ceilings(start_offsets: dict[TopicPartition, int], seconds: int) -> dict[str, Any]:
    ceiling = start_uvicorn(
        "e2e-ceiling",
        "bench.ceiling_app:create_app",
        PORTS["ceiling"],
        INTAKE_WORKERS,
        {},
        "/docs",
    )
    try:
        url = f"http://127.0.0.1:{PORTS['ceiling']}"
        contacts = Contacts(uuid.uuid4().hex[:6])
        cpu0 = ceiling.cpu_seconds()
        same = await _open_loop(url, "none", contacts, RATE, min(seconds, 15))
        cpu = ceiling.cpu_seconds() - cpu0
        flat_out = await _closed_loop(url, "none", contacts, CEILING_S)
        http = {
            "same_rate_took": same["took"],
            "same_rate_statuses": same["statuses"],
            "cpu_s_per_1k": 1000 * cpu / max(1, len(same["took"])),
            "rss_mb": ceiling.rss_mb(),
            "max_per_s": flat_out,
        }
    finally:
        ceiling.stop()
    return {
        "http": http,
        "kafka": await _noop_consumer(start_offsets),
        "pg": await _bare_inserts(CEILING_S),
    }


# --- results ------------------------------------------------------------------------------


def _sum_ms(*parts: dict[str, Any], key: str) -> float | None:
    values: list[float | None] = [p.get(key) for p in parts]
    present = [v for v in values if v is not None]
    return None if len(present) < len(values) else round(sum(present), 1)


def unhealthy_roles(health: dict[str, dict[str, Any]]) -> list[str]:
    """Why the run is invalid: each process of the load whose event loop woke more than
    LAG_LIMIT_MS late at p99 (or that measured nothing), since its timings measure itself."""
    return [
        f"{role}: event loop late by {h['loop_lag']['p99_ms']} ms at p99 (limit "
        f"{LAG_LIMIT_MS:g} ms)"
        for role, h in health.items()
        if h["loop_lag"]["p99_ms"] is None or h["loop_lag"]["p99_ms"] > LAG_LIMIT_MS
    ]


def _figures(run: dict[str, Any], ceilings: dict[str, Any], intake_max: float) -> dict[str, Any]:
    load, tail, people = run["load"], run["tail"], run["people"]
    sent: dict[str, float] = load["sent"]
    posting_s = load["posting_s"]
    accepted = len(sent)
    to_assignment = [
        tail.assigned_at[tail.ticket_of_contact[c]] - t
        for c, t in sent.items()
        if tail.ticket_of_contact.get(c) in tail.assigned_at
    ]
    opened = sum(1 for c in sent if c in tail.ticket_of_contact)
    # A new thread's contact should open a ticket and have it assigned before the run ends.
    not_assigned = sum(
        1 for c in load["new_threads"] if tail.ticket_of_contact.get(c) not in tail.assigned_at
    )
    to_survey = [
        tail.survey_at[t] - at for t, at in people.resolved_at.items() if t in tail.survey_at
    ]
    no_survey = sum(1 for t in people.resolved_at if t not in tail.survey_at)
    to_resolved_event = [
        tail.resolved_on_kafka[t] - at
        for t, at in people.resolved_at.items()
        if t in tail.resolved_on_kafka
    ]
    assigned_in_run = len(tail.assigned_at)
    http_floor = _ms(ceilings["http"]["same_rate_took"])
    hop = _ms(tail.delivery_s)
    commit = {
        "p50_ms": round(1000 * ceilings["pg"]["p50_s"], 2),
        "p99_ms": round(1000 * ceilings["pg"]["p99_s"], 2),
    }
    floors = {
        "post_to_assignment": {
            k: _sum_ms(http_floor, hop, hop, commit, commit, key=k) for k in ("p50_ms", "p99_ms")
        },
        "resolution_to_survey": {
            k: _sum_ms(hop, hop, commit, commit, key=k) for k in ("p50_ms", "p99_ms")
        },
        "sla_firing_lag": {k: _sum_ms(hop, commit, key=k) for k in ("p50_ms", "p99_ms")},
    }
    elapsed = run["elapsed_s"]
    per_1k = {s: 1000 * cpu / max(1, accepted) for s, cpu in run["cpu_s"].items()}
    health = run["load_health"]
    unhealthy = unhealthy_roles(health)
    # The CPU of a contact's whole lifecycle (all four services, per contact accepted), against
    # what the bare FastAPI endpoint spends on one request in the same run.
    bare_per_request = ceilings["http"]["cpu_s_per_1k"] / 1000
    per_contact = {s: v / 1000 for s, v in per_1k.items()}
    total = sum(per_contact.values())
    lifecycle = {
        "cpu_ms_per_contact": {s: round(1000 * v, 2) for s, v in per_contact.items()},
        "cpu_ms_per_contact_total": round(1000 * total, 2),
        "bare_endpoint_cpu_ms_per_request": round(1000 * bare_per_request, 3),
        "ratio_to_bare_endpoint": round(total / bare_per_request, 1) if bare_per_request else None,
        "ratio_per_service": {
            s: round(v / bare_per_request, 1) if bare_per_request else None
            for s, v in per_contact.items()
        },
        "goal_ratio": 10,
        # Only a whole lifecycle counts: when the services end the window with a backlog (fewer
        # tickets resolved than contacts starting one), the CPU per contact understates it.
        "lifecycles_completed_share": round(
            len(people.resolved_at) / max(1, len(load["new_threads"])), 3
        ),
    }
    on_kafka = _ms(
        [tail.contact_on_kafka[c] - t for c, t in sent.items() if c in tail.contact_on_kafka]
    )
    # The relay horizon's effect: POST → the contact on Kafka (intake's commit, its relay, one
    # hop) against one no-op hop of the same run.
    relay: dict[str, Any] = {
        "post_to_contact_on_kafka": on_kafka,
        "noop_hop": hop,
        "ratio_p50": _ratio(on_kafka["p50_ms"], hop["p50_ms"]),
        "ratio_p99": _ratio(on_kafka["p99_ms"], hop["p99_ms"]),
        "goal_ratio_p99": 3,
    }
    all_firings = list(tail.breach_lag_s) + list(tail.warning_lag_s)
    tickets = set(tail.assigned_at)
    breached = set(tail.tickets_by_sla_outcome["breached"]) & tickets
    warned = (set(tail.tickets_by_sla_outcome["warned"]) & tickets) - breached
    sla_outcomes = {
        "tickets_assigned": len(tickets),
        "met_share": round(1 - len(breached | warned) / max(1, len(tickets)), 3),
        "warned_not_breached_share": round(len(warned) / max(1, len(tickets)), 3),
        "breached_share": round(len(breached) / max(1, len(tickets)), 3),
    }
    new_assigned = len(load["new_threads"]) - not_assigned
    post_floor = floors["post_to_assignment"]["p99_ms"]
    survey_floor = floors["resolution_to_survey"]["p99_ms"]
    post_p99 = _ms(to_assignment, not_assigned)["p99_ms"]
    survey_p99 = _ms(to_survey, no_survey)["p99_ms"]
    firing_p99 = _ms(all_firings)["p99_ms"]
    targets = {
        "assigned_share_of_offered": {
            "value": round(new_assigned / max(1, len(load["new_threads"])), 3),
            "goal": ">= 0.95",
            "what": "contacts starting a thread (each opens a ticket) whose ticket was assigned",
        },
        "post_to_assigned_p99_over_floor": {
            "value": _round(_ratio(post_p99, post_floor)),
            "goal": "<= 3",
        },
        "resolve_to_survey_p99_over_floor": {
            "value": _round(_ratio(survey_p99, survey_floor)),
            "goal": "<= 3",
        },
        "sla_firing_lag_p99_s": {
            "value": None if firing_p99 is None else round(firing_p99 / 1000, 3),
            "goal": "< 1",
            "what": "warnings and breaches, from when each was due",
        },
        "relay_post_to_kafka_p99_over_noop_hop": {
            "value": _round(relay["ratio_p99"]),
            "goal": "<= 3",
        },
        "lifecycle_cpu_over_bare_endpoint": {
            "value": lifecycle["ratio_to_bare_endpoint"],
            "goal": "<= 10",
        },
    }
    return {
        "offered_per_s": RATE,
        "posted": sum(load["statuses"].values()),
        "post_statuses": load["statuses"],
        "accepted": accepted,
        "accepted_per_s": accepted / posting_s,
        "intake_max_per_s": intake_max,
        "post_http": _ms(load["took"]),
        "tickets_opened_from_posts": opened,
        "tickets_assigned": assigned_in_run,
        "assigned_per_s": assigned_in_run / elapsed,
        "new_threads_posted": len(load["new_threads"]),
        "post_to_assignment": _ms(to_assignment, not_assigned),
        "post_to_contact_on_kafka": on_kafka,
        "resolved": len(people.resolved_at),
        "resolution_to_survey": _ms(to_survey, no_survey),
        "resolution_to_resolved_event": _ms(to_resolved_event),
        "sla_firing_lag": _ms(tail.breach_lag_s),
        "events": dict(sorted(tail.counts.items())),
        "people": dict(sorted(people.counts.items())),
        "pg_commits_per_s": run["pg_commits"] / elapsed,
        "cpu_s": {s: round(v, 2) for s, v in run["cpu_s"].items()},
        "cpu_share_of_a_core": {s: round(v / elapsed, 3) for s, v in run["cpu_s"].items()},
        "cpu_s_per_1k_contacts": {s: round(v, 3) for s, v in per_1k.items()},
        "rss_mb": {s: round(v, 1) for s, v in run["rss_mb"].items()},
        "load_generator": health,
        "driver_loop_lag": _ms(run["driver_loop_lag"]),
        "valid": not unhealthy,
        "invalid_because": unhealthy,
        "sla_outcomes": sla_outcomes,
        "sla_warning_lag": _ms(tail.warning_lag_s),
        "sla_firing_lag_all": _ms(all_firings),
        "lifecycle_cpu": lifecycle,
        "relay_horizon": relay,
        "targets": targets,
        "pg_sessions_sampled_every_0_5_s": run["pg_sessions_sampled"],
        "measured_s": round(elapsed, 1),
        "ceilings": {
            "http_bare_endpoint": {
                "same_rate": _ms(ceilings["http"]["same_rate_took"]),
                "max_per_s": round(ceilings["http"]["max_per_s"], 1),
                "cpu_s_per_1k": round(ceilings["http"]["cpu_s_per_1k"], 3),
                "rss_mb": round(ceilings["http"]["rss_mb"], 1),
            },
            "kafka_noop_consumer": {
                "messages": ceilings["kafka"]["messages"],
                "per_s": round(ceilings["kafka"]["per_s"], 1),
                "cpu_s_per_1k": round(ceilings["kafka"]["cpu_s_per_1k"], 3),
                "delivery": hop,
            },
            "pg_bare_insert": {
                "rows": ceilings["pg"]["rows"],
                "per_s": round(ceilings["pg"]["per_s"], 1),
                **commit,
            },
        },
        "floors": floors,
    }


def _rows(f: dict[str, Any]) -> list[tuple[str, float | None, float | None, str, str]]:
    """(measure, value, ceiling or floor, unit, what the ceiling is)."""
    c = f["ceilings"]
    rows: list[tuple[str, float | None, float | None, str, str]] = [
        (
            f"contacts accepted/s (offered {f['offered_per_s']:g}/s)",
            f["accepted_per_s"],
            c["http_bare_endpoint"]["max_per_s"],
            "/s",
            "bare endpoint, flat out",
        ),
        (
            "intake flat out, accepted/s",
            f["intake_max_per_s"],
            c["http_bare_endpoint"]["max_per_s"],
            "/s",
            "bare endpoint, flat out",
        ),
        (
            "tickets assigned/s",
            f["assigned_per_s"],
            c["kafka_noop_consumer"]["per_s"],
            "/s",
            "no-op consumer, intake.contacts",
        ),
        (
            "PostgreSQL commits/s (4 services)",
            f["pg_commits_per_s"],
            c["pg_bare_insert"]["per_s"],
            "/s",
            "bare INSERT+commit, 1 conn",
        ),
    ]
    for label, key, floor_key, what in (
        ("POST /v1/contacts", "post_http", None, "bare endpoint, same rate"),
        ("post→assignment", "post_to_assignment", "post_to_assignment", "HTTP+2 hops+2 commits"),
        ("resolution→survey sent", "resolution_to_survey", "resolution_to_survey",
         "2 hops+2 commits"),
        ("SLA firing lag", "sla_firing_lag", "sla_firing_lag", "1 hop+1 commit"),
    ):  # fmt: skip
        floor = f["floors"][floor_key] if floor_key else c["http_bare_endpoint"]["same_rate"]
        for p in ("p50", "p99"):
            rows.append((f"{label} {p}", f[key][f"{p}_ms"], floor[f"{p}_ms"], "ms", what))
    for service in SERVICES:
        noop = service != "intake"
        rows.append(
            (
                f"{service} CPU s/1k contacts",
                f["cpu_s_per_1k_contacts"][service],
                c["kafka_noop_consumer" if noop else "http_bare_endpoint"]["cpu_s_per_1k"],
                "s",
                "no-op consumer, per 1k msgs" if noop else "bare endpoint, per 1k reqs",
            )
        )
    for service in SERVICES:
        rows.append(
            (
                f"{service} RSS",
                f["rss_mb"][service],
                c["http_bare_endpoint"]["rss_mb"],
                "MB",
                "bare FastAPI process",
            )
        )
    return rows


def _ratio(value: float | None, ceiling: float | None) -> float | None:
    if value is None or not ceiling:
        return None
    return value / ceiling


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _print(f: dict[str, Any], seconds: int) -> None:
    def num(x: float | None) -> str:
        if x is None:
            return "—"
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.3g}" if abs(x) < 1 else f"{x:,.1f}"

    print(
        f"\nend-to-end benchmark: {f['offered_per_s']:g} contacts/s offered for {seconds} s, "
        f"{AGENTS} agents, {THREAD_SHARE:.0%} follow-ups in a thread; measured over "
        f"{f['measured_s']} s (load + drain)"
    )
    header = f"{'measure':<42}{'value':>10}{'ceiling':>10}{'ratio':>9}  ceiling is"
    print(header)
    print("-" * (len(header) + 24))
    for label, value, ceiling, unit, what in _rows(f):
        ratio = _ratio(value, ceiling)
        if ratio is None:
            shown = "—"
        elif unit == "/s":
            shown = f"{ratio:.0%}"
        else:
            shown = f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.1f}×"
        print(
            f"{label + ' (' + unit + ')':<42}{num(value):>10}{num(ceiling):>10}{shown:>9}  {what}"
        )
    print(
        f"accepted {f['accepted']} (statuses {f['post_statuses']}), {f['new_threads_posted']} "
        f"starting a thread; tickets opened by posts {f['tickets_opened_from_posts']}, "
        f"assigned {f['tickets_assigned']}, resolved "
        f"{f['resolved']}, surveys {f['resolution_to_survey']['n']}, SLA breaches "
        f"{f['sla_firing_lag']['n']}"
    )
    for name, key in (
        ("post→assignment", "post_to_assignment"),
        ("resolution→survey sent", "resolution_to_survey"),
    ):
        if f[key]["missing"]:
            print(
                f"{name}: {f[key]['missing']} of {f[key]['n'] + f[key]['missing']} had not "
                "happened when the run ended (ranked last; a percentile among them shows —)"
            )
    print(f"events seen: {f['events']}")
    print(f"agents and customers: {f['people']}")
    for role, h in f["load_generator"].items():
        lag = h["loop_lag"]
        print(
            f"load generator, {role} process: {h['cpu_s']} CPU s, event loop late by p50 "
            f"{lag['p50_ms']} ms, p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms"
        )
    if not f["valid"]:
        print("INVALID RUN: " + "; ".join(f["invalid_because"]) + " (its timings are inflated)")
    life = f["lifecycle_cpu"]
    print(
        f"lifecycle CPU per contact: {life['cpu_ms_per_contact_total']} ms "
        f"({life['cpu_ms_per_contact']}), {life['ratio_to_bare_endpoint']}× the bare endpoint's "
        f"{life['bare_endpoint_cpu_ms_per_request']} ms per request (goal ≤ 10×)"
    )
    if life["lifecycles_completed_share"] < 0.95:
        print(
            f"  only {life['lifecycles_completed_share']:.0%} of the contacts starting a ticket "
            "saw it resolved in the window: the services ended with a backlog, so the CPU per "
            "contact understates a whole lifecycle's"
        )
    relay = f["relay_horizon"]
    print(
        f"relay: POST→contact on Kafka p50 {relay['post_to_contact_on_kafka']['p50_ms']} ms, p99 "
        f"{relay['post_to_contact_on_kafka']['p99_ms']} ms; no-op hop p50 "
        f"{relay['noop_hop']['p50_ms']} ms, p99 {relay['noop_hop']['p99_ms']} ms"
    )
    print(f"SLA outcomes per assigned ticket: {f['sla_outcomes']}")
    print("targets:")
    for name, t in f["targets"].items():
        print(f"  {name}: {t['value']} (goal {t['goal']})")
    top = list(f["pg_sessions_sampled_every_0_5_s"].items())[:6]
    print("PostgreSQL sessions (samples): " + "; ".join(f"{k} ×{v}" for k, v in top))
    print(f"CPU share of one core: {f['cpu_share_of_a_core']}")


def _chart(f: dict[str, Any], path: Path, seconds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(f)
    fig, axes = plt.subplots(1, 3, figsize=(17, 6.5), gridspec_kw={"width_ratios": [1, 1.4, 1]})
    fig.suptitle(
        f"End-to-end benchmark — {f['offered_per_s']:g} contacts/s offered for {seconds} s, "
        f"{AGENTS} agents, scenario {f.get('settings', {}).get('scenario', '?')} "
        f"(commit {f.get('commit', '?')}, {f.get('at', '')})"
        + ("" if f.get("valid", True) else " — INVALID: the load generator lagged"),
        fontsize=12,
    )

    throughput = [r for r in rows if r[3] == "/s"]
    ax = axes[0]
    ratios = [100 * (_ratio(r[1], r[2]) or 0) for r in throughput]
    ax.barh([r[0] for r in throughput], ratios, color="#4C72B0")
    for y, (r, pct) in enumerate(zip(throughput, ratios, strict=True)):
        ax.text(pct, y, f" {r[1]:,.0f} of {r[2]:,.0f}/s", va="center", fontsize=8)
    ax.set_xlim(0, max(110, max(ratios) * 1.6))
    ax.invert_yaxis()
    ax.set_xlabel("% of the ceiling measured in the same run")
    ax.set_title("Throughput vs ceiling")

    latency = [r for r in rows if r[3] == "ms"]
    ax = axes[1]
    ys = list(range(len(latency)))
    ax.barh([y - 0.2 for y in ys], [r[1] or 0 for r in latency], 0.4, label="measured")
    ax.barh([y + 0.2 for y in ys], [r[2] or 0 for r in latency], 0.4, label="floor (bare hops)")
    for y, r in zip(ys, latency, strict=True):
        if r[1] is None:
            ax.text(1, y - 0.2, " not reached by the end of the run", va="center", fontsize=7)
    ax.set_yticks(ys, [r[0] for r in latency], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(left=1)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_title("Latency p50/p99 vs the bare hops")
    ax.legend(loc="lower right", fontsize=8)

    ax = axes[2]
    xs = list(range(len(SERVICES)))
    cpu = [100 * f["cpu_share_of_a_core"][s] for s in SERVICES]
    rss = [f["rss_mb"][s] for s in SERVICES]
    ax.bar([x - 0.2 for x in xs], cpu, 0.4, label="CPU, % of one core", color="#DD8452")
    ax.set_ylabel("CPU, % of one core")
    ax.set_xticks(xs, SERVICES)
    twin = ax.twinx()
    twin.bar([x + 0.2 for x in xs], rss, 0.4, label="RSS MB", color="#55A868")
    twin.axhline(f["ceilings"]["http_bare_endpoint"]["rss_mb"], color="#55A868", ls="--", lw=1)
    twin.set_ylabel("RSS MB (dashed: a bare FastAPI process)")
    ax.set_title("CPU and memory per service")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, ["CPU", "RSS"], loc="upper left", fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def _run(seconds: int) -> tuple[dict[str, Any], dict[str, Any], float]:
    run = uuid.uuid4().hex[:6]
    suffix = await _prepare(run)
    servers = await asyncio.to_thread(_start_services, suffix)
    try:
        key = await _setup()
        measured = await _drive(servers, key, seconds, run)
        intake_max = await _closed_loop(
            f"http://127.0.0.1:{PORTS['intake']}", key, Contacts(run + "m"), CEILING_S
        )
    finally:
        for server in servers.values():
            await asyncio.to_thread(server.stop)
    ceilings = await _ceilings(measured["tail"].start_offsets, seconds)
    return measured, ceilings, intake_max


def main(duration: int | None = None) -> None:
    seconds = duration or int(os.environ.get("BENCH_E2E_SECONDS", "60"))
    measured, ceilings, intake_max = asyncio.run(_run(seconds))
    figures = _figures(measured, ceilings, intake_max)
    result = {
        "load_generator": (
            f"three processes on this machine (contacts: the raw HTTP/1.1 client of "
            f"bench/loadgen.py, for the agents and customers too; the tail consumer alone), "
            f"scenario {SCENARIO}: {RATE:g} contacts/s open loop for "
            f"{seconds} s ({THREAD_SHARE:.0%} continuing a thread), {AGENTS} agents polling "
            f"every {POLL_S:g} s, customers answering every survey; {DRAIN_S:g} s drain"
        ),
        "settings": {
            "seconds": seconds,
            "rate": RATE,
            "agents": AGENTS,
            "thread_share": THREAD_SHARE,
            "intake_workers": INTAKE_WORKERS,
            "survey_scheduler_tick_s": float(SURVEY_TICK_S),
            "sla_policy": SLA_POLICY,
            "scenario": SCENARIO,
            "think_times_s": {
                "reply": SCENARIOS[SCENARIO]["reply_think_s"],
                "resolve": RESOLVE_THINK_S,
                "answer": ANSWER_THINK_S,
            },
        },
        "maxrss_load_generator_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        **figures,
        "table": [
            {
                "measure": label,
                "value": value,
                "ceiling": ceiling,
                "unit": unit,
                "ceiling_is": what,
                "ratio": None
                if _ratio(value, ceiling) is None
                else round(_ratio(value, ceiling) or 0, 3),
            }
            for label, value, ceiling, unit, what in _rows(figures)
        ],
    }
    path = write_result("e2e", result)
    stored = json.loads(path.read_text())
    _print(stored, seconds)
    chart = RESULTS / "e2e.png"
    _chart(stored, chart, seconds)
    print(f"written to {path} and {chart}")
