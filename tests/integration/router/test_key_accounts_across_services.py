"""Key accounts across services on the real broker, each with its database: feedback's API
makes a customer a key account, its customer.segment_changed reaches the router (the next
ticket goes to VIP care, and so does the account's call-back, published by feedback's
scheduler) and SLA (the ticket gets the key-account policy); deactivating the account sends the
customer's next ticket the normal way."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from ccshared.events.catalog import FEEDBACK_EVENTS, ROUTER_TICKETS
from ccshared.kafka import commit_group_at_end, ensure_topics
from router.app import create_app
from router.consumers import CONSUMERS
from router.settings import RouterSettings
from tests.conftest import TOPIC_PREFIX, groups_at_end, scratch_database, topic
from tests.helpers import as_supervisor, wait_until
from tests.integration.feedback.conftest import Feedback
from tests.integration.feedback.conftest import feedback_factory as feedback_factory  # fixture
from tests.integration.router.conftest import Router, contact
from tests.integration.sla.conftest import SlaFactory

TEXT = "Please call me back about my account."


async def test_a_key_account_made_in_feedback_is_routed_to_vip_care_and_gets_its_sla(
    kafka_bootstrap: str, feedback_factory: Callable[..., Awaitable[Feedback]]
) -> None:
    suffix = f".test-{uuid.uuid4().hex[:8]}"
    sla_name = f"sla-t{uuid.uuid4().hex[:10]}"
    await ensure_topics(kafka_bootstrap, prefix=TOPIC_PREFIX)
    feedback_topic = [topic(FEEDBACK_EVENTS)]
    # Every router group at the end of its topics: from the beginning, its contacts group
    # would first open a ticket for every contact earlier tests published, and SLA would
    # start their clocks before this test's (it took 17 s to over 60 s in the full suite).
    await groups_at_end(kafka_bootstrap, "router", suffix, CONSUMERS)
    await commit_group_at_end(kafka_bootstrap, f"{sla_name}.customer-segments", feedback_topic)
    await commit_group_at_end(kafka_bootstrap, f"{sla_name}.ticket-clocks", [topic(ROUTER_TICKETS)])
    feedback = await feedback_factory()
    async with scratch_database() as router_db, scratch_database() as sla_db:
        slas = SlaFactory(sla_db, kafka_bootstrap, sla_name)
        sla = await slas.start()
        key_policy = {
            "id": "key-accounts",
            "name": "Key accounts",
            "rank": 1,
            "conditions": {"segment": ["key_account"]},
            "targets": {"first_response": 900, "resolution": 4 * 3600},
            "calendar_id": "24x7",
        }
        assert (await sla.client.post("/v1/policies", json=key_policy)).status_code == 201
        app = create_app(
            RouterSettings(
                database_url=SecretStr(router_db),
                kafka_bootstrap=kafka_bootstrap,
                log_json=False,
                consumer_group_suffix=suffix,
                assign_in_background=False,
                outbox_poll_interval_s=0.1,
            )
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://r", headers=as_supervisor()
        )
        try:
            router = Router(app, client)
            customer = uuid.uuid4()

            async def registered(segment: str | None, version: int) -> bool:
                rows = await router.sql(
                    "SELECT segment, version FROM customer_segments WHERE customer_id = :c",
                    c=customer,
                )
                return bool(rows) and (rows[0].segment, rows[0].version) == (segment, version)

            # A key account whose first call-back is due: feedback publishes its segment, then
            # (scheduler) the call-back, both in the customer's partition.
            created = await feedback.client.post(
                "/v1/key-accounts",
                json={
                    "customer_id": str(customer),
                    "name": "ACME",
                    "relationship_started_at": (datetime.now(UTC) - timedelta(days=40)).isoformat(),
                    "channel": "phone",
                    "first_callback_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
                },
            )
            assert created.status_code == 201, created.text
            await wait_until(lambda: registered("key_account", 1), timeout=60)

            async def call_back() -> Any:
                rows = await router.sql(
                    "SELECT segment, queue_id FROM tickets "
                    "WHERE customer_id = :c AND category = 'follow_up'",
                    c=customer,
                )
                return rows[0] if rows else None

            callback = await wait_until(call_back, timeout=60)
            assert (callback.segment, callback.queue_id) == ("key_account", "vip")

            # Each on a channel of its own, so it opens a ticket rather than joining one.
            ticket_id = await router.receive(contact(customer, channel="chat", text_=TEXT))
            ticket = await router.ticket(ticket_id)
            assert ticket["follow_up_of"] is None
            assert ticket["category"] != "follow_up"
            assert (ticket["segment"], ticket["queue_id"]) == ("key_account", "vip")

            async def sla_policy() -> Any:
                response = await sla.client.get(f"/v1/tickets/{ticket_id}/sla")
                return response.json()["policy_id"] if response.status_code == 200 else None

            assert await wait_until(sla_policy, timeout=60) == "key-accounts"

            patched = await feedback.client.patch(
                f"/v1/key-accounts/{customer}", json={"active": False}
            )
            assert patched.status_code == 200, patched.text
            await wait_until(lambda: registered(None, 2), timeout=60)
            later = await router.receive(contact(customer, channel="email", text_=TEXT))
            ticket = await router.ticket(later)
            assert ticket["segment"] is None
            assert ticket["queue_id"] != "vip"

            async def sla_policy_later() -> Any:
                response = await sla.client.get(f"/v1/tickets/{later}/sla")
                return response.json()["policy_id"] if response.status_code == 200 else None

            assert (await wait_until(sla_policy_later, timeout=60)).startswith("default-")
        finally:
            await client.aclose()
            await lifespan.__aexit__(None, None, None)
            for running in list(slas.running):
                await slas.stop(running)
