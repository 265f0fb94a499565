"""Webhook subscriptions: integrations of a channel register where surveys are delivered.

An integration that delivers surveys itself consumes `survey.requested` from Kafka and registers
no webhook (or deactivates it): the event is published either way.
"""

from __future__ import annotations

import secrets
import uuid

from fastapi import APIRouter, Depends, Query, Request, Response

from ccshared.problem_handlers import problem_responses
from ccshared.problems import FieldError, NotFound, Problem, found_or_404
from ccshared.user_auth import AUTH_RESPONSES, supervisor
from ccshared.webhook_transport import check_webhook_url
from feedback.api.deps import engine_of, settings_of
from feedback.api.schemas import (
    Channel,
    WebhookCreated,
    WebhookIn,
    WebhookPatch,
    WebhookView,
)
from feedback.db import webhooks as db
from feedback.domain.webhooks import AddressRefused

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    dependencies=[Depends(supervisor)],
    responses=AUTH_RESPONSES,
)
_NOT_FOUND = problem_responses({404: "No such subscription"})


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    summary="Register a webhook for a channel's surveys",
    description=(
        "Each due survey (and its reminder) of the channel is POSTed as JSON with "
        "`X-Feedback-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>`; "
        "non-2xx answers and timeouts are retried with exponential backoff; 4xx other than "
        "408/425/429 are final. The URL may not point at loopback, private, link-local "
        "(cloud metadata), carrier-grade NAT, multicast or reserved addresses, by address or "
        "by what its name resolves to; every delivery checks again."
    ),
    responses=problem_responses({422: "Invalid subscription; `errors` names each field at fault"}),
)
async def create_webhook(request: Request, body: WebhookIn) -> WebhookCreated:
    await _refuse_internal_url(request, str(body.url))
    secret = body.secret or "whsec_" + secrets.token_urlsafe(32)
    async with engine_of(request).begin() as conn:
        row = await db.create_subscription(
            conn,
            channel=body.channel,
            url=str(body.url),
            secret=secret,
            description=body.description,
            active=body.active,
        )
    return WebhookCreated(**row, secret=secret)


@router.get("", response_model=list[WebhookView], summary="List webhook subscriptions")
async def list_webhooks(
    request: Request, channel: Channel | None = Query(default=None)
) -> list[WebhookView]:
    async with engine_of(request).connect() as conn:
        return [WebhookView(**r) for r in await db.list_subscriptions(conn, channel)]


@router.get("/{webhook_id}", response_model=WebhookView, responses=_NOT_FOUND)
async def get_webhook(request: Request, webhook_id: uuid.UUID) -> WebhookView:
    async with engine_of(request).connect() as conn:
        row = found_or_404(
            await db.get_subscription(conn, webhook_id), "No such webhook subscription."
        )
    return WebhookView(**row)


@router.patch(
    "/{webhook_id}",
    response_model=WebhookView,
    summary="Change the URL or secret, or (de)activate",
    responses={**_NOT_FOUND, **problem_responses({422: "Invalid change"})},
)
async def update_webhook(
    request: Request, webhook_id: uuid.UUID, body: WebhookPatch
) -> WebhookView:
    changes = body.model_dump(exclude_unset=True, mode="json")
    if changes.get("url") is not None:
        await _refuse_internal_url(request, changes["url"])
    async with engine_of(request).begin() as conn:
        row = found_or_404(
            await db.update_subscription(conn, webhook_id, changes), "No such webhook subscription."
        )
    return WebhookView(**row)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Remove a subscription (and its pending deliveries)",
    responses=_NOT_FOUND,
)
async def delete_webhook(request: Request, webhook_id: uuid.UUID) -> Response:
    async with engine_of(request).begin() as conn:
        if not await db.delete_subscription(conn, webhook_id):
            raise NotFound("No such webhook subscription.")
    return Response(status_code=204)


async def _refuse_internal_url(request: Request, url: str) -> None:
    try:
        await check_webhook_url(url, settings_of(request).webhook_address_rules())
    except AddressRefused as exc:
        raise Problem(
            f"The webhook URL is not allowed: {exc}.",
            status=422,
            slug="validation-error",
            errors=[FieldError(field="body.url", message=str(exc), type="address_refused")],
        ) from None
