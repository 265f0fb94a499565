"""HTTP metrics are labelled by route template, never by the raw path (ccshared.metrics)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from ccshared.metrics import UNMATCHED, ObservabilityMiddleware


async def test_requests_are_counted_by_route_template_and_status() -> None:
    app = FastAPI()

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(ObservabilityMiddleware, service="unit-routes")

    def count(route: str, status: str) -> float:
        value = REGISTRY.get_sample_value(
            "cc_http_requests_total",
            {"service": "unit-routes", "method": "GET", "route": route, "status": status},
        )
        return value or 0.0

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for n in range(3):
            assert (await client.get(f"/v1/things/t{n}")).status_code == 200
        await client.get("/nowhere/123")
        await client.get("/nowhere/456")
        assert (await client.get("/boom")).status_code == 500

    assert count("/v1/things/{thing_id}", "200") == 3
    timing = {"service": "unit-routes", "method": "GET", "route": "/v1/things/{thing_id}"}
    assert REGISTRY.get_sample_value("cc_http_request_duration_seconds_count", timing) == 3
    inf = REGISTRY.get_sample_value(
        "cc_http_request_duration_seconds_bucket", timing | {"le": "+Inf"}
    )
    fast = REGISTRY.get_sample_value(
        "cc_http_request_duration_seconds_bucket", timing | {"le": "10.0"}
    )
    assert inf == fast == 3  # cumulative: every request is within the largest bound too
    assert (REGISTRY.get_sample_value("cc_http_request_duration_seconds_sum", timing) or 0) > 0
    assert count(UNMATCHED, "404") == 2
    assert count("/boom", "500") == 1
    paths = {
        s.labels["route"]
        for f in REGISTRY.collect()
        if f.name == "cc_http_requests"
        for s in f.samples
        if s.labels.get("service") == "unit-routes"
    }
    assert paths == {"/v1/things/{thing_id}", UNMATCHED, "/boom"}
