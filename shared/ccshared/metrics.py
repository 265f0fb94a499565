"""Prometheus metrics every service serves on `/metrics` (prometheus-client, its default
registry).

Three kinds, chosen by what they cost on the hot path:

- Counted where it happens, cheaply: HTTP requests by route template (never the raw path: an
  id in a path would make a series per ticket) and status, with their latency; consumer batch
  processing time per topic; events published by the outbox relay, by event type (which also
  counts the domain's events: tickets assigned, SLA warnings, breaches and escalations,
  surveys requested and answered, contacts received); each service's own domain counters
  (`<service>/metrics.py`).
- Read from counters the parts keep anyway (`ConsumerStats`, `RelayStats`), at scrape time by
  `_RuntimeCollector`: nothing added per event.
- Sampled at scrape time (`sample`), within a deadline: consumer lag per partition (the
  highwater Kafka last reported against the consumer's position), the outbox's backlog and the
  age of its oldest row, the parked rows, the dead letters waiting.

One process per pod (the image runs uvicorn with WORKERS=1; scale with replicas): each process
serves its own registry, so no multiprocess mode. Several services in one process (tests) keep
apart by the `service` label.

Who may call `/metrics`: anyone who reaches the pod's port, unless `<SERVICE>_METRICS_TOKEN` is
set, when it takes `Authorization: Bearer <token>`. It is meant for the in-cluster scraper, and
the public ingress does not route it. It shows counts and names of routes and topics, no data.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import hmac
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccshared import tracing
from ccshared.problem_handlers import problem_response, problem_responses

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

# A running service (ccshared.service.Runtime) and its consumers (ccshared.consumer), typed
# loosely here: both modules import this one.
Runtime = Any
IdempotentConsumer = Any

log = logging.getLogger(__name__)

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONSUMER_BATCH_DURATION = Histogram(
    "cc_consumer_batch_duration_seconds",
    "Time a consumer took over one fetched batch of a topic, in its transaction(s)",
    ["group", "topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EVENTS_PUBLISHED = Counter(
    "cc_events_published",
    "Events the outbox relay published to Kafka, by event type",
    ["service", "event_type"],
)

# Route label of a request no route matched: one series for every unknown path.
UNMATCHED = "<unmatched>"
# Counted, but no span: the probes and the scraper would fill the traces with their polling.
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


def route_of(scope: Scope) -> str:
    """The template of the route that answered (`/v1/tickets/{ticket_id}`), never the path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app = scope.get("app")
    root = scope.get("root_path", "")
    for mount in getattr(getattr(app, "router", None), "routes", ()):  # mounts (static assets)
        mount_path = getattr(mount, "path", "")
        if mount_path and scope.get("path", "").startswith(root + mount_path + "/"):
            return mount_path + "/*"
    return UNMATCHED


class ObservabilityMiddleware:
    """Counts and times every HTTP request by route template and status and, when tracing is
    on, makes it a server span (continuing the caller's W3C `traceparent`). `route`: the
    template of the one route `app` serves (a path answered outside the router)."""

    def __init__(
        self, app: ASGIApp, service: str, tracer: Tracer | None = None, route: str | None = None
    ) -> None:
        self.app = app
        self.service = service
        self.tracer = tracer
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering, the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        span = None
        token = None
        if self.tracer is not None and scope.get("path") not in UNTRACED:
            span, token = tracing.start_server_span(self.tracer, scope)
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = self.route or route_of(scope)
            method = scope.get("method", "GET")
            if span is not None:
                tracing.end_server_span(span, token, method, route, status)
            HTTP.observe(self.service, method, route, status, time.perf_counter() - started)


class _HttpStats(Collector):
    """`cc_http_requests_total` and `cc_http_request_duration_seconds`, kept in plain dicts and
    turned into families at scrape time: on the hot path a request costs two dict updates and
    a bisect (prometheus-client's Counter and Histogram took ~8 us a request between them, their
    locks included; a process serves from one event loop, so none is needed)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str, int], int] = {}
        self.timings: dict[tuple[str, str, str], list[float]] = {}  # buckets..., +Inf, sum

    def observe(self, service: str, method: str, route: str, status: int, took: float) -> None:
        key = (service, method, route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        series = self.timings.get(key[:3])
        if series is None:
            series = self.timings[key[:3]] = [0.0] * (len(HTTP_BUCKETS) + 2)
        series[bisect.bisect_left(HTTP_BUCKETS, took)] += 1
        series[-1] += took

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "cc_http_requests",
            "HTTP requests answered, by route template and status",
            labels=["service", "method", "route", "status"],
        )
        for (service, method, route, status), n in list(self.counts.items()):
            requests.add_metric([service, method, route, str(status)], n)
        durations = HistogramMetricFamily(
            "cc_http_request_duration_seconds",
            "HTTP request latency, by route template (until the response has been sent)",
            labels=["service", "method", "route"],
        )
        bounds = [*(repr(b) for b in HTTP_BUCKETS), "+Inf"]
        for labels, series in list(self.timings.items()):
            cumulative = list(itertools.accumulate(series[:-1]))
            durations.add_metric(
                list(labels), list(zip(bounds, cumulative, strict=True)), series[-1]
            )
        yield requests
        yield durations


HTTP = _HttpStats()
REGISTRY.register(HTTP)


# -- sampled at scrape time ---------------------------------------------------------------

_OUTBOX_SAMPLE = text(
    "SELECT (SELECT count(*) FROM outbox) AS backlog, "
    "(SELECT extract(epoch FROM now() - created_at) FROM outbox ORDER BY id LIMIT 1) AS age, "
    "(SELECT count(*) FROM outbox_parked) AS parked"
)
SAMPLE_DEADLINE_S = 3.0


@dataclass
class Sample:
    """What `/metrics` measured last, per service; None: could not be measured."""

    outbox_backlog: int | None = None
    outbox_oldest_age_s: float | None = None
    parked: int | None = None
    lag: dict[tuple[str, str, int], int] = field(default_factory=dict)  # group, topic, partition


async def consumer_lag(consumer: IdempotentConsumer) -> dict[tuple[str, str, int], int]:
    """Per partition held: the highwater Kafka last reported, less the consumer's position."""
    client = consumer._consumer
    if client is None:
        return {}
    lags: dict[tuple[str, str, int], int] = {}
    for tp in client.assignment():
        highwater = client.highwater(tp)
        if highwater is None:
            continue  # nothing fetched from it yet
        try:
            position = await client.position(tp)
        except Exception:  # noqa: BLE001, S112 - revoked meanwhile: not ours to report
            continue
        lags[(consumer.group_id, tp.topic, tp.partition)] = max(highwater - position, 0)
    return lags


async def sample(runtime: Runtime) -> Sample:
    """The outbox's, the parked rows' and the consumers' numbers now; a part that does not
    answer within the deadline is left out (the scrape still answers)."""
    taken = Sample()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(SAMPLE_DEADLINE_S), runtime.engine.connect() as conn:
            row = (await conn.execute(_OUTBOX_SAMPLE)).one()
            taken.outbox_backlog = int(row.backlog)
            taken.outbox_oldest_age_s = float(row.age) if row.age is not None else 0.0
            taken.parked = int(row.parked)
    for consumer in runtime.consumers:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SAMPLE_DEADLINE_S):
                taken.lag.update(await consumer_lag(consumer))
    return taken


class _RuntimeCollector(Collector):
    """Families read from the running services' own counters and their last sample."""

    def __init__(self) -> None:
        self.runtimes: dict[int, Runtime] = {}
        self.samples: dict[int, Sample] = collections.defaultdict(Sample)

    def collect(self) -> Iterator[Any]:
        events = CounterMetricFamily(
            "cc_consumer_events",
            "Events a consumer took: processed, duplicate (seen before), skipped (other "
            "types), retried, dead_lettered",
            labels=["service", "group", "outcome"],
        )
        lag = GaugeMetricFamily(
            "cc_consumer_lag",
            "Records not yet taken, per partition held: highwater less position",
            labels=["service", "group", "topic", "partition"],
        )
        published = CounterMetricFamily(
            "cc_outbox_published", "Outbox rows published to Kafka", labels=["service"]
        )
        failures = CounterMetricFamily(
            "cc_outbox_relay_failures",
            "Outbox relay errors (each retried with backoff)",
            labels=["service"],
        )
        parked_total = CounterMetricFamily(
            "cc_outbox_parked", "Outbox rows this process parked", labels=["service"]
        )
        leader = GaugeMetricFamily(
            "cc_outbox_relay_leader",
            "1 if this process's relay holds the outbox lock (one per database publishes)",
            labels=["service"],
        )
        backlog = GaugeMetricFamily(
            "cc_outbox_backlog", "Rows waiting in the outbox", labels=["service"]
        )
        age = GaugeMetricFamily(
            "cc_outbox_oldest_age_seconds",
            "Age of the oldest row waiting in the outbox (0 when empty)",
            labels=["service"],
        )
        parked = GaugeMetricFamily(
            "cc_outbox_parked_rows",
            "Rows in outbox_parked, refused by Kafka for good, waiting for an operator",
            labels=["service"],
        )
        dlq = GaugeMetricFamily(
            "cc_dlq_waiting",
            "Dead letters waiting past the handled mark, per dead-letter topic (counted every "
            "DLQ_CHECK_INTERVAL_S)",
            labels=["service", "topic"],
        )
        for key, runtime in list(self.runtimes.items()):
            service = runtime.settings.service_name
            relay = runtime.relay.stats
            published.add_metric([service], relay.published)
            failures.add_metric([service], relay.failures)
            parked_total.add_metric([service], relay.parked)
            leader.add_metric([service], 1.0 if relay.is_leader else 0.0)
            for consumer in runtime.consumers:
                s = consumer.stats
                for outcome, value in (
                    ("processed", s.processed),
                    ("duplicate", s.duplicates),
                    ("skipped", s.skipped),
                    ("retried", s.retries),
                    ("dead_lettered", s.dead_lettered),
                ):
                    events.add_metric([service, consumer.group_id, outcome], value)
            taken = self.samples.get(key)
            if taken is not None:
                for (group, topic, partition), value in sorted(taken.lag.items()):
                    lag.add_metric([service, group, topic, str(partition)], value)
                if taken.outbox_backlog is not None:
                    backlog.add_metric([service], taken.outbox_backlog)
                if taken.outbox_oldest_age_s is not None:
                    age.add_metric([service], taken.outbox_oldest_age_s)
                if taken.parked is not None:
                    parked.add_metric([service], taken.parked)
            watch = runtime.dead_letters
            if watch is not None:
                for topic in watch.topics:
                    dlq.add_metric([service, topic], watch.last.get(topic, 0))
        yield from (events, lag, published, failures, parked_total, leader, backlog, age, parked)
        yield dlq


COLLECTOR = _RuntimeCollector()
REGISTRY.register(COLLECTOR)


def track(runtime: Runtime) -> None:
    COLLECTOR.runtimes[id(runtime)] = runtime


def untrack(runtime: Runtime) -> None:
    COLLECTOR.runtimes.pop(id(runtime), None)
    COLLECTOR.samples.pop(id(runtime), None)


def metrics_router(token: str | None) -> APIRouter:
    """`/metrics` in Prometheus' text format; with `token`, only for `Bearer <token>`."""
    router = APIRouter(tags=["health"])
    expected = f"Bearer {token}".encode() if token else None

    @router.get(
        "/metrics",
        summary="Prometheus metrics (for the in-cluster scraper; see ccshared.metrics)",
        response_class=Response,
        responses=problem_responses({401: "METRICS_TOKEN is set and was not given"}),
    )
    async def metrics(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return problem_response(
                    request,
                    status=401,
                    slug="unauthorized",
                    detail="/metrics takes the metrics token: Authorization: Bearer <token>.",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            COLLECTOR.samples[id(runtime)] = await sample(runtime)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
