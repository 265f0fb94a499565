"""`make demo`: a small working set in the running `make run` stack, so a new user sees
tickets offered within a minute.

It creates (or updates) a supervisor and three agents with their skills and capacities through
the router's API, prints a token for each, gives each a console user with a new password
(`python -m console.users create`, or `set-password` when the user exists: the agents' users
work as their router agents), creates an intake API key for every channel
(`python -m intake.cli keys create`), posts the sample contacts of
`tests/fixtures/contacts.jsonl` with fresh external ids, waits until the agents have offers, and
prints the console's address with the users and passwords to sign in with. It only calls the
services' documented APIs and command-line tools; run it again at will (the team is put again as
it is, the console users get new passwords, the contacts get new ids).

    CC_DEVELOPMENT=1 .venv/bin/python deploy/local/demo.py [--router URL] [--intake URL]
        [--console URL]

Tokens are signed as `python -m router.tokens issue` signs them (the development key with
`CC_DEVELOPMENT=1`, else `CC_TOKEN_PRIVATE_KEY_FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from ccshared.auth import DEFAULT_ISSUER, Role, issue_token
from router.tokens import signing_key_from_environment

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "fixtures" / "contacts.jsonl"
CHANNELS = ("phone", "email", "chat", "social")
TOKEN_HOURS = 12


@dataclass(frozen=True)
class TeamMember:
    id: str
    name: str
    role: Role = "agent"
    skills: dict[str, int] = field(default_factory=dict)
    capacity: dict[str, int] = field(
        default_factory=lambda: {"phone": 1, "chat": 3, "email": 5, "social": 5}
    )

    def body(self) -> dict[str, Any]:
        """The router's `PUT /v1/agents/{id}` body."""
        return {
            "name": self.name,
            "role": self.role,
            "skills": self.skills,
            "capacity": self.capacity,
        }


# Between them the three agents serve every default queue (frontline needs no skill); the
# supervisor is a user with a token, kept offline so the assigner never offers them a ticket.
SUPERVISOR = TeamMember("lin", "Lin Zhou", role="supervisor")
AGENTS = (
    TeamMember("amy", "Amy Chen", skills={"complaints": 4, "vip": 3}),
    TeamMember(
        "bob",
        "Bob Li",
        skills={"technical": 4, "billing": 3},
        capacity={"phone": 1, "chat": 4, "email": 8, "social": 5},
    ),
    TeamMember(
        "cara",
        "Cara Wang",
        skills={"complaints": 2, "billing": 4, "technical": 2, "vip": 4, "escalations": 4},
        capacity={"phone": 1, "chat": 2, "email": 5, "social": 3},
    ),
)


def tokens_for(members: Iterable[TeamMember], hours: float = TOKEN_HOURS) -> dict[str, str]:
    """A signed token for each member, as `python -m router.tokens issue` makes them."""
    key = signing_key_from_environment()
    issuer = os.environ.get("CC_TOKEN_ISSUER") or DEFAULT_ISSUER
    return {
        m.id: issue_token(key, m.id, m.role, ttl=timedelta(hours=hours), issuer=issuer)
        for m in members
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def set_up_team(
    router: httpx.AsyncClient, supervisor_token: str, members: Iterable[TeamMember]
) -> list[str]:
    """Put each member through the router's API (agents available, the supervisor offline);
    the ids of the queues no available agent serves (none, with the default queues)."""
    headers = bearer(supervisor_token)
    members = list(members)
    for m in members:
        put = await router.put(f"/v1/agents/{m.id}", json=m.body(), headers=headers)
        put.raise_for_status()
        status = "offline" if m.role == "supervisor" else "available"
        put = await router.put(
            f"/v1/agents/{m.id}/status", json={"status": status}, headers=headers
        )
        put.raise_for_status()
    queues = (await router.get("/v1/queues", headers=headers)).raise_for_status().json()
    skills = [set(m.skills) for m in members if m.role == "agent"]
    return [q["id"] for q in queues if not any(set(q["required_skills"]) <= s for s in skills)]


def create_intake_key(name: str = "demo", python: str = sys.executable) -> str:
    """A new intake API key for every channel, made by intake's own command-line tool
    (it reads INTAKE_DATABASE_URL, default the `make run` database)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [
            python,
            "-m",
            "intake.cli",
            "keys",
            "create",
            "--name",
            name,
            "--channels",
            ",".join(CHANNELS),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[0]


def _console_users(python: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [python, "-m", "console.users", *args], capture_output=True, text=True, check=False
    )


def _last_line(text: str) -> str:
    """What a failed command said: its own message, or the exception that ended it (not the
    traceback before it, nor SQLAlchemy's link after it)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("console.users:") or re.match(r"[\w.]+(Error|Exception): ", line):
            return line
    return lines[-1] if lines else "(nothing)"


def console_user(member: TeamMember, python: str = sys.executable) -> str:
    """The member's console user, made by the console's own command-line tool (it reads
    CONSOLE_DATABASE_URL, default the `make run` database): created with a new password (an
    agent's user works as the router agent of its id), or, when it exists (a second run), its
    password set anew, which signs it out. The password, as the tool printed it."""
    created = _console_users(
        python,
        "create",
        member.id,
        "--role",
        member.role,
        "--display-name",
        member.name,
        *(["--agent", member.id] if member.role == "agent" else []),
    )
    done = created
    if created.returncode == 2 and "exists already" in created.stderr:
        done = _console_users(python, "set-password", member.id)
    if done.returncode:
        said = _last_line(done.stderr)
        if done is not created:
            said = f"{_last_line(created.stderr)}; then {said}"
        raise RuntimeError(
            f"python -m console.users for {member.id}: {said} (is `make run` up? it makes "
            "the console's database)"
        )
    for line in done.stdout.splitlines():
        if line.startswith("password: "):
            return line.removeprefix("password: ")
    raise RuntimeError(f"python -m console.users printed no password: {done.stdout!r}")


def _tag_id(value: str, run: str) -> str:
    """The same id, made unique to this run, keeping its shape (`<local@host>` stays so)."""
    if value.startswith("<") and "@" in value:
        local, host = value[1:].rstrip(">").split("@", 1)
        return f"<{local}.{run}@{host}>"
    return f"{value}-{run}"


def sample_contacts(run: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """The sample contacts with every id an integration gives (external id, message ids and
    references, chat session, social post, call) made unique to `run`, consistently, so a
    reply still names the message it answers; received one second apart, ending now, in the
    file's order (the SLA clocks start when the customer wrote)."""
    lines = [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]
    now = now or datetime.now(UTC)
    contacts = []
    for i, body in enumerate(lines):
        body["external_id"] = _tag_id(body["external_id"], run)
        body["received_at"] = (now - timedelta(seconds=len(lines) - 1 - i)).isoformat()
        email = body.get("email")
        if email:
            email["message_id"] = _tag_id(email["message_id"], run)
            if email.get("in_reply_to"):
                email["in_reply_to"] = _tag_id(email["in_reply_to"], run)
            email["references"] = [_tag_id(r, run) for r in email.get("references") or []]
        if chat := body.get("chat"):
            chat["session_id"] = _tag_id(chat["session_id"], run)
        if social := body.get("social"):
            social["post_id"] = _tag_id(social["post_id"], run)
            if social.get("parent_post_id"):
                social["parent_post_id"] = _tag_id(social["parent_post_id"], run)
        if phone := body.get("phone"):
            phone["call_id"] = _tag_id(phone["call_id"], run)
        contacts.append(body)
    return contacts


async def post_contacts(
    intake: httpx.AsyncClient, key: str, contacts: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Post each contact to intake (in order: a reply after what it answers); the answers."""
    answers = []
    for body in contacts:
        response = await intake.post("/v1/contacts", json=body, headers=bearer(key))
        response.raise_for_status()
        answers.append(response.json())
    return answers


async def wait_for_offers(
    router: httpx.AsyncClient, tokens: dict[str, str], agents: Iterable[str], timeout: float
) -> dict[str, list[dict[str, Any]]]:
    """Each agent's pending offers, once there are some and a second look finds no more (or
    the deadline passed)."""
    deadline = time.monotonic() + timeout
    agents = list(agents)
    seen = 0
    while True:
        offers = {}
        for agent in agents:
            got = await router.get(f"/v1/agents/{agent}/offers", headers=bearer(tokens[agent]))
            offers[agent] = got.raise_for_status().json()
        count = sum(map(len, offers.values()))
        if (count and count == seen) or time.monotonic() >= deadline:
            return offers
        seen = count
        await asyncio.sleep(1)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deploy/local/demo.py", description="load the demo working set"
    )
    parser.add_argument(
        "--router", default=os.environ.get("DEMO_ROUTER_URL", "http://127.0.0.1:8002")
    )
    parser.add_argument(
        "--intake", default=os.environ.get("DEMO_INTAKE_URL", "http://127.0.0.1:8001")
    )
    parser.add_argument(
        "--console", default=os.environ.get("DEMO_CONSOLE_URL", "http://127.0.0.1:8005")
    )
    parser.add_argument("--wait", type=float, default=60, help="seconds to wait for offers")
    args = parser.parse_args(argv)
    team = [SUPERVISOR, *AGENTS]
    tokens = tokens_for(team)
    async with (
        httpx.AsyncClient(base_url=args.router, timeout=10) as router,
        httpx.AsyncClient(base_url=args.intake, timeout=10) as intake,
    ):
        unserved = await set_up_team(router, tokens[SUPERVISOR.id], team)
        print("Team (router API, PUT /v1/agents/{id}):")
        for m in team:
            skills = ", ".join(f"{s} {level}" for s, level in m.skills.items()) or "-"
            print(f"  {m.id:<5} {m.name:<10} {m.role:<10} skills: {skills}; capacity: {m.capacity}")
        if unserved:
            print(f"  no available agent serves: {', '.join(unserved)}")
        print(f"\nTokens (valid {TOKEN_HOURS} h; Authorization: Bearer <token>):")
        for m in team:
            print(f"  {m.id} ({m.role}): {tokens[m.id]}")
        passwords = {m.id: console_user(m) for m in team}
        key = create_intake_key()
        print(f"\nIntake API key (all channels, shown once): {key}")
        run = uuid.uuid4().hex[:8]
        answers = await post_contacts(intake, key, sample_contacts(run))
        accepted = sum(a["status"] == "accepted" for a in answers)
        print(
            f"\nPosted {len(answers)} sample contacts to intake ({accepted} accepted, run {run})."
        )
        offers = await wait_for_offers(router, tokens, [a.id for a in AGENTS], args.wait)
    print("\nPending offers:")
    for agent, pending in offers.items():
        for offer in pending:
            s = offer["summary"]
            print(
                f"  {agent:<5} {s['channel']:<7} {s['priority']:<7} "
                f"{s['customer_name'] or '-'}: {s['subject'] or ''}"
            )
    if not any(offers.values()):
        print("  none yet: see `make status` and `make logs`")
    print(
        f"\nAs {AGENTS[0].id} over the API: curl -H 'Authorization: Bearer <token of "
        f"{AGENTS[0].id}>' {args.router}/v1/agents/{AGENTS[0].id}/offers, or Authorize at "
        f"{args.router}/docs"
    )
    print(f"\nConsole: open {args.console} and sign in as (new passwords on every run):")
    for m in team:
        print(f"  {m.id:<5} {m.role:<10} password: {passwords[m.id]}")
    return 0 if any(offers.values()) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
