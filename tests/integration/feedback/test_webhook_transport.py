"""The webhook client connects only to vetted addresses: a name is resolved once, every address
it resolves to is checked, and the connection goes to a checked address (no second resolution
a rebinding DNS server could answer differently)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ccshared import webhook_transport
from ccshared.webhook_transport import post_webhook, webhook_client
from feedback.domain.webhooks import AddressRefused, WebhookAddressRules
from tests.helpers import wait_until
from tests.integration.feedback.conftest import SlowReceiver, WebhookReceiver


class RebindingResolver:
    """Answers `first` for the first lookup of a name and `then` for every later one."""

    def __init__(self, first: list[str], then: list[str]) -> None:
        self.first, self.then = first, then
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.first if len(self.lookups) == 1 else self.then


def _port(receiver: WebhookReceiver) -> int:
    return int(receiver.base_url.rsplit(":", 1)[1])


async def test_name_resolving_to_any_internal_address_is_refused_before_connecting(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = RebindingResolver(["93.184.216.34", "127.0.0.1"], ["93.184.216.34"])
    monkeypatch.setattr(webhook_transport, "resolve_host", resolver)
    async with webhook_client(WebhookAddressRules()) as client:
        with pytest.raises(AddressRefused, match=r"hooks\.test resolves to 127\.0\.0\.1"):
            await client.post(f"http://hooks.test:{_port(receiver)}/x", content=b"{}")
    assert receiver.received == []


async def test_connection_goes_to_the_vetted_address_and_the_name_is_resolved_once(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checked and allowed first, a metadata address afterwards: only the first answer is used.
    resolver = RebindingResolver(["127.0.0.1"], ["169.254.169.254"])
    monkeypatch.setattr(webhook_transport, "resolve_host", resolver)
    async with webhook_client(WebhookAddressRules.parse("127.0.0.0/8")) as client:
        response = await client.post(f"http://hooks.test:{_port(receiver)}/x", content=b"{}")
    assert response.status_code == 200
    assert resolver.lookups == ["hooks.test"]
    [request] = receiver.received
    assert request.headers["host"] == f"hooks.test:{_port(receiver)}"  # the name, not the IP


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"])
async def test_loopback_is_refused_without_the_allow_list(
    receiver: WebhookReceiver, host: str
) -> None:
    async with webhook_client(WebhookAddressRules()) as client:
        with pytest.raises(AddressRefused):
            await client.post(f"http://{host}:{_port(receiver)}/x", content=b"{}")
    assert receiver.received == []


async def test_allow_listed_local_name_is_delivered_through_the_real_resolver(
    receiver: WebhookReceiver,
) -> None:
    # localhost may resolve to ::1 first, where nothing listens: the next address is tried.
    async with webhook_client(WebhookAddressRules.parse("localhost")) as client:
        response = await client.post(f"http://localhost:{_port(receiver)}/x", content=b"{}")
    assert response.status_code == 200
    assert len(receiver.received) == 1


def _tls_pair(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for `name` signed by a fresh CA, and a client
    context trusting only that CA."""
    now = datetime.now(UTC)

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: Any,
              ca: bool) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = issue("test CA", ca_key, "test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(name, key, "test CA", ca_key, ca=False)
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(
        cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    )
    return server, client


@pytest.mark.parametrize(
    ("certificate_for", "verifies"), [("hooks.test", True), ("evil.test", False)]
)
async def test_tls_goes_to_the_vetted_address_with_the_name_as_sni_and_certificate_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certificate_for: str, verifies: bool
) -> None:
    server_context, client_context = _tls_pair(tmp_path, certificate_for)
    server_names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    receiver = WebhookReceiver()
    receiver.server = await asyncio.start_server(
        receiver._handle, "127.0.0.1", 0, ssl=server_context
    )
    monkeypatch.setattr(webhook_transport, "resolve_host", RebindingResolver(["127.0.0.1"], []))
    try:
        async with webhook_client(WebhookAddressRules.parse("127.0.0.1"), client_context) as client:
            url = f"https://hooks.test:{_port(receiver)}/x"
            if verifies:
                assert (await client.post(url, content=b"{}")).status_code == 200
                assert receiver.received[0].headers["host"] == f"hooks.test:{_port(receiver)}"
            else:  # the certificate is checked against the name, not the address
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.post(url, content=b"{}")
                assert receiver.received == []
    finally:
        receiver.server.close()
        await receiver.server.wait_closed()
    assert server_names[:1] == ["hooks.test"]


async def test_a_receiver_dripping_its_answer_is_dropped_at_the_timeout(
    slow_receiver: SlowReceiver,
) -> None:
    # httpx's own timeout counts per read: a byte every half second keeps post() reading for
    # ever.
    async with webhook_client(WebhookAddressRules.parse("127.0.0.1")) as client:
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            await post_webhook(client, slow_receiver.base_url + "/drip", b"{}", {}, timeout_s=1)
        assert time.perf_counter() - started < 1.5
    await wait_until(slow_receiver.hung_up, timeout=5)


async def test_a_receiver_streaming_without_end_is_read_a_few_kilobytes_then_left(
    slow_receiver: SlowReceiver,
) -> None:
    # post() would keep reading and buffering (49 MB after 8 s in the review's probe).
    async with webhook_client(WebhookAddressRules.parse("127.0.0.1")) as client:
        status = await post_webhook(
            client, slow_receiver.base_url + "/endless", b"{}", {}, timeout_s=5
        )
    assert status == 200
    await wait_until(slow_receiver.hung_up, timeout=5)


class EndlessBody(httpx.AsyncByteStream):
    """A response body of 1 KB chunks without end, counting what the client pulls."""

    def __init__(self) -> None:
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.pulled += 1024
            yield b"x" * 1024


async def test_at_most_a_few_kilobytes_of_a_response_body_are_read() -> None:
    body = EndlessBody()
    transport = httpx.MockTransport(lambda request: httpx.Response(202, stream=body))
    async with httpx.AsyncClient(transport=transport) as client:
        status = await post_webhook(client, "http://hooks.test/x", b"{}", {}, timeout_s=5)
    assert status == 202
    assert body.pulled <= webhook_transport.RESPONSE_BODY_LIMIT + 1024
