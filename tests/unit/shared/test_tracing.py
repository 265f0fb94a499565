"""Trace context on events (ccshared.tracing): none at all while tracing is off; when on, an
outbox row carries the span of its correlation id's cause, else the current span."""

from __future__ import annotations

import uuid

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ccshared import tracing
from ccshared.events import new_event
from ccshared.events.envelope import Envelope
from ccshared.events.payloads import SlaMet
from ccshared.logging import correlation_id
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


def _recorded() -> tuple[trace.Tracer, InMemorySpanExporter]:
    """A tracer whose finished spans the exporter keeps."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


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


def test_continuing_is_nothing_while_tracing_is_off_or_nothing_was_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "_active", False)
    tracer = TracerProvider().get_tracer("test")
    assert tracing.stored_traceparent() is None
    stored = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    with (
        tracer.start_as_current_span("request") as request,
        tracing.continuing(stored, "ticket resolve", tracer),
    ):
        assert trace.get_current_span() is request  # no span of its own
        assert outbox_tuples([_event("c1")])[0][5] == "{}"
    monkeypatch.setattr(tracing, "_active", True)
    with (
        tracer.start_as_current_span("request") as request,
        tracing.continuing(None, "ticket resolve", tracer),  # an untraced ticket
    ):
        assert trace.get_current_span() is request


def test_continuing_makes_a_child_of_the_stored_trace_linked_to_the_request_and_rows_carry_it(
    tracing_on: trace.Tracer,
) -> None:
    tracer, exporter = _recorded()
    contact_span = tracer.start_span("intake.contacts process")
    tracing.remember("contact-9", contact_span)
    token = correlation_id.set("contact-9")
    try:
        stored = tracing.stored_traceparent()  # kept with the ticket as it opens
    finally:
        correlation_id.reset(token)
    contact_span.end()
    assert stored is not None
    assert stored.split("-")[2] == f"{contact_span.get_span_context().span_id:016x}"

    with tracer.start_as_current_span("POST /v1/tickets/{ticket_id}/resolve") as request:
        with tracing.continuing(stored, "ticket resolve", tracer, {"cc.ticket_id": "t-1"}):
            headers = orjson.loads(outbox_tuples([_event("request-1")])[0][5])
        assert trace.get_current_span() is request  # the request's span is current again
    [resolve] = [s for s in exporter.get_finished_spans() if s.name == "ticket resolve"]
    assert resolve.context.trace_id == contact_span.get_span_context().trace_id
    assert resolve.parent is not None
    assert resolve.parent.span_id == contact_span.get_span_context().span_id
    [link] = resolve.links
    assert link.context.span_id == request.get_span_context().span_id
    assert resolve.attributes == {"cc.ticket_id": "t-1"}
    # The event written within continues the contact's trace, not the request's.
    assert headers["traceparent"].split("-")[1:3] == [
        f"{resolve.context.trace_id:032x}",
        f"{resolve.context.span_id:016x}",
    ]


def test_events_written_for_many_contacts_at_once_each_continue_their_own_contacts_trace(
    tracing_on: trace.Tracer,
) -> None:
    stored = [f"00-{n:032x}-{n:016x}-01" for n in (1, 2)]  # two contacts' traces
    first, second, untraced = _event("round"), _event("round"), _event("round")
    with tracing_on.start_as_current_span("assignment round") as round_span:
        started = [
            tracing.start_continuing(parent, "ticket offer", tracing_on, {"cc.ticket_id": t})
            for parent, t in zip(stored, ("t-1", "t-2"), strict=True)
        ]
        spans = [span for span in started if span is not None]
        assert len(spans) == 2
        assert trace.get_current_span() is round_span  # none was made current
        parents = {
            event.event_id: parent
            for event, span in zip((first, second), spans, strict=True)
            if (parent := tracing.traceparent_of(span)) is not None
        }
        rows = outbox_tuples([first, second, untraced], parents)
    got = [orjson.loads(row[5])["traceparent"].split("-") for row in rows]
    # Each its own contact's trace, as a child of its own span; the third the current span's.
    for (_, trace_id, span_id, _), span, n in zip(got, spans, (1, 2), strict=False):
        assert int(trace_id, 16) == n
        assert int(span_id, 16) == span.get_span_context().span_id
    assert int(got[2][1], 16) == round_span.get_span_context().trace_id
    # Linked to the round that did the work.
    assert [link.context.span_id for link in spans[0].links] == [
        round_span.get_span_context().span_id
    ]


def test_start_continuing_is_nothing_while_off_untraced_or_without_a_tracer(
    monkeypatch: pytest.MonkeyPatch, tracing_on: trace.Tracer
) -> None:
    stored = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    assert tracing.start_continuing(None, "ticket offer", tracing_on) is None
    assert tracing.start_continuing(stored, "ticket offer", None) is None
    monkeypatch.setattr(tracing, "_active", False)
    assert tracing.start_continuing(stored, "ticket offer", tracing_on) is None


def test_a_failed_span_records_its_exception_and_an_error_status(
    tracing_on: trace.Tracer,
) -> None:
    tracer, exporter = _recorded()
    span = tracing.start_continuing(
        "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "ticket offer", tracer
    )
    assert span is not None
    tracing.failed(span, RuntimeError("the offers statement failed"))
    span.end()
    [done] = exporter.get_finished_spans()
    assert done.status.status_code.name == "ERROR"
    assert [e.name for e in done.events] == ["exception"]


def test_a_memory_keeps_only_its_newest_spans(tracing_on: trace.Tracer) -> None:
    """A consumer's memory is bounded (each keeps its own): the oldest spans go first."""
    tracing.own_memory(limit=3)
    spans = {f"c{i}": tracing_on.start_span(f"record {i}") for i in range(5)}
    for correlation, span in spans.items():
        tracing.remember(correlation, span)
    for correlation, span in spans.items():
        parent = tracing.traceparent_for(correlation)  # no current span to fall back on
        if correlation in {"c0", "c1"}:
            assert parent is None, correlation
        else:
            assert parent is not None, correlation
            assert parent.split("-")[2] == f"{span.get_span_context().span_id:016x}"
