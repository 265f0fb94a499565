"""OpenTelemetry traces: one contact is one trace, from intake's POST through the services that
take its events.

The W3C trace context (`traceparent`) travels with every event: the outbox row stores it in its
`headers` column, the relay sends those as Kafka headers, the consumer continues the trace in a
span per record it takes (`consume_span`), and the events written while that record has its
effect carry that span as their parent. A consumer often writes a whole batch of events in one
statement, outside any one record's context; so an event is matched to its cause by its
correlation id (every event carries the one of the request or event that caused it): the
consumer remembers the span of the last records of each correlation id it took
(`remember`), and an outbox row takes the span of its event's correlation id, else the span
current where it is written (an HTTP request's).

What happens later to a contact's ticket stays in its trace too: the router keeps the
`traceparent` that opened the ticket and feedback the one of the resolution that scheduled a
survey, and the work they do later for it (an agent's resolve, the scheduler's sending) runs in
a span `continuing` that context, linked to the span that started the work (the agent's
request): the events written within carry it.

Off by default, and then free: no provider is made, `_active` stays False and every function
here returns at its first line. On when `<SERVICE>_TRACING_OTLP_ENDPOINT` is set (spans sent by
OTLP over HTTP, in batches), or when a test or an embedding program installs a span processor
with `use_span_processor`.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import Scope

from ccshared.logging import correlation_id

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_REMEMBERED = 10_000  # correlation ids whose consumer span is kept for the events they cause

_active = False  # some service of this process traces
# The spans remembered by correlation id: each consumer's loop calls `own_memory` first, so
# that neither several services in one process (tests) nor a service's consumers taking records
# of one correlation id at once (the resolution's ticket event and SLA's event for it) take each
# other's spans for the events they write.


class _Memory(collections.OrderedDict[str, Span]):
    """Spans by correlation id, the oldest dropped beyond `limit`."""

    def __init__(self, limit: int = _REMEMBERED) -> None:
        super().__init__()
        self.limit = limit


_PROCESS_MEMORY = _Memory()  # the memory of a process that never called own_memory()
_memory: ContextVar[_Memory | None] = ContextVar("ccshared_trace_memory", default=None)
_processor_factory: Callable[[str], SpanProcessor] | None = None
# The tracer of the service whose request is being served, in the request's context (so that
# code deep in a request can start spans without being handed the tracer).
_TRACER = otel_context.create_key("ccshared-tracer")


def use_span_processor(factory: Callable[[str], SpanProcessor] | None) -> None:
    """Services started from now on trace, each through `factory(service_name)`'s processor
    (e.g. a SimpleSpanProcessor over an InMemorySpanExporter in a test); None: back to the
    settings alone, and (tests) no longer active for this process's later services."""
    global _processor_factory, _active
    _processor_factory = factory
    if factory is None:
        _active = False


def make_tracer(
    service_name: str, otlp_endpoint: str | None, sample_ratio: float = 1.0
) -> tuple[Tracer, TracerProvider] | None:
    """The service's tracer and its provider (to shut down at stop), or None when tracing is
    off. A provider of its own, not the global one: several services in one process (tests)
    each name themselves."""
    global _active
    if _processor_factory is not None:
        processor: SpanProcessor = _processor_factory(service_name)
    elif otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint))
    else:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    provider.add_span_processor(processor)
    _active = True
    log.info("tracing on for %s", service_name)
    return provider.get_tracer("ccshared"), provider


def active() -> bool:
    return _active


# -- carrying the context -------------------------------------------------------------------


def _traceparent(span: Span) -> str | None:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def traceparent_for(correlation_id: str | None = None) -> str | None:
    """The `traceparent` an event of this correlation id carries: the span that took its cause,
    else the current one; None when tracing is off or there is no span."""
    if not _active:
        return None
    if correlation_id is not None:
        span = _current_memory().get(correlation_id)
        if span is not None:
            return _traceparent(span)
    return _traceparent(trace.get_current_span())


def headers_json(correlation_id: str | None = None) -> str:
    """The outbox row's `headers` column: `{}`, or the trace context when traced."""
    if not _active:
        return "{}"
    parent = traceparent_for(correlation_id)
    return "{}" if parent is None else orjson.dumps({TRACEPARENT: parent}).decode()


def with_trace(headers: dict[str, str] | None, correlation_id: str | None) -> dict[str, str]:
    """`headers` with the trace context added (if traced and not already there)."""
    found = dict(headers or {})
    if _active and TRACEPARENT not in found:
        parent = traceparent_for(correlation_id)
        if parent is not None:
            found[TRACEPARENT] = parent
    return found


def remember(correlation_id: str | None, span: Span) -> None:
    """Events of this correlation id written from now on are children of `span`."""
    if correlation_id is None:
        return
    memory = _current_memory()
    memory[correlation_id] = span
    memory.move_to_end(correlation_id)
    while len(memory) > memory.limit:
        memory.popitem(last=False)


def _current_memory() -> _Memory:
    memory = _memory.get()
    return _PROCESS_MEMORY if memory is None else memory


def own_memory(limit: int = _REMEMBERED) -> None:
    """The current context, and the tasks started from it from now on, remember spans apart
    from the rest of the process (each consumer's loop calls it first), the newest `limit` of
    them."""
    _memory.set(_Memory(limit))


def _context_from(headers: Sequence[tuple[str, bytes]] | None) -> Context | None:
    for name, value in headers or ():
        if name == TRACEPARENT:
            return _PROPAGATOR.extract({TRACEPARENT: bytes(value).decode("latin-1")})
    return None


def consume_span(
    tracer: Tracer,
    *,
    topic: str,
    partition: int,
    offset: int,
    headers: Sequence[tuple[str, bytes]] | None,
    event_type: str,
    event_id: str,
    correlation_id: str | None,
    group: str,
) -> Span:
    """A span for one record a consumer takes, child of the span that wrote its event; the
    events its handler writes (by correlation id) become its children. The caller ends it."""
    span = tracer.start_span(
        f"{topic} process",
        context=_context_from(headers),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation": "process",
            "messaging.destination.name": topic,
            "messaging.kafka.destination.partition": partition,
            "messaging.kafka.message.offset": offset,
            "messaging.consumer.group.name": group,
            "cc.event_type": event_type,
            "cc.event_id": event_id,
        },
    )
    remember(correlation_id, span)
    return span


# -- HTTP -----------------------------------------------------------------------------------


def start_server_span(tracer: Tracer, scope: Scope) -> tuple[Span, Token[Context]]:
    """A server span for the request, continuing the caller's `traceparent`; current until
    `end_server_span`."""
    carrier = {}
    for name, value in scope.get("headers", ()):
        if name == b"traceparent":
            carrier[TRACEPARENT] = value.decode("latin-1")
    parent = _PROPAGATOR.extract(carrier) if carrier else None
    span = tracer.start_span(
        f"{scope.get('method', 'GET')} request",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": scope.get("method", "GET")},
    )
    token = otel_context.attach(
        trace.set_span_in_context(span, otel_context.set_value(_TRACER, tracer))
    )
    return span, token


def end_server_span(
    span: Span, token: Token[Context] | None, method: str, route: str, status: int
) -> None:
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
    if token is not None:
        otel_context.detach(token)


# -- later work for a contact ---------------------------------------------------------------


def stored_traceparent() -> str | None:
    """The `traceparent` to keep with a row so that later work for it continues this trace:
    the span that took the current correlation id's cause (a consumer's record), else the
    current span; None when tracing is off."""
    if not _active:
        return None
    return traceparent_for(correlation_id.get())


@contextmanager
def continuing(
    traceparent: str | None,
    name: str,
    tracer: Tracer | None = None,
    attributes: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Within: a span `name`, child of the stored `traceparent` (the contact's trace) and
    linked to the span current at entry (the request or round that does the work), current so
    that the events written within carry it. `tracer`: the service's, else the one of the
    request being served. Nothing at all when tracing is off or nothing was stored."""
    if not _active or traceparent is None:
        yield
        return
    found = tracer or otel_context.get_value(_TRACER)
    span = start_continuing(
        traceparent, name, found if isinstance(found, Tracer) else None, attributes
    )
    if span is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    except BaseException as exc:
        failed(span, exc)
        raise
    finally:
        otel_context.detach(token)
        span.end()


def start_continuing(
    traceparent: str | None,
    name: str,
    tracer: Tracer | None,
    attributes: Mapping[str, str] | None = None,
) -> Span | None:
    """A span `name`, child of the stored `traceparent`, linked to the current span, for work
    done for many contacts in one statement (each its own span, none current): the caller
    puts `traceparent_of(span)` on that contact's events and ends the span once written.
    None when tracing is off or nothing was stored."""
    if not _active or traceparent is None or tracer is None:
        return None
    cause = trace.get_current_span().get_span_context()
    return tracer.start_span(
        name,
        context=_PROPAGATOR.extract({TRACEPARENT: traceparent}),
        kind=SpanKind.INTERNAL,
        links=[Link(cause)] if cause.is_valid else None,
        attributes=dict(attributes or {}),
    )


def failed(span: Span, exc: BaseException) -> None:
    """Mark `span` as failed by `exc` (before its owner ends it)."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR))


def traceparent_of(span: Span) -> str | None:
    """The `traceparent` of events that are children of `span`."""
    return _traceparent(span)


def shutdown(provider: Any) -> None:
    """Flush and stop a provider from `make_tracer`."""
    try:
        provider.shutdown()
    except Exception:  # a collector that is down must not block the stop
        log.warning("tracing shut-down failed", exc_info=True)
