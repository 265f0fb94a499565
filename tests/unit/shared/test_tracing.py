"""Trace context on events (ccshared.tracing): none at all while tracing is off; when on, an
outbox row carries the span of its correlation id's cause, else the current span."""

from __future__ import annotations

import uuid

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from ccshared import tracing
from ccshared.events import new_event
from ccshared.events.envelope import Envelope
from ccshared.events.payloads import SlaMet
from ccshared.outbox import outbox_row, outbox_tuples


def _event(correlation_id: str | None = None) -> Envelope:
    payload = SlaMet.model_validate(
        {
            "ticket_id": str(uuid.uuid4()),
            "metric": "first_response",
            "policy_id": "p",
            "policy_version": 1,
            "deadline": "2026-01-01T00:00:00Z",
            "met_at": "2026-01-01T00:00:00Z",
        }
    )
    return new_event(payload, producer="sla", correlation_id=correlation_id)


@pytest.fixture
def tracing_on(monkeypatch: pytest.MonkeyPatch) -> trace.Tracer:
    monkeypatch.setattr(tracing, "_active", True)
    tracing.own_memory()
    return TracerProvider().get_tracer("test")


def test_tracing_is_off_without_an_endpoint_and_rows_carry_no_trace_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "_active", False)
    assert tracing.make_tracer("router", None) is None
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request"):  # even under a span: off is off
        assert outbox_tuples([_event("c1")])[0][5] == "{}"
        assert orjson.loads(outbox_row(_event("c1"))["headers"]) == {}


def test_a_row_carries_the_current_span_as_its_traceparent(tracing_on: trace.Tracer) -> None:
    with tracing_on.start_as_current_span("request") as span:
        headers = orjson.loads(outbox_tuples([_event("unseen")])[0][5])
    context = span.get_span_context()
    version, trace_id, span_id, flags = headers.pop("traceparent").split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert int(flags, 16) & 1  # sampled
    assert headers == {}


def test_a_row_takes_the_span_that_took_its_correlation_ids_cause(
    tracing_on: trace.Tracer,
) -> None:
    consumer_span = tracing_on.start_span("intake.contacts process")
    tracing.remember("contact-7", consumer_span)
    with tracing_on.start_as_current_span("batch"):  # a batch handler's one context for all
        caused, other = outbox_tuples([_event("contact-7"), _event(None)])
    parent = orjson.loads(caused[5])["traceparent"]
    assert parent.split("-")[2] == f"{consumer_span.get_span_context().span_id:016x}"
    assert orjson.loads(other[5])["traceparent"].split("-")[2] != parent.split("-")[2]
    # A row given headers of its own keeps them, with the trace added.
    row = outbox_row(_event("contact-7"), {"x-origin": "replay"})
    assert orjson.loads(row["headers"]) == {"x-origin": "replay", "traceparent": parent}


def test_an_otlp_endpoint_turns_tracing_on_with_a_batching_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "_active", False)
    made = tracing.make_tracer("router", "http://127.0.0.1:9/v1/traces", sample_ratio=0.25)
    assert made is not None
    _tracer, provider = made
    assert tracing.active()
    [processor] = provider._active_span_processor._span_processors
    assert type(processor).__name__ == "BatchSpanProcessor"
    assert type(processor._batch_processor._exporter).__name__ == "OTLPSpanExporter"
    assert provider.resource.attributes["service.name"] == "router"
    assert "0.25" in provider.sampler.get_description()
    tracing.shutdown(provider)  # nothing to flush: returns at once
