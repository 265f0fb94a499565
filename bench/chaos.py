"""Fault injection with nothing lost (`make chaos`, `python -m bench chaos`).

Under steady load on all four channels, kill -9 intake, router, sla and feedback in turn, then
the Kafka broker, then PostgreSQL, and bring each back. Meanwhile two agents accept their offers
and resolve their tickets, so surveys are sent; a short SLA policy (for this run's tickets only,
segment `chaos`) makes escalations fire. Afterwards, once the system has settled (bounded),
reconcile every contact intake answered 202 against the services' databases:

- every accepted contact is stored in intake once and placed on exactly one ticket, and intake
  knows that ticket (none lost, none became two tickets, no ticket without a contact);
- no ticket was accepted by two agents (no transfers in this load, so more than one accepted
  offer for a ticket would be two agents holding it), none has two pending offers;
- no SLA escalation level was applied twice to a ticket (router's history, one line per
  metric and level), and none fired twice (sla.fired_timers);
- no survey was sent twice: one survey per ticket, one webhook delivery per survey and
  subscription, and the webhook receiver here saw no two different deliveries for one survey;
- every reply the router accepted (the agents answer each ticket they accept through the
  router's API, `POST /v1/tickets/{id}/reply`, before resolving it; the router stores it and
  publishes `message.outbound` in one transaction) ends `sent` or `failed` in intake, and no
  message id reached the SMTP server (`make run`'s mailbox) or the outbound webhook receiver
  here twice within one attempt: per message, each attempt number at most once and no more
  copies than attempts. How many of them the router's conversation shows settled too
  (intake.deliveries back to the router) is counted, not judged.

Prints the counts, writes them to bench/results/chaos.json and exits non-zero on a violation.
A post that fails during an outage (5xx, timeout, refused connection) is simply not counted as
accepted; a 202 that is then lost is what this looks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.harness import (
    ROOT,
    TOPIC_PREFIX,
    start_groups_at_end,
    supervisor_headers,
    user_headers,
    write_result,
)
from deploy.local.mailbox import list_messages, read_message

STACK = ROOT / "deploy" / "local" / "stack.sh"
SERVICES_SH = ROOT / "deploy" / "local" / "services.sh"
SERVICES = ("intake", "router", "sla", "feedback")
PORTS = {
    "intake": int(os.environ.get("INTAKE_PORT", "8001")),
    "router": int(os.environ.get("ROUTER_PORT", "8002")),
    "sla": int(os.environ.get("SLA_PORT", "8003")),
    "feedback": int(os.environ.get("FEEDBACK_PORT", "8004")),
}
CHANNELS = ("phone", "email", "chat", "social")
SEGMENT = "chaos"
RATE = float(os.environ.get("CHAOS_RATE", "12"))  # contacts per second offered
AGENTS = 2
SETTLE_S = float(os.environ.get("CHAOS_SETTLE_S", "150"))
REPLY_TEXT = "Thank you, your order is on its way. 您的订单已发出。"

# What the services run with for this run: quick outbox relays, surveys due a second after
# resolution, webhook retries after a second.
SERVICE_ENV = {
    "INTAKE_OUTBOX_POLL_INTERVAL_S": "0.2",
    "ROUTER_OUTBOX_POLL_INTERVAL_S": "0.2",
    "ROUTER_ASSIGN_INTERVAL_S": "0.25",
    "FEEDBACK_OUTBOX_POLL_INTERVAL_S": "0.2",
    "FEEDBACK_SCHEDULER_INTERVAL_S": "0.5",
    "FEEDBACK_WEBHOOK_RETRY_BASE_S": "1",
    "FEEDBACK_WEBHOOK_TIMEOUT_S": "3",
    # The run's webhook receiver listens on loopback, which webhooks may not reach otherwise.
    "FEEDBACK_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "INTAKE_OUTBOUND_ALLOW_HOSTS": "127.0.0.1",
    "INTAKE_DELIVERY_RETRY_BASE_S": "1",
    "INTAKE_DELIVERY_TIMEOUT_S": "3",
    **{f"FEEDBACK_SURVEY_DELAY_{c.upper()}_S": "1" for c in CHANNELS},
}

SLA_POLICY = {
    "id": "chaos-run",
    "name": "Chaos run (segment chaos only)",
    "rank": 1,
    "conditions": {"segment": [SEGMENT]},
    "targets": {"first_response": "PT6S", "resolution": "PT30S"},
    "escalation": [
        {"level": 1, "offset": "PT0S", "actions": ["notify_supervisor"]},
        {"level": 2, "offset": "PT3S", "actions": ["notify_manager"]},
    ],
}


# --- contacts -------------------------------------------------------------------------------
def make_contact(run: str, n: int, channel: str | None = None) -> dict[str, Any]:
    """The n-th contact of a run: its own customer and external id, the channel in turn."""
    channel = channel or CHANNELS[n % len(CHANNELS)]
    now = datetime.now(UTC).isoformat()
    tag = f"{run}-{n}"
    base: dict[str, Any] = {
        "channel": channel,
        "received_at": now,
        "text": f"chaos contact {tag}: my order has not arrived, please help",
        "language": "en",
        "metadata": {"segment": SEGMENT, "chaos_run": run},
    }
    if channel == "phone":
        number = f"+86 139 {random.randrange(10**8):08d}"
        base |= {
            "external_id": f"call-{tag}",
            "customer": {"name": f"Caller {tag}", "phone": number},
            "phone": {"caller": number, "call_id": f"c-{tag}", "direction": "inbound"},
        }
    elif channel == "email":
        address = f"c-{tag}@chaos.example"
        base |= {
            "external_id": f"<{tag}@chaos.example>",
            "subject": f"Order {tag}",
            "customer": {"email": address},
            "email": {"message_id": f"<{tag}@chaos.example>", "from": address},
        }
    elif channel == "chat":
        base |= {
            "external_id": f"chat-{tag}",
            "customer": {"email": f"v-{tag}@chaos.example"},
            "chat": {"session_id": f"s-{tag}", "visitor_id": f"v-{tag}"},
        }
    else:
        base |= {
            "external_id": f"wb-{tag}",
            "customer": {"social_handle": f"@chaos_{tag}"},
            "social": {"platform": "weibo", "post_id": f"p-{tag}", "author": f"@chaos_{tag}"},
        }
    return base


@dataclass
class Load:
    """Posts contacts at a steady rate and records every id answered 202."""

    client: httpx.AsyncClient
    key: str
    run: str
    rate: float
    accepted: dict[str, str] = field(default_factory=dict)  # contact id -> external id
    failures: Counter[str] = field(default_factory=Counter)
    posted: int = 0
    accepted_at: list[float] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def post_one(self, n: int) -> None:
        body = make_contact(self.run, n)
        try:
            response = await self.client.post(
                "/v1/contacts",
                json=body,
                headers={"Authorization": f"Bearer {self.key}", "Idempotency-Key": f"k-{n}"},
            )
        except httpx.HTTPError as exc:
            self.failures[type(exc).__name__] += 1
            return
        if response.status_code == 202:
            answer = response.json()
            if answer.get("status") != "accepted":
                self.failures[f"202 {answer.get('status')}"] += 1
            self.accepted[answer["id"]] = body["external_id"]
            self.accepted_at.append(time.monotonic())
        else:
            self.failures[str(response.status_code)] += 1

    async def run_until_stopped(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        start, n = time.monotonic(), 0
        while not self._stop.is_set():
            due = start + n / self.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if len(tasks) < 64:  # a bounded number in flight; beyond it, the post is skipped
                task = asyncio.create_task(self.post_one(n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                self.posted += 1
            else:
                self.failures["skipped (64 in flight)"] += 1
            n += 1
        if tasks:
            await asyncio.gather(*tasks)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Agents:
    """Agents that accept what they are offered and resolve it a little later."""

    client: httpx.AsyncClient
    names: list[str]
    hold_s: float = 2.0
    accepted: int = 0
    resolved: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    held: dict[str, tuple[str, float]] = field(default_factory=dict)  # ticket -> agent, since
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)  # agent -> auth headers
    # What the agent answers each ticket it accepts (through the router's API, before
    # resolving it); None: no replies.
    reply_text: str | None = None
    replied: int = 0
    to_reply: dict[str, str] = field(default_factory=dict)  # ticket -> agent
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _step(self, agent: str) -> None:
        headers = self.tokens.setdefault(agent, user_headers(agent, "agent"))
        offers = await self.client.get(f"/v1/agents/{agent}/offers", headers=headers)
        if offers.status_code == 200:
            for offer in offers.json():
                r = await self.client.post(f"/v1/offers/{offer['id']}/accept", headers=headers)
                if r.status_code == 200:
                    self.accepted += 1
                    self.held[r.json()["id"]] = (agent, time.monotonic())
                    if self.reply_text is not None:
                        self.to_reply[r.json()["id"]] = agent
                else:
                    self.errors[f"accept {r.status_code}"] += 1
        for ticket, holder in list(self.to_reply.items()):
            if holder == agent:
                await self._reply(ticket, headers)
        now = time.monotonic()
        for ticket, (holder, since) in list(self.held.items()):
            if holder != agent or now - since < self.hold_s or ticket in self.to_reply:
                continue
            r = await self.client.post(
                f"/v1/tickets/{ticket}/resolve",
                headers=headers,
                json={"resolution_code": "solved", "first_contact_resolution": True},
            )
            if r.status_code == 200:
                self.resolved += 1
                del self.held[ticket]
            elif r.status_code in (404, 409):
                self.errors[f"resolve {r.status_code}"] += 1
                del self.held[ticket]
            else:
                self.errors[f"resolve {r.status_code}"] += 1

    async def _reply(self, ticket: str, headers: dict[str, str]) -> None:
        """Answers the ticket; tried again at the next step after a 5xx or a lost answer (one
        that was stored after all makes a second reply: another message, reconciled as well).
        A phone ticket's reply is the router's call-back request."""
        r = await self.client.post(
            f"/v1/tickets/{ticket}/reply", headers=headers, json={"text": self.reply_text}
        )
        if r.status_code == 200:
            self.replied += 1
            del self.to_reply[ticket]
        else:
            self.errors[f"reply {r.status_code}"] += 1
            if r.status_code < 500:
                del self.to_reply[ticket]

    async def run_until_stopped(self) -> None:
        while not self._stop.is_set():
            for agent in self.names:
                try:
                    await self._step(agent)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.errors[type(exc).__name__] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=0.5)

    def stop(self) -> None:
        self._stop.set()


# --- webhook receiver -----------------------------------------------------------------------
@dataclass
class WebhookReceiver:
    """A minimal HTTP server that answers 200 and records which survey each delivery is for."""

    deliveries: list[tuple[str | None, str | None]] = field(default_factory=list)
    # Intake's outbound messages (POST /outbound): (Idempotency-Key, X-Intake-Attempt).
    outbound: list[tuple[str, str]] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length") or 0))
            if lines[0].split(" ")[1:2] == ["/outbound"]:
                key, attempt = headers.get("idempotency-key", ""), headers.get("x-intake-attempt")
                self.outbound.append((key, attempt or ""))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            survey, event = None, None
            try:
                doc = json.loads(body)
                payload = doc.get("payload", doc)
                survey = str(payload.get("survey_id") or doc.get("survey_id"))
                event = str(doc.get("event_id"))
            except (ValueError, AttributeError):
                pass
            self.deliveries.append((survey, event))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


# --- reconciliation -------------------------------------------------------------------------
async def reconcile_contacts(
    intake: asyncpg.Connection, router: asyncpg.Connection, accepted: list[str]
) -> dict[str, Any]:
    """Every accepted contact stored once in intake and on exactly one ticket in the router."""
    ids = [uuid.UUID(i) for i in accepted]
    stored_rows = await intake.fetch(
        "SELECT id, ticket_id, channel, external_id FROM contacts WHERE id = ANY($1::uuid[])", ids
    )
    stored = {r["id"]: r for r in stored_rows}
    # The same contact (channel + external id) stored under a second id: impossible while the
    # UNIQUE constraint holds; counted so that a dropped constraint would show.
    pairs = [(r["channel"], r["external_id"]) for r in stored_rows]
    dup_stored = await intake.fetchval(
        "SELECT count(*) - count(DISTINCT (channel, external_id)) FROM contacts "
        "WHERE (channel, external_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    placed_rows = await router.fetch(
        "SELECT contact_id, ticket_id FROM ticket_contacts WHERE contact_id = ANY($1::uuid[])", ids
    )
    per_contact = Counter(r["contact_id"] for r in placed_rows)
    ticket_of = {r["contact_id"]: r["ticket_id"] for r in placed_rows}
    tickets = sorted(set(ticket_of.values()))
    customers = await intake.fetch(
        "SELECT DISTINCT customer_id FROM contacts WHERE id = ANY($1::uuid[])", ids
    )
    # Tickets of these customers that hold none of their contacts: a contact that became a
    # second ticket (one ticket gets the contact row, the other is left empty).
    empty_tickets = await router.fetchval(
        "SELECT count(*) FROM tickets t WHERE t.customer_id = ANY($1::uuid[]) "
        "AND t.follow_up_of IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM ticket_contacts c WHERE c.ticket_id = t.id)",
        [r["customer_id"] for r in customers],
    )
    mislinked = sum(
        1
        for cid, row in stored.items()
        if cid in ticket_of and row["ticket_id"] is not None and row["ticket_id"] != ticket_of[cid]
    )
    unlinked = sum(1 for cid, row in stored.items() if row["ticket_id"] is None)
    return {
        "accepted": len(ids),
        "stored": len(stored),
        "lost": len(ids) - len(stored),
        "stored_twice": int(dup_stored or 0),
        "ticketed": len(per_contact),
        "not_ticketed": len(ids) - len(per_contact),
        "in_two_tickets": sum(1 for n in per_contact.values() if n > 1),
        "empty_tickets": int(empty_tickets or 0),
        "tickets": len(tickets),
        "intake_link_missing": unlinked,
        "intake_link_wrong": mislinked,
        "_ticket_ids": tickets,
    }


async def reconcile_assignments(
    router: asyncpg.Connection, tickets: list[uuid.UUID]
) -> dict[str, int]:
    rows = await router.fetch(
        "SELECT ticket_id, count(*) FILTER (WHERE status = 'accepted') AS accepted, "
        "count(*) FILTER (WHERE status = 'pending') AS pending, "
        "count(DISTINCT agent_id) FILTER (WHERE status = 'accepted') AS agents "
        "FROM offers WHERE ticket_id = ANY($1::uuid[]) GROUP BY ticket_id",
        tickets,
    )
    wrong_holder = await router.fetchval(
        "SELECT count(*) FROM tickets t WHERE t.id = ANY($1::uuid[]) "
        "AND t.assignee_agent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM offers o "
        "WHERE o.ticket_id = t.id AND o.status IN ('accepted', 'pending') "
        "AND o.agent_id = t.assignee_agent_id)",
        tickets,
    )
    return {
        "offers_accepted": sum(r["accepted"] for r in rows),
        "double_assignments": sum(1 for r in rows if r["accepted"] > 1 or r["pending"] > 1),
        "assignee_without_offer": int(wrong_holder or 0),
    }


async def reconcile_escalations(
    router: asyncpg.Connection, sla: asyncpg.Connection | None, tickets: list[uuid.UUID]
) -> dict[str, int]:
    applied = await router.fetch(
        "SELECT ticket_id, reason, count(*) AS n FROM ticket_history "
        "WHERE ticket_id = ANY($1::uuid[]) AND actor = 'sla' "
        "AND action IN ('notify_supervisor', 'notify_manager') GROUP BY ticket_id, reason",
        tickets,
    )
    result = {
        "escalations_applied": sum(r["n"] for r in applied),
        "double_escalations": sum(1 for r in applied if r["n"] > 1),
    }
    if sla is not None:
        fired = await sla.fetch(
            "SELECT ticket_id, split_part(key, ':', 1) AS k, level, count(*) AS n "
            "FROM fired_timers WHERE ticket_id = ANY($1::uuid[]) AND kind = 'escalation' "
            "GROUP BY 1, 2, 3",
            tickets,
        )
        result["escalations_fired"] = sum(r["n"] for r in fired)
    return result


async def reconcile_surveys(
    feedback: asyncpg.Connection,
    tickets: list[uuid.UUID],
    received: list[tuple[str | None, str | None]],
) -> dict[str, int]:
    per_ticket = await feedback.fetch(
        "SELECT ticket_id, count(*) AS n, count(*) FILTER (WHERE status = 'sent') AS sent "
        "FROM surveys WHERE ticket_id = ANY($1::uuid[]) GROUP BY ticket_id",
        tickets,
    )
    survey_ids = [
        r["id"]
        for r in await feedback.fetch(
            "SELECT id FROM surveys WHERE ticket_id = ANY($1::uuid[])", tickets
        )
    ]
    deliveries = await feedback.fetch(
        "SELECT survey_id, subscription_id, count(*) AS n FROM webhook_deliveries "
        "WHERE survey_id = ANY($1::uuid[]) GROUP BY 1, 2",
        survey_ids,
    )
    mine = {str(s) for s in survey_ids}
    events_per_survey: dict[str, set[str | None]] = {}
    for survey, event in received:
        if survey in mine:
            events_per_survey.setdefault(survey, set()).add(event)
    return {
        "surveys": sum(r["n"] for r in per_ticket),
        "surveys_sent": sum(r["sent"] for r in per_ticket),
        "webhooks_received": sum(1 for s, _ in received if s in mine),
        "double_surveys": sum(1 for r in per_ticket if r["n"] > 1 or r["sent"] > 1)
        + sum(1 for r in deliveries if r["n"] > 1)
        + sum(1 for events in events_per_survey.values() if len(events) > 1),
    }


def mailbox_copies(directory: Path) -> Counter[uuid.UUID]:
    """How many copies of each outbound message the mailbox got (by its Message-ID,
    `<message id@domain>`)."""
    copies: Counter[uuid.UUID] = Counter()
    for path in list_messages(directory):
        local = str(read_message(path).get("Message-ID", "")).strip("<> ").partition("@")[0]
        with contextlib.suppress(ValueError):
            copies[uuid.UUID(local)] += 1
    return copies


async def accepted_replies(
    router: asyncpg.Connection, contact_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """The replies the router stored (and so published) on the tickets of these contacts."""
    rows = await router.fetch(
        "SELECT m.id FROM ticket_messages m WHERE m.direction = 'outbound' AND m.ticket_id IN "
        "(SELECT ticket_id FROM ticket_contacts WHERE contact_id = ANY($1::uuid[]))",
        list(contact_ids),
    )
    return [r["id"] for r in rows]


async def reconcile_replies(
    intake: asyncpg.Connection,
    accepted: Collection[uuid.UUID],
    webhook_requests: Sequence[tuple[str, str]],
    emails: Counter[uuid.UUID],
    router: asyncpg.Connection | None = None,
) -> dict[str, Any]:
    """Every accepted reply ended sent (or delivered, read) or failed, and no receiver got one
    attempt of a message twice, nor more copies of a message than it had attempts. With the
    router's database: how many of them its conversation shows settled (not judged)."""
    rows = await intake.fetch(
        "SELECT id, state, attempts, reason FROM outbound_messages WHERE id = ANY($1::uuid[])",
        list(accepted),
    )
    attempts = {r["id"]: r["attempts"] for r in rows}
    per_attempt = Counter(webhook_requests)
    per_message: Counter[uuid.UUID] = Counter()
    twice: set[uuid.UUID] = set()
    for (key, _), n in per_attempt.items():
        with contextlib.suppress(ValueError):
            message = uuid.UUID(key)
            per_message[message] += n
            if n > 1:
                twice.add(message)
    for message, n in (per_message + emails).items():
        if message in attempts and n > attempts[message]:
            twice.add(message)
    states = Counter(r["state"] for r in rows)
    return {
        "replies": len(accepted),
        "replies_sent": states["sent"] + states["delivered"] + states["read"],
        "replies_failed": states["failed"],
        "replies_failure_reasons": dict(
            Counter(r["reason"] for r in rows if r["state"] == "failed")
        ),
        "replies_lost": len(set(accepted) - set(attempts)),
        "replies_unsettled": states["queued"],
        "replies_received": sum(per_message[m] + emails[m] for m in accepted),
        "replies_sent_twice": len(twice & set(accepted)),
    } | ({} if router is None else await _router_reply_states(router, accepted))


async def _router_reply_states(
    router: asyncpg.Connection, accepted: Collection[uuid.UUID]
) -> dict[str, Any]:
    settled = await router.fetchval(
        "SELECT count(*) FROM ticket_messages WHERE id = ANY($1::uuid[]) "
        "AND delivery_state IS DISTINCT FROM 'queued'",
        list(accepted),
    )
    return {"replies_settled_in_router": int(settled)}


VIOLATIONS = (
    "lost",
    "stored_twice",
    "not_ticketed",
    "in_two_tickets",
    "empty_tickets",
    "intake_link_missing",
    "intake_link_wrong",
    "double_assignments",
    "assignee_without_offer",
    "double_escalations",
    "double_surveys",
    "replies_lost",
    "replies_unsettled",
    "replies_sent_twice",
)


def violations(counts: dict[str, Any]) -> list[str]:
    return [f"{name}={counts[name]}" for name in VIOLATIONS if counts.get(name)]


# --- driving the stack ----------------------------------------------------------------------
def stack_env() -> dict[str, str]:
    """os.environ plus what `stack.sh env` exports (database URLs, Kafka bootstrap) and the
    service settings of this run."""
    out = subprocess.run(
        ["bash", str(STACK), "env"], capture_output=True, text=True, check=True
    ).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        for word in line.removeprefix("export ").split():
            key, sep, value = word.partition("=")
            if sep:
                env[key] = value
    env |= SERVICE_ENV
    # Topics of the benchmarks' own (as start_groups_at_end expects), apart from `make run`'s.
    env |= {f"{svc.upper()}_KAFKA_TOPIC_PREFIX": TOPIC_PREFIX for svc in SERVICES}
    # Databases of its own, fresh each run: nothing left over from an earlier run (queued
    # tickets, busy agents) competes with this run's tickets.
    for svc in SERVICES:
        name = f"{svc.upper()}_DATABASE_URL"
        env[name] = env[name].rsplit("/", 1)[0] + f"/chaos_{svc}"
    return env


async def fresh_databases(env: dict[str, str]) -> None:
    admin_url = env["INTAKE_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(admin_url.rsplit("/", 1)[0] + "/postgres")
    try:
        for svc in SERVICES:
            await admin.execute(f'DROP DATABASE IF EXISTS "chaos_{svc}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "chaos_{svc}"')
    finally:
        await admin.close()


async def sh(env: dict[str, str], *args: str) -> None:
    """Run stack.sh / services.sh without blocking the load; fails loudly."""
    process = await asyncio.create_subprocess_exec(
        "bash", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.decode(errors='replace')}")


async def all_ready(client: httpx.AsyncClient, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = 0
        for svc in SERVICES:
            try:
                r = await client.get(f"http://127.0.0.1:{PORTS[svc]}/readyz", timeout=2)
                ok += r.status_code == 200
            except httpx.HTTPError:
                pass
        if ok == len(SERVICES):
            return True
        await asyncio.sleep(0.5)
    return False


def log(t0: float, message: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 1.0
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await check():
                return True
        except (OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(interval)
    return False


async def _setup(
    env: dict[str, str], run: str, receiver_port: int, t0: float
) -> tuple[str, list[str], list[str]]:
    """API key, agents, the SLA policy and the webhook subscriptions of this run."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "intake.cli",
        "keys",
        "create",
        "--name",
        f"chaos-{run}",
        "--channels",
        ",".join(CHANNELS),
        "--rate",
        "1000",
        "--burst",
        "1000",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError("python -m intake.cli keys create failed")
    key = out.decode().split()[0]
    agents = [f"chaos-{run}-{i}" for i in range(AGENTS)]
    skills = {s: 3 for s in ("complaints", "technical", "billing", "vip", "escalations")}
    webhooks: list[str] = []
    async with httpx.AsyncClient(timeout=10, headers=supervisor_headers()) as c:
        router = f"http://127.0.0.1:{PORTS['router']}"
        for agent in agents:
            r = await c.put(f"{router}/v1/agents/{agent}", json={"name": agent, "skills": skills})
            r.raise_for_status()
            r = await c.put(f"{router}/v1/agents/{agent}/status", json={"status": "available"})
            r.raise_for_status()
        sla = f"http://127.0.0.1:{PORTS['sla']}/v1/policies"
        r = await c.post(sla, json=SLA_POLICY)
        if r.status_code == 409:
            body = {k: v for k, v in SLA_POLICY.items() if k != "id"}
            r = await c.put(f"{sla}/{SLA_POLICY['id']}", json=body)
        r.raise_for_status()
        for channel in CHANNELS:
            r = await c.post(
                f"http://127.0.0.1:{PORTS['feedback']}/v1/webhooks",
                json={
                    "channel": channel,
                    "url": f"http://127.0.0.1:{receiver_port}/surveys",
                    "description": f"chaos run {run}",
                },
            )
            if r.status_code == 201:
                webhooks.append(r.json()["id"])
            else:
                log(t0, f"webhook for {channel} refused ({r.status_code}): {r.text[:200]}")
    return key, agents, webhooks


async def _faults(
    env: dict[str, str], client: httpx.AsyncClient, t0: float
) -> list[dict[str, Any]]:
    """kill -9 each service, then Kafka, then PostgreSQL; bring each back and wait for it."""
    timeline: list[dict[str, Any]] = []
    steps: list[tuple[str, list[str], list[str]]] = [
        (svc, [str(SERVICES_SH), "kill9", svc], [str(SERVICES_SH), "start", svc])
        for svc in SERVICES
    ]
    steps += [
        ("kafka", [str(STACK), "kill9", "kafka"], [str(STACK), "start", "kafka"]),
        ("postgres", [str(STACK), "kill9", "postgres"], [str(STACK), "start", "postgres"]),
    ]
    for name, kill, start in steps:
        await asyncio.sleep(5)
        began = time.monotonic()
        log(t0, f"kill -9 {name}")
        await sh(env, *kill)
        await asyncio.sleep(2)
        await sh(env, *start)
        ready = await all_ready(client, 120)
        took = time.monotonic() - began
        log(t0, f"{name} back; all four services {'ready' if ready else 'NOT ready'} ({took:.1f}s)")
        timeline.append({"killed": name, "down_to_all_ready_s": round(took, 1), "ready": ready})
        if not ready:
            raise RuntimeError(f"the services did not all come back after {name} was killed")
    await asyncio.sleep(5)
    return timeline


async def _connect(env: dict[str, str], db: str) -> asyncpg.Connection:
    url = env[f"{db.upper()}_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    return await asyncpg.connect(url)


async def _run() -> dict[str, Any]:
    t0 = time.monotonic()
    env = stack_env()
    run = uuid.uuid4().hex[:8]
    log(t0, f"run {run}: (re)starting the four services with this run's settings")
    await sh(env, str(SERVICES_SH), "stop")
    await fresh_databases(env)
    # Consumer groups of its own, starting at the end of the topics: their history (earlier
    # runs, benchmarks) is not this run's to read; a killed service resumes where it stopped.
    suffix = f".chaos-{run}"
    for svc in SERVICES:
        env[f"{svc.upper()}_CONSUMER_GROUP_SUFFIX"] = suffix
    await start_groups_at_end(suffix)
    await sh(env, str(SERVICES_SH), "start")
    receiver = WebhookReceiver()
    receiver_port = await receiver.start()
    key, agent_names, webhooks = await _setup(env, run, receiver_port, t0)
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.put(
            f"http://127.0.0.1:{PORTS['intake']}/v1/integration/outbound",
            json={"url": f"http://127.0.0.1:{receiver_port}/outbound"},
            headers={"Authorization": f"Bearer {key}"},
        )
        r.raise_for_status()
    log(t0, f"key, {len(agent_names)} agents, SLA policy, {len(webhooks)} webhooks; load {RATE}/s")

    limits = httpx.Limits(max_connections=64)
    timeout = httpx.Timeout(5.0)
    async with (
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{PORTS['intake']}", timeout=timeout, limits=limits
        ) as intake_http,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{PORTS['router']}", timeout=timeout
        ) as router_http,
        httpx.AsyncClient(timeout=timeout) as probe,
    ):
        load = Load(intake_http, key, run, RATE)
        agents = Agents(router_http, agent_names, reply_text=REPLY_TEXT)
        load_task = asyncio.create_task(load.run_until_stopped())
        agents_task = asyncio.create_task(agents.run_until_stopped())
        try:
            timeline = await _faults(env, probe, t0)
        finally:
            load.stop()
            await load_task
        log(
            t0,
            f"load stopped: {load.posted} posted, {len(load.accepted)} accepted, "
            f"failures {dict(load.failures)}",
        )

        intake_db = await _connect(env, "intake")
        router_db = await _connect(env, "router")
        sla_db = await _connect(env, "sla")
        feedback_db = await _connect(env, "feedback")
        accepted = list(load.accepted)
        ids = [uuid.UUID(i) for i in accepted]
        try:

            async def placed() -> bool:
                n = await intake_db.fetchval(
                    "SELECT count(*) FROM contacts WHERE id = ANY($1::uuid[]) "
                    "AND ticket_id IS NOT NULL",
                    ids,
                )
                return bool(n == len(ids))

            settled = await wait_for(placed, SETTLE_S)
            log(t0, f"every accepted contact placed and linked: {settled}")

            async def quiet() -> bool:
                # Every resolved ticket of the run has its survey settled (sent or suppressed)
                # and every queued webhook delivered (or given up).
                tickets = [
                    r["ticket_id"]
                    for r in await router_db.fetch(
                        "SELECT ticket_id FROM ticket_contacts WHERE contact_id = ANY($1::uuid[])",
                        ids,
                    )
                ]
                resolved = await router_db.fetchval(
                    "SELECT count(*) FROM tickets WHERE id = ANY($1::uuid[]) "
                    "AND resolved_at IS NOT NULL",
                    tickets,
                )
                surveyed = await feedback_db.fetchval(
                    "SELECT count(*) FROM surveys WHERE ticket_id = ANY($1::uuid[]) "
                    "AND status <> 'scheduled'",
                    tickets,
                )
                pending = await feedback_db.fetchval(
                    "SELECT count(*) FROM webhook_deliveries d JOIN surveys s "
                    "ON s.id = d.survey_id WHERE s.ticket_id = ANY($1::uuid[]) "
                    "AND d.status = 'pending'",
                    tickets,
                )
                return bool(surveyed >= resolved and pending == 0)

            agents.stop()
            await agents_task
            replied = await accepted_replies(router_db, ids)

            async def replies_settled() -> bool:
                settled_replies = await intake_db.fetchval(
                    "SELECT count(*) FROM outbound_messages WHERE id = ANY($1::uuid[]) "
                    "AND state <> 'queued'",
                    replied,
                )
                return bool(settled_replies == len(replied))

            replies_done = await wait_for(replies_settled, SETTLE_S)
            log(t0, f"{len(replied)} replies accepted, all sent or failed: {replies_done}")
            applied: list[int] = []

            async def escalations_quiet() -> bool:
                # The router has caught up with sla.events: applied escalations stop growing.
                applied.append(
                    await router_db.fetchval(
                        "SELECT count(*) FROM ticket_history WHERE actor = 'sla'"
                    )
                )
                return len(applied) >= 4 and applied[-1] == applied[-4]

            await wait_for(escalations_quiet, 60)
            surveys_settled = await wait_for(quiet, 60)
            log(t0, f"surveys and webhook deliveries settled: {surveys_settled}")
            counts = await reconcile_contacts(intake_db, router_db, accepted)
            tickets = counts.pop("_ticket_ids")
            counts |= await reconcile_assignments(router_db, tickets)
            counts |= await reconcile_escalations(router_db, sla_db, tickets)
            counts |= await reconcile_surveys(feedback_db, tickets, receiver.deliveries)
            local = Path(env.get("CC_LOCAL_DIR") or ROOT / ".local")
            counts |= await reconcile_replies(
                intake_db,
                replied,
                receiver.outbound,
                mailbox_copies((local if local.is_absolute() else ROOT / local) / "mail"),
                router_db,
            )
        finally:
            for conn in (intake_db, router_db, sla_db, feedback_db):
                await conn.close()
            for hook in webhooks:
                with contextlib.suppress(httpx.HTTPError):
                    await probe.delete(f"http://127.0.0.1:{PORTS['feedback']}/v1/webhooks/{hook}")
            await receiver.stop()
    await sh(env, str(SERVICES_SH), "stop")
    return {
        "run": run,
        "rate_per_s": RATE,
        "posted": load.posted,
        "post_failures": dict(load.failures),
        "agents": {
            "accepted": agents.accepted,
            "resolved": agents.resolved,
            "replied": agents.replied,
            "errors": dict(agents.errors),
        },
        "faults": timeline,
        "settled": settled and surveys_settled and replies_done,
        "counts": counts,
        "violations": violations(counts),
        "seconds": round(time.monotonic() - t0, 1),
    }


ROWS = (
    ("accepted (202)", "accepted"),
    ("stored in intake", "stored"),
    ("lost", "lost"),
    ("stored twice", "stored_twice"),
    ("ticketed (exactly once)", "ticketed"),
    ("not ticketed", "not_ticketed"),
    ("contact in two tickets", "in_two_tickets"),
    ("tickets without a contact", "empty_tickets"),
    ("tickets", "tickets"),
    ("intake link missing/wrong", ("intake_link_missing", "intake_link_wrong")),
    ("offers accepted", "offers_accepted"),
    ("double assignments", "double_assignments"),
    ("assignee w/o offer", "assignee_without_offer"),
    ("escalations fired (sla)", "escalations_fired"),
    ("escalations applied (router)", "escalations_applied"),
    ("double escalations", "double_escalations"),
    ("surveys (sent)", ("surveys", "surveys_sent")),
    ("survey webhooks received", "webhooks_received"),
    ("double surveys", "double_surveys"),
    ("replies accepted", "replies"),
    ("replies sent / failed", ("replies_sent", "replies_failed")),
    ("replies lost / unsettled", ("replies_lost", "replies_unsettled")),
    ("reply copies received", "replies_received"),
    ("replies sent twice", "replies_sent_twice"),
)


def table(counts: dict[str, Any]) -> str:
    lines = []
    for label, keys in ROWS:
        if isinstance(keys, tuple):
            value = " / ".join(str(counts.get(k, "-")) for k in keys)
        else:
            value = str(counts.get(keys, "-"))
        lines.append(f"  {label:<30} {value:>10}")
    return "\n".join(lines)


def main(duration: int | None = None) -> None:
    del duration  # the fault sequence sets the length of the run
    result = asyncio.run(_run())
    print(
        f"\nchaos run {result['run']}: {result['posted']} posted at {RATE}/s, failures during "
        f"outages {result['post_failures']}"
    )
    print(
        "faults: "
        + ", ".join(f"{f['killed']} {f['down_to_all_ready_s']}s" for f in result["faults"])
    )
    print(table(result["counts"]))
    counts = result["counts"]
    idle = [k for k in ("offers_accepted", "escalations_applied", "surveys_sent") if not counts[k]]
    if idle:  # an invariant over nothing proves nothing
        result["violations"].append(f"not exercised: {', '.join(idle)}")
    path = write_result("chaos", result)
    if result["violations"] or not result["settled"]:
        print(f"FAILED: {', '.join(result['violations']) or 'did not settle'}; written to {path}")
        raise SystemExit(1)
    print(f"nothing lost, nothing doubled; written to {path}")
