"""The catalog is the system's data-flow picture: every event type a service's consumers take
is listed with that service among its consumers, and the other way round."""

from __future__ import annotations

import pytest

from ccshared.events.catalog import CATALOG
from ccshared.service import ConsumerSpec


def _specs(service: str) -> list[ConsumerSpec]:
    if service == "router":
        from router.consumers import CONSUMERS

        return CONSUMERS
    if service == "sla":
        from sla.consumers.segments import CUSTOMER_SEGMENTS
        from sla.consumers.tickets import TICKET_CLOCKS

        return [TICKET_CLOCKS, CUSTOMER_SEGMENTS]
    if service == "intake":
        from intake.consumers.customers import CUSTOMER_MERGES
        from intake.consumers.outbound import OUTBOUND_MESSAGES
        from intake.consumers.tickets import TICKET_LINKS

        return [TICKET_LINKS, CUSTOMER_MERGES, OUTBOUND_MESSAGES]
    from feedback.consumers.contacts import contacts_consumer
    from feedback.consumers.customers import customers_consumer
    from feedback.consumers.sla import sla_consumer
    from feedback.consumers.tickets import tickets_consumer
    from feedback.settings import FeedbackSettings

    settings = FeedbackSettings()
    return [
        tickets_consumer(settings),
        sla_consumer(settings),
        contacts_consumer(settings),
        customers_consumer(settings),
    ]


@pytest.mark.parametrize("service", ["intake", "router", "sla", "feedback"])
def test_each_service_consumes_exactly_the_event_types_the_catalog_lists_for_it(
    service: str,
) -> None:
    taken = {t for spec in _specs(service) for t in spec.event_types or ()}
    listed = {e.event_type for e in CATALOG.events_consumed_by(service)}
    assert taken == listed


def test_the_router_takes_each_tickets_next_deadline_from_sla() -> None:
    spec = CATALOG.events["sla.deadline_changed"]
    assert spec.topic == "sla.events"
    assert spec.consumers == ("router",)
    assert "next_deadline" in spec.payload.model_fields
    assert "version" in spec.payload.model_fields
