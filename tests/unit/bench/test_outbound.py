"""The outbound benchmark measures reply → sent (issue 18): its replies are agents' replies
through the router's API (`POST /v1/tickets/{id}/reply`, by the agent holding the ticket), a
quarter per channel at every moment; only replies the router accepted are timed. (It used to
publish message.outbound to Kafka itself, timing event → sent.)"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt

from bench import outbound
from bench.loadgen import Response


@dataclass
class Router:
    """Stands in for the router's API: records each request, answers 200 (409 for `refuse`)."""

    refuse: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, Any, dict[str, str]]] = field(default_factory=list)

    async def request(
        self, method: str, path: str, json: Any = None, *, headers: dict[str, str] | None = None
    ) -> Response:
        self.requests.append((method, path, json, headers or {}))
        ticket = path.split("/")[3]
        return Response(409 if ticket in self.refuse else 200, b"{}")


def _subject(headers: dict[str, str]) -> tuple[str, str]:
    token = headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    return claims["sub"], claims["role"]


TICKETS = [
    (f"t-{channel}-{n}", channel, f"agent-{n % 3}")
    for channel in ("phone", "email", "social", "chat")
    for n in range(5)
]


def test_tickets_are_ordered_so_any_four_replies_in_a_row_cover_the_four_channels() -> None:
    ordered = outbound.interleaved(TICKETS)
    assert sorted(ordered) == sorted(TICKETS)
    for start in range(len(ordered)):
        window = [ordered[(start + i) % len(ordered)][1] for i in range(4)]
        assert sorted(window) == sorted(outbound.CHANNELS), window


async def test_each_reply_goes_through_the_routers_reply_api_as_the_ticket_holder() -> None:
    router = Router(refuse={"t-chat-1"})
    agents = outbound.Agents(router, outbound.interleaved(TICKETS))  # type: ignore[arg-type]
    before = time.time()
    for n in range(40):
        await agents.reply(n, started=time.perf_counter())

    assert len(router.requests) == 40
    by_ticket: Counter[str] = Counter()
    for n, (method, path, body, headers) in enumerate(router.requests):
        ticket, channel, holder = agents.tickets[n % len(agents.tickets)]
        assert (method, path) == ("POST", f"/v1/tickets/{ticket}/reply")
        assert body == {"text": outbound.REPLY.format(n=n)}
        assert body["text"].endswith(f"#{n}")  # how intake's row is matched to its reply
        assert _subject(headers) == (holder, "agent")
        assert agents.channel_of(n) == channel
        by_ticket[ticket] += 1
    assert set(by_ticket.values()) == {2}  # round-robin over every ticket
    # Timed: only what the router accepted, from when it was sent.
    refused = [n for n in range(40) if agents.tickets[n % 20][0] == "t-chat-1"]
    assert sorted(agents.posted) == [n for n in range(40) if n not in refused]
    assert all(before <= at <= time.time() for at in agents.posted.values())
    assert agents.errors == Counter({"reply 409": len(refused)})
