"""Webhooks as the platform sends them (feedback's survey events, intake's outbound messages):
signing (Stripe's scheme: a timestamp and an HMAC-SHA256 of `timestamp.body`, so a receiver can
refuse forgeries and replays), the retry schedule, and which addresses a webhook may be sent to
(never this host, the private network or the cloud's metadata service: the service would
otherwise be a proxy into them)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

DEFAULT_TOLERANCE_S = 300


class SignatureError(Exception):
    """The request's signature header is missing, malformed, wrong or too old."""


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={compute_signature(secret, timestamp, body)}"


def verify_signature(
    header: str, body: bytes, secret: str, now: int, tolerance_s: int = DEFAULT_TOLERANCE_S
) -> None:
    """What a receiving integration does; raises SignatureError. Several v1 values are allowed
    so a sender may sign with an old and a new secret while secrets are rotated."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("signature header needs t= and v1=")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("signature timestamp outside the tolerance")
    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("signature does not match")


def retry_delay(
    attempt: int,
    *,
    base: timedelta = timedelta(seconds=30),
    cap: timedelta = timedelta(hours=6),
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> timedelta:
    """Wait after failed attempt number `attempt` (1-based): base·2^(attempt-1), capped, with
    up to `jitter` (a share, e.g. 0.2) added so many failing deliveries do not retry in step."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    delay: timedelta = min(base * 2 ** min(attempt - 1, 30), cap)
    if jitter:
        delay += delay * jitter * (rng or random).random()
    return delay


def retry_schedule(
    max_attempts: int,
    *,
    base: timedelta = timedelta(seconds=30),
    cap: timedelta = timedelta(hours=6),
) -> list[timedelta]:
    """The waits between attempts 1..max_attempts, without jitter (for docs and tests)."""
    return [retry_delay(a, base=base, cap=cap) for a in range(1, max_attempts)]


def is_retryable_status(status: int) -> bool:
    # 4xx other than timeouts and rate limits means the receiver refused this request for good.
    return status >= 500 or status in (408, 425, 429)


# --- where a webhook may point -----------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Names that mean this machine or the cloud's metadata service whatever DNS says.
_LOCAL_NAMES: Final = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "metadata",
     "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
)  # fmt: skip
_CGNAT: Final = ipaddress.IPv4Network("100.64.0.0/10")  # also Alibaba's metadata 100.100.100.200
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")


class AddressRefused(Exception):
    """A webhook URL names, or resolves to, an address a webhook may not be sent to."""


def ip_literal(host: str) -> IPAddress | None:
    """The address `host` spells, in any form a resolver accepts: `[::1]`, `127.0.0.1`, and the
    legacy IPv4 forms `2130706433`, `0x7f000001`, `017700000001`, `127.1`; None for a name."""
    host = host.strip().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone id does not matter
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_legacy_number(p) is not None for p in parts):
        return None
    numbers = [_legacy_number(p) or 0 for p in parts]
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(leading):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _legacy_number(part: str) -> int | None:
    # inet_aton's parts: decimal, 0x-hex or 0-octal.
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else 0
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isascii() and part.isdigit() else None
    except ValueError:
        return None


def address_refusal(address: IPAddress) -> str | None:
    """Why no webhook may go to `address` (loopback, private, link-local with the metadata
    service, IPv6 site-local, carrier-grade NAT, multicast, unspecified, reserved, or an IPv6
    form embedding one of those), or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 form that carries an IPv4 address reaches that address: judge it instead.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (
            address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1)
        ):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_refusal(embedded)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata)"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"  # fec0::/10: deprecated, yet routed inside some networks
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "carrier-grade NAT"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


@dataclass(frozen=True, slots=True)
class WebhookAddressRules:
    """Which webhook hosts are refused. `allowed_hosts` (names or literal addresses) and
    `allowed_networks` are the development allow-list: a local receiver a test or `make run`
    posts to; nothing is allowed by default."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, allow_list: str) -> WebhookAddressRules:
        """From `127.0.0.1,localhost,10.0.0.0/8`: names, addresses and CIDR networks. Raises
        ValueError for an entry that is none of these."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in allow_list.split(",")):
            if not entry:
                continue
            problem = f"{entry!r} is not a host name, an address or a CIDR network"
            if "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(problem) from None
            elif (address := ip_literal(entry)) is not None:
                networks.append(ipaddress.ip_network(address))
            elif _is_hostname(entry):
                hosts.add(_normal_host(entry))
            else:
                raise ValueError(problem)
        return cls(frozenset(hosts), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        return _normal_host(host) in self.allowed_hosts

    def check_host(self, host: str) -> None:
        """Before resolving: refuses a literal address or a local name that is not allowed.
        Raises AddressRefused."""
        if self.host_allowed(host):
            return
        if (address := ip_literal(host)) is not None:
            self.check_address(host, address)
        elif _normal_host(host) in _LOCAL_NAMES or _normal_host(host).endswith(".localhost"):
            raise AddressRefused(f"{host} is not allowed (a local name)")

    def check_address(self, host: str, address: IPAddress) -> None:
        """After resolving: each address `host` resolved to. Raises AddressRefused."""
        if self.host_allowed(host) or any(address in n for n in self.allowed_networks):
            return
        if (reason := address_refusal(address)) is not None:
            shown = host if ip_literal(host) == address else f"{host} resolves to {address}, which"
            raise AddressRefused(f"{shown} is not allowed ({reason} address)")


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def _is_hostname(entry: str) -> bool:
    labels = _normal_host(entry).split(".")
    return all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels)
