"""`/metrics`: what a service reports, by route template, and who may read it."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from router.app import create_app
from router.settings import RouterSettings
from tests.helpers import as_supervisor, wait_until


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _settings(database: str, bootstrap: str, **extra: object) -> RouterSettings:
    return RouterSettings(
        service_name=f"router-m{uuid.uuid4().hex[:6]}",
        database_url=SecretStr(database),
        kafka_bootstrap=bootstrap,
        log_json=False,
        consumer_group_suffix=f".m-{uuid.uuid4().hex[:8]}",
        **extra,
    )


async def test_metrics_report_http_by_route_template_consumers_outbox_and_dead_letters(
    fresh_database: str, kafka_bootstrap: str
) -> None:
    settings = _settings(fresh_database, kafka_bootstrap)
    service = settings.service_name
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        await wait_until(lambda: _connected(app))
        ids = [uuid.uuid4() for _ in range(3)]
        for ticket_id in ids:  # three different paths, one route
            answer = await client.get(f"/v1/tickets/{ticket_id}", headers=as_supervisor())
            assert answer.status_code == 404
        await client.get(f"/no/such/path/{uuid.uuid4()}")

        async def scraped() -> list[tuple[str, dict[str, str], float]] | None:
            response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            found = _samples(response.text)
            lags = [s for s in found if s[0] == "cc_consumer_lag" and s[1]["service"] == service]
            return found if lags else None  # lag shows once the consumers fetched

        samples = await wait_until(scraped, timeout=30)

    def value(name: str, **labels: str) -> float | None:
        for sample_name, sample_labels, sample_value in samples:
            if sample_name == name and labels.items() <= sample_labels.items():
                return sample_value
        return None

    ticket_route = "/v1/tickets/{ticket_id}"
    assert value("cc_http_requests_total", service=service, route=ticket_route, status="404") == 3
    assert value("cc_http_request_duration_seconds_count", service=service, route=ticket_route) == 3
    # No series names a raw path: an unknown path is one series, "<unmatched>".
    routes = {s[1]["route"] for s in samples if s[0] == "cc_http_requests_total"}
    assert not any(str(i) in r for r in routes for i in ids)
    assert value("cc_http_requests_total", service=service, route="<unmatched>") == 1

    lag_topics = {s[1]["topic"] for s in samples if s[0] == "cc_consumer_lag"}
    assert settings.kafka_topic_prefix + "intake.contacts" in lag_topics
    assert value("cc_outbox_backlog", service=service) is not None
    assert value("cc_outbox_oldest_age_seconds", service=service) is not None
    assert value("cc_outbox_parked_rows", service=service) == 0
    assert value("cc_outbox_relay_leader", service=service) == 1
    assert value("cc_consumer_events_total", service=service, outcome="dead_lettered") == 0
    dlq_topics = {s[1]["topic"] for s in samples if s[0] == "cc_dlq_waiting"}
    assert settings.kafka_topic_prefix + "intake.contacts.dlq" in dlq_topics
    assert value("cc_router_offer_outcomes_total", outcome="timed_out") is not None


async def test_metrics_are_open_on_the_pod_port_unless_a_token_is_set(
    fresh_database: str, kafka_bootstrap: str
) -> None:
    token = uuid.uuid4().hex
    closed = _settings(fresh_database, kafka_bootstrap, metrics_token=SecretStr(token))
    app = create_app(closed)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        missing = await client.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert "cc_" not in missing.text
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        # A UI user's token is no key to the metrics either.
        assert (await client.get("/metrics", headers=as_supervisor())).status_code == 401
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200
        assert "cc_http_requests_total" in right.text

    # The same service (its migrations are applied), without the setting.
    open_app = create_app(closed.model_copy(update={"metrics_token": None}))
    async with (
        open_app.router.lifespan_context(open_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=open_app), base_url="http://r"
        ) as client,
    ):
        assert (await client.get("/metrics")).status_code == 200


async def _connected(app: object) -> bool:
    return bool(app.state.runtime.kafka_connected)  # type: ignore[attr-defined]
