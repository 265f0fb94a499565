"""Outbound messages, as integrations see them: where an integration takes them (its outbound URL
and signing secret, an e-mail integration's From), and its delivery reports. Every call is
authenticated by the integration's own API key and reaches only that integration's data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from ccshared.events import new_event
from ccshared.events.payloads import MessageDeliveryChanged
from ccshared.problem_handlers import problem_responses
from ccshared.problems import Conflict, FieldError, NotFound, Problem
from ccshared.webhook_transport import check_webhook_url
from ccshared.webhooks import AddressRefused
from intake.api.auth import SECURITY, authenticate
from intake.api.deps import parts
from intake.db import outbound as db
from intake.db.api_keys import ApiKey
from intake.domain.outbound import (
    SIGNATURE_HEADER,
    ReportConflict,
    apply_report,
    new_signing_secret,
)

router = APIRouter(prefix="/v1", tags=["outbound"])

Key = Annotated[ApiKey, Depends(authenticate)]
_AUTH = {401: "No API key, or an unknown or revoked one", 429: "Rate limited; see Retry-After"}


class OutboundRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        max_length=2_000,
        description="http(s) URL the integration takes chat, social and phone messages at",
    )
    mail_from: str | None = Field(
        default=None, max_length=300, description="From of e-mail replies, e.g. 'Support <s@x>'"
    )
    rotate_secret: bool = Field(
        default=False, description="issue a new signing secret (shown once, in this answer)"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("https://", "http://")):
            raise ValueError("must be an http or https URL")
        return value

    @field_validator("mail_from")
    @classmethod
    def _mailbox(cls, value: str | None) -> str | None:
        if value is not None and "@" not in parseaddr(value)[1]:
            raise ValueError("must be an address, e.g. 'Support <support@example.com>'")
        return value


class OutboundView(BaseModel):
    url: str | None
    mail_from: str | None
    signature_header: str = SIGNATURE_HEADER
    signing_secret: str | None = Field(
        default=None, description="only when issued (first registration, rotate_secret)"
    )


@router.put(
    "/integration/outbound",
    response_model=OutboundView,
    summary="Register where this integration takes outbound messages (its key's integration)",
    responses=problem_responses(
        {**_AUTH, 422: "Invalid registration, or a URL outbound messages may not go to"}
    ),
    openapi_extra={"security": SECURITY},
)
async def register_outbound(body: OutboundRegistration, key: Key, request: Request) -> OutboundView:
    service = parts(request)
    if body.url is not None:
        try:
            await check_webhook_url(body.url, service.settings.outbound_address_rules())
        except AddressRefused as exc:
            raise Problem(
                str(exc),
                status=422,
                slug="validation-error",
                errors=[FieldError(field="body.url", message=str(exc), type="address_refused")],
            ) from None
    current = await db.outbound_of(service.pool, key.integration_id)
    issued = None
    if body.rotate_secret or current is None or current.signing_secret is None:
        issued = new_signing_secret()
    await db.register_outbound(
        service.pool,
        key.integration_id,
        url=body.url,
        signing_secret=issued,
        mail_from=body.mail_from,
    )
    stored = await db.outbound_of(service.pool, key.integration_id)
    assert stored is not None
    return OutboundView(url=stored.url, mail_from=stored.mail_from, signing_secret=issued)


@router.get(
    "/integration/outbound",
    response_model=OutboundView,
    summary="Where this integration takes outbound messages (never the secret)",
    responses=problem_responses({**_AUTH, 404: "Nothing registered"}),
    openapi_extra={"security": SECURITY},
)
async def get_outbound(key: Key, request: Request) -> OutboundView:
    stored = await db.outbound_of(parts(request).pool, key.integration_id)
    if stored is None:
        raise NotFound("This integration has registered no outbound URL or From address.")
    return OutboundView(url=stored.url, mail_from=stored.mail_from)


class DeliveryReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["delivered", "read", "failed"]
    reason: str | None = Field(default=None, min_length=1, max_length=500)
    provider_message_id: str | None = Field(default=None, min_length=1, max_length=300)
    at: AwareDatetime | None = None


class DeliveryView(BaseModel):
    message_id: uuid.UUID
    state: str
    changed: bool


@router.post(
    "/messages/{message_id}/delivery",
    response_model=DeliveryView,
    summary="Report that an outbound message was delivered, read or failed",
    responses=problem_responses(
        {
            **_AUTH,
            404: "No such message delivered by this integration",
            409: "The report contradicts the message's final state (e.g. delivered after failed)",
            422: "Malformed report; `errors` names the field",
        }
    ),
    openapi_extra={"security": SECURITY},
)
async def report_delivery(
    message_id: uuid.UUID, body: DeliveryReport, key: Key, request: Request
) -> DeliveryView:
    """A report for a message another integration delivers is a 404, as for one that does not
    exist. The same report twice changes nothing (`changed: false`), and so does `delivered`
    after `read` (reports may arrive out of order)."""
    async with parts(request).pool.acquire() as conn, conn.transaction():
        stored = await db.delivery_of(conn, message_id, key.integration_id, for_update=True)
        if stored is None:
            raise NotFound(f"No outbound message {message_id} of this integration.")
        try:
            state = apply_report(stored.state, body.state)
        except ReportConflict as exc:
            raise Conflict(str(exc)) from None
        if state is None:
            return DeliveryView(message_id=message_id, state=stored.state, changed=False)
        reason = body.reason or (
            "reported failed by the integration" if state == "failed" else None
        )
        event = new_event(
            MessageDeliveryChanged(
                message_id=message_id,
                ticket_id=stored.ticket_id,
                state=state,
                attempt=max(stored.attempts, 1),
                reason=reason,
                provider_message_id=body.provider_message_id or stored.provider_message_id,
                at=body.at or datetime.now(UTC),
            ),
            producer="intake",
        )
        await db.set_reported_state(
            conn, message_id, state, reason, body.provider_message_id, event
        )
    return DeliveryView(message_id=message_id, state=state, changed=True)
