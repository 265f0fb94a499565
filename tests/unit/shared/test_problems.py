"""Problem details and the HTTP middleware, on a bare app (no database, no Kafka)."""

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from ccshared.http import BodySizeLimitMiddleware, CorrelationIdMiddleware
from ccshared.problem_handlers import install_problem_handlers
from ccshared.problems import Conflict


class Item(BaseModel):
    name: str = Field(min_length=1)
    qty: int


def _app() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/items")
    async def create(item: Item) -> dict[str, str]:
        if item.name == "dup":
            raise Conflict("an item named dup exists", extra={"existing_id": "i-1"})
        if item.name == "boom":
            raise RuntimeError("password=hunter2 leaked?")
        if item.name == "db-down":
            raise ConnectionRefusedError(111, "Connection refused")
        return {"ok": item.name}

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=200)
    app.add_middleware(CorrelationIdMiddleware)
    return TestClient(app, raise_server_exceptions=False)


def test_validation_error_names_each_field_at_fault() -> None:
    response = _app().post("/items", json={"name": "", "qty": "many"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422
    assert body["type"].endswith("/validation-error")
    assert {e["field"] for e in body["errors"]} == {"body.name", "body.qty"}


def test_non_json_body_is_a_4xx_problem() -> None:
    response = _app().post(
        "/items", content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"


def test_domain_problem_keeps_status_and_extra_members() -> None:
    response = _app().post("/items", json={"name": "dup", "qty": 1})
    assert response.status_code == 409
    assert response.json()["existing_id"] == "i-1"
    assert response.json()["detail"] == "an item named dup exists"


def test_unknown_route_is_a_problem_too() -> None:
    response = _app().get("/nowhere")
    assert response.status_code == 404
    assert response.json()["type"].endswith("/not-found")


def test_unexpected_error_is_500_without_leaking_its_message() -> None:
    response = _app().post("/items", json={"name": "boom", "qty": 1})
    assert response.status_code == 500
    assert "hunter2" not in response.text
    assert response.json()["correlation_id"] == response.headers["x-correlation-id"]


def test_oversized_body_is_413_before_validation() -> None:
    response = _app().post("/items", json={"name": "x" * 500, "qty": 1})
    assert response.status_code == 413
    assert response.json()["type"].endswith("/payload-too-large")


def test_oversized_chunked_body_is_413() -> None:
    def chunks():  # no content-length: the limit must count what arrives
        for _ in range(10):
            yield b"x" * 50

    response = _app().post("/items", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_correlation_id_from_caller_is_echoed() -> None:
    response = _app().post(
        "/items", json={"name": "a", "qty": 1}, headers={"X-Request-ID": "abc-1"}
    )
    assert response.headers["x-correlation-id"] == "abc-1"


def test_unsafe_correlation_id_is_replaced() -> None:
    response = _app().post(
        "/items", json={"name": "a", "qty": 1}, headers={"X-Correlation-ID": "<script>"}
    )
    assert response.headers["x-correlation-id"] != "<script>"


def test_an_unreachable_dependency_is_a_503_to_retry_not_a_500() -> None:
    # Found by `make chaos`: the router's endpoints answered 500 while PostgreSQL restarted.
    response = _app().post("/items", json={"name": "db-down", "qty": 1})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"].endswith("/unavailable")
    assert _app().post("/items", json={"name": "boom", "qty": 1}).status_code == 500
