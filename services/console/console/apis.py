"""The APIs the console calls on its users' behalf: the router's, SLA's and feedback's.

The console is the token issuer for its signed-in users: for each call it attaches a short-lived
token (`token_ttl_s`, minutes) it signed itself for the user (the agent's id and role for an
agent), minted again before it expires. Tokens stay on the server: the browser holds only its
session cookie, so a script injected into a page has no token to steal and the APIs see the
same user, role and checks as any other caller."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

import httpx

from ccshared.auth import issue_token
from console.domain.users import User
from console.settings import ConsoleSettings

Service = Literal["router", "sla", "feedback"]
# A cached token is minted again when it has less than this left.
_RENEW_BEFORE_S = 60.0


# Who the console is when it reads, for an agent, what only supervisors may read at the API:
# a ticket's SLA clocks (the SLA service cannot tell who holds a ticket, so it answers
# supervisors only). The console asks so only right after the router has shown that ticket to
# the agent (their read rule), and only with GET /v1/tickets/{id}/sla: the clocks of a ticket
# the agent may read, nothing more. The token's subject says it was the console.
CONSOLE_READER = User(
    id="console", display_name="console", role="supervisor", agent_id=None, language=None
)


class UpstreamUnavailable(Exception):
    """The service did not answer (connection refused, timed out)."""


class Apis:
    def __init__(
        self,
        settings: ConsoleSettings,
        transports: Mapping[Service, httpx.AsyncBaseTransport] | None = None,
    ):
        self._key = settings.signing_key()
        self._issuer = settings.token_issuer
        self._ttl = settings.token_ttl_s
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        urls = {
            "router": settings.router_url,
            "sla": settings.sla_url,
            "feedback": settings.feedback_url,
        }
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._clients = {
            name: httpx.AsyncClient(
                base_url=url,
                timeout=settings.upstream_timeout_s,
                limits=limits,
                transport=(transports or {}).get(name),  # type: ignore[call-overload]
            )
            for name, url in urls.items()
        }

    def token_for(self, user: User) -> str:
        """The user's API token: cached, minted again when close to expiry."""
        key = (user.subject, user.role)
        now = time.time()
        cached = self._tokens.get(key)
        if cached is not None and cached[1] - now > _RENEW_BEFORE_S:
            return cached[0]
        token = issue_token(
            self._key,
            user.subject,
            user.role,
            ttl=timedelta(seconds=self._ttl),
            issuer=self._issuer,
        )
        self._tokens[key] = (token, now + self._ttl)
        if len(self._tokens) > 10_000:  # bounded: a long-running replica sees many users
            self._tokens.pop(next(iter(self._tokens)))
        return token

    async def request(
        self,
        user: User,
        service: Service,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token_for(user)}"}
        try:
            return await self._clients[service].request(
                method, path, json=json, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{service}: {type(exc).__name__}") from None

    async def get(
        self, user: User, service: Service, path: str, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        return await self.request(user, service, "GET", path, params=params)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
