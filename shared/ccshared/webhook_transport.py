"""The HTTP client webhooks are delivered with (feedback's survey webhooks, intake's outbound
messages to chat, social and telephony integrations), and the check of a webhook URL at
registration.

Every new connection resolves the URL's host once, refuses it unless every address it resolves
to is allowed (`WebhookAddressRules`), and connects to one of those vetted addresses: httpx never
resolves the name again, so DNS rebinding cannot swap a private address in between the check and
the connection. The URL, Host header and TLS server name (SNI, certificate check) stay the name.
No proxy from the environment and no redirects: either would send the request elsewhere.

`post_webhook` bounds what a receiver can make a delivery cost: one deadline for the whole
exchange (connect, send, headers, body), and at most `RESPONSE_BODY_LIMIT` bytes of the body
read, then dropped; only the status counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from ccshared.webhooks import AddressRefused, WebhookAddressRules

# Bytes of a response body read (and dropped) at most: enough to finish a short answer and keep
# its connection, never a buffer a streaming receiver can grow.
RESPONSE_BODY_LIMIT = 4096

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order (the seam tests replace)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def vetted_addresses(
    host: str, port: int, rules: WebhookAddressRules, timeout_s: float | None
) -> list[str]:
    """The addresses to connect to for `host`; raises AddressRefused if the name or any of its
    addresses is not allowed, and OSError / TimeoutError if it does not resolve."""
    rules.check_host(host)
    try:
        # Looked up at call time, so a test can replace the module's resolve_host.
        addresses = await asyncio.wait_for(resolve_host(host.strip("[]"), port), timeout_s)
    except UnicodeError as exc:  # a name IDNA cannot encode cannot be looked up either
        raise OSError(f"{host} is not a name DNS can look up") from exc
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    for address in addresses:
        rules.check_address(host, ipaddress.ip_address(address.split("%", 1)[0]))
    return addresses


async def check_webhook_url(url: str, rules: WebhookAddressRules, timeout_s: float = 2.0) -> None:
    """At registration: refuses a URL whose host is, or resolves to, an address that is not
    allowed (raises AddressRefused). A name that does not resolve now is accepted: every
    delivery checks again."""
    try:
        parsed = httpx.URL(url)
        parsed.host  # noqa: B018 - decoding the name is what fails for some IDNA names
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise AddressRefused(f"{url} is not a URL webhooks can be delivered to") from exc
    host, port = parsed.raw_host.decode("ascii"), parsed.port or _default_port(parsed)
    with contextlib.suppress(OSError, TimeoutError):
        await vetted_addresses(host, port, rules, timeout_s)


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


class _VettingBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses `vetted_addresses` allowed, trying each in turn."""

    def __init__(self, rules: WebhookAddressRules) -> None:
        self._rules = rules
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await vetted_addresses(host, port, self._rules, timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._network.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("webhooks are not delivered to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def webhook_client(
    rules: WebhookAddressRules,
    ssl_context: ssl.SSLContext | None = None,
    *,
    user_agent: str = "cc-feedback/1",
    max_connections: int = 100,
    max_keepalive: int = 20,
) -> httpx.AsyncClient:
    """An httpx client that connects only to vetted addresses (AddressRefused otherwise).
    `ssl_context` defaults to the system's trusted certificates (tests pass their own CA)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx has no public way to give its pool a network backend; the pool is built here as
    # httpx builds it, with the vetting backend (tests/integration/feedback/
    # test_webhook_transport.py fails if a new httpx stops using it).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(),
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive,
        keepalive_expiry=5.0,
        network_backend=_VettingBackend(rules),
    )
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": user_agent},
    )


async def post_webhook(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    body_limit: int = RESPONSE_BODY_LIMIT,
) -> int:
    """POSTs `body` and returns the response status. The whole exchange must end within
    `timeout_s` (TimeoutError otherwise): httpx's own timeout counts per read, so a receiver
    dripping a byte a second, or streaming without end, would hold it for ever. At most
    `body_limit` bytes of the response body are read; the rest is never fetched (the
    connection is closed instead of reused)."""
    async with asyncio.timeout(timeout_s):
        async with client.stream(
            "POST", url, content=body, headers=headers, timeout=timeout_s
        ) as response:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= body_limit:
                    break
            return response.status_code
