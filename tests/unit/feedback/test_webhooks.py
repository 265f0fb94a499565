from __future__ import annotations

import ipaddress
import random
from datetime import timedelta

import pytest

from feedback.domain.webhooks import (
    AddressRefused,
    SignatureError,
    WebhookAddressRules,
    ip_literal,
    is_retryable_status,
    retry_delay,
    retry_schedule,
    signature_header,
    verify_signature,
)

BODY = b'{"survey_id": "x"}'


def test_receiver_accepts_a_genuine_signature() -> None:
    header = signature_header("whsec", 1_700_000_000, BODY)
    assert header.startswith("t=1700000000,v1=")
    verify_signature(header, BODY, "whsec", now=1_700_000_100)


@pytest.mark.parametrize(
    ("header", "body", "secret", "now"),
    [
        (signature_header("whsec", 1_700_000_000, BODY), BODY + b" ", "whsec", 1_700_000_000),
        (signature_header("whsec", 1_700_000_000, BODY), BODY, "other", 1_700_000_000),
        (signature_header("whsec", 1_700_000_000, BODY), BODY, "whsec", 1_700_000_301),
        ("v1=abc", BODY, "whsec", 1_700_000_000),
        ("", BODY, "whsec", 1_700_000_000),
    ],
    ids=["body-changed", "wrong-secret", "replayed-too-late", "no-timestamp", "empty"],
)
def test_receiver_refuses_forged_changed_or_stale_requests(
    header: str, body: bytes, secret: str, now: int
) -> None:
    with pytest.raises(SignatureError):
        verify_signature(header, body, secret, now=now)


def test_signature_with_a_changed_timestamp_is_refused() -> None:
    header = signature_header("whsec", 1_700_000_000, BODY)
    replayed = header.replace("t=1700000000", "t=1700000200")
    with pytest.raises(SignatureError):
        verify_signature(replayed, BODY, "whsec", now=1_700_000_200)


def test_one_of_several_signatures_may_match_during_secret_rotation() -> None:
    new = signature_header("new", 1_700_000_000, BODY)
    old = signature_header("old", 1_700_000_000, BODY).split(",")[1]
    verify_signature(f"{new},{old}", BODY, "old", now=1_700_000_000)


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    waits = retry_schedule(6, base=timedelta(seconds=1), cap=timedelta(seconds=10))
    assert waits == [timedelta(seconds=s) for s in (1, 2, 4, 8, 10)]


def test_jitter_only_lengthens_the_wait_by_at_most_its_share() -> None:
    rng = random.Random(7)
    for attempt in range(1, 10):
        plain = retry_delay(attempt)
        jittered = retry_delay(attempt, jitter=0.2, rng=rng)
        assert plain <= jittered <= plain * 1.2
    with pytest.raises(ValueError, match="start at 1"):
        retry_delay(0)


@pytest.mark.parametrize(
    ("status", "retry"),
    [(500, True), (503, True), (429, True), (408, True), (400, False), (404, False), (410, False)],
)
def test_server_errors_and_rate_limits_are_retried_client_errors_are_not(
    status: int, retry: bool
) -> None:
    assert is_retryable_status(status) is retry


# --- where a webhook may point ---------------------------------------------------------------

INTERNAL_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("[::1]", "loopback"),
    ("169.254.169.254", "link-local"),  # AWS, GCP, Azure metadata
    ("[fe80::1]", "link-local"),
    ("0x7f000001", "loopback"),
    ("2130706433", "loopback"),
    ("017700000001", "loopback"),
    ("127.1", "loopback"),
    ("0177.0.0.01", "loopback"),
    ("10.0.0.5", "private"),
    ("172.16.3.4", "private"),
    ("192.168.1.10", "private"),
    ("[fd00::1]", "private"),
    ("[fd00:ec2::254]", "private"),  # AWS metadata over IPv6
    ("[fec0::1]", "site-local"),  # deprecated, still routed inside some networks
    ("[feff:ffff::1]", "site-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.100.100.200", "carrier-grade NAT"),  # Alibaba metadata
    ("224.0.0.1", "multicast"),
    ("[ff02::1]", "multicast"),
    ("0.0.0.0", "unspecified"),  # noqa: S104
    ("0", "unspecified"),
    ("[::]", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped
    ("[::ffff:a9fe:a9fe]", "link-local"),  # IPv4-mapped 169.254.169.254
    ("[::ffff:10.0.0.1]", "private"),
    ("[64:ff9b::a9fe:a9fe]", "link-local"),  # NAT64 of the metadata address
    ("[2002:7f00:1::]", "loopback"),  # 6to4 of 127.0.0.1
    ("localhost", "local name"),
    ("LOCALHOST.", "local name"),
    ("anything.localhost", "local name"),
    ("metadata.google.internal", "local name"),
]


@pytest.mark.parametrize(("host", "reason"), INTERNAL_HOSTS)
def test_internal_hosts_are_refused_in_every_spelling(host: str, reason: str) -> None:
    with pytest.raises(AddressRefused, match=reason):
        WebhookAddressRules().check_host(host)


@pytest.mark.parametrize(
    "host",
    ["8.8.8.8", "[2606:4700:4700::1111]", "hooks.example.com", "1.2.3.com", "[::ffff:8.8.8.8]"],
)
def test_public_addresses_and_names_pass_the_check_before_resolving(host: str) -> None:
    WebhookAddressRules().check_host(host)


def test_a_name_resolving_to_an_internal_address_is_refused_naming_both() -> None:
    rules = WebhookAddressRules()
    rules.check_address("hooks.example.com", ipaddress.ip_address("93.184.216.34"))
    with pytest.raises(AddressRefused, match=r"hooks.example.com resolves to 10.1.2.3.*private"):
        rules.check_address("hooks.example.com", ipaddress.ip_address("10.1.2.3"))


def test_allow_list_admits_named_hosts_addresses_and_networks_only() -> None:
    rules = WebhookAddressRules.parse(" 127.0.0.1, localhost ,10.8.0.0/16,[::1]")
    rules.check_host("localhost")
    rules.check_address("localhost", ipaddress.ip_address("127.0.0.1"))
    rules.check_host("127.0.0.1")
    rules.check_host("[::1]")
    rules.check_address("receiver.test", ipaddress.ip_address("10.8.1.2"))
    with pytest.raises(AddressRefused):
        rules.check_address("receiver.test", ipaddress.ip_address("10.9.1.2"))
    with pytest.raises(AddressRefused):
        rules.check_host("127.0.0.2")
    with pytest.raises(AddressRefused):
        rules.check_host("169.254.169.254")
    assert WebhookAddressRules.parse("") == WebhookAddressRules()


@pytest.mark.parametrize("entry", ["http://localhost", "10.0.0.0/33", "a b", "*.example"])
def test_allow_list_entry_that_is_no_host_address_or_network_is_an_error(entry: str) -> None:
    with pytest.raises(ValueError, match="is not a host name, an address or a CIDR network"):
        WebhookAddressRules.parse(entry)


@pytest.mark.parametrize(
    ("host", "address"),
    [("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("017700000001", "127.0.0.1"),
     ("127.1", "127.0.0.1"), ("10.1", "10.0.0.1"), ("192.168.257", "192.168.1.1"),
     ("[::1]", "::1"), ("hooks.example", None), ("1.2.3.4.5", None), ("08.1.1.1", None)],
)  # fmt: skip
def test_ip_literal_reads_every_form_a_resolver_accepts(host: str, address: str | None) -> None:
    assert ip_literal(host) == (ipaddress.ip_address(address) if address else None)
