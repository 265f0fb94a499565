"""The webhook client connects only to vetted addresses: a name is resolved once, every address
it resolves to is checked, and the connection goes to a checked address (no second resolution
a rebinding DNS server could answer differently)."""

from __future__ import annotations

import pytest

from feedback import webhook_transport
from feedback.domain.webhooks import AddressRefused, WebhookAddressRules
from feedback.webhook_transport import webhook_client
from tests.integration.feedback.conftest import WebhookReceiver


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
