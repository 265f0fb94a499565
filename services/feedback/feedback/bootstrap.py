"""Assembles the feedback service's own parts at start-up (`FeedbackParts`: the webhook HTTP
client and the scheduler that sends due surveys and delivers webhooks) and takes them down at
stop. Endpoints reach them through `parts_of`, typed."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from ccshared.service import Runtime
from ccshared.webhook_transport import webhook_client
from feedback.settings import FeedbackSettings
from feedback.tasks.scheduler import FeedbackScheduler


@dataclass(frozen=True)
class FeedbackParts:
    http: httpx.AsyncClient
    scheduler: FeedbackScheduler


def parts_of(runtime: Runtime) -> FeedbackParts:
    """The running service's parts (set by `start`)."""
    parts = runtime.parts
    if not isinstance(parts, FeedbackParts):
        raise RuntimeError("the feedback service has not started")
    return parts


async def start(runtime: Runtime, settings: FeedbackSettings) -> None:
    # Redirects are not followed: a webhook URL answering 3xx is misconfigured, and following
    # it would send signed survey links somewhere nobody registered. Nor does the client
    # connect to any address the rules refuse (see webhook_transport).
    http = webhook_client(settings.webhook_address_rules())
    scheduler = FeedbackScheduler(runtime.engine, settings, http, runtime.tracer)
    scheduler.start()
    runtime.parts = FeedbackParts(http=http, scheduler=scheduler)


async def stop(runtime: Runtime, settings: FeedbackSettings) -> None:
    parts = parts_of(runtime)
    await parts.scheduler.stop(settings.shutdown_grace_s)
    await parts.http.aclose()
