"""The intake REST API: integrations post contacts here (one, or a batch), and read them back."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, ValidationError

from ccshared import tracing
from ccshared.ids import uuid7
from ccshared.logging import correlation_id
from ccshared.problem_handlers import problem_responses
from ccshared.problems import Conflict, FieldError, NotFound, Problem
from ccshared.service import Runtime, runtime_of
from intake import metrics
from intake.api.auth import (
    SECURITY,
    SECURITY_SCHEMES,
    authenticate,
    authenticate_headers,
    require_channel,
)
from intake.api.deps import parts
from intake.api.schemas import BatchItemResult, ContactAccepted, ContactBatch, ContactBatchResult
from intake.bootstrap import parts_of
from intake.db.api_keys import ApiKey
from intake.db.contacts import stored_contact
from intake.db.writer import (
    ContactTooLarge,
    ContactWriter,
    IdempotencyConflict,
    NewContact,
    StoredContact,
)
from intake.domain.contact_models import (
    CONTACT_ADAPTER,
    CONTEXT_DEFAULT_REGION,
    CONTEXT_INTEGRATION_REGION,
    CONTEXT_MAX_FUTURE_SKEW_S,
    Contact,
    derive_customer_hints,
    parse_contact_json,
)
from intake.domain.contacts import (
    canonical_json,
    contact_document,
    contact_received_event,
    customer_identities,
    largest_fields,
    request_hash,
)
from intake.settings import IntakeSettings
from intake.tasks.parse_pool import CONTEXT_BATCH_MAX_ITEMS, TooManyItems, read_batch

router = APIRouter(prefix="/v1", tags=["contacts"])

RFC822 = "message/rfc822"
_PROBLEM_CODES = {
    401: "No API key, or an unknown or revoked one",
    403: "The key may not post this channel",
    409: "The idempotency key or the channel's id was used for a different contact",
    413: "The body, or the contact it makes once normalized, is larger than the limit",
    415: "Neither application/json nor message/rfc822",
    422: "Invalid contact, or a raw e-mail over a limit; `errors` names each field at fault",
    429: "The key's rate limit is exhausted; see Retry-After",
    503: "The contact could not be stored, or the parser is busy; nothing was kept, retry",
}
_PROBLEMS = problem_responses(_PROBLEM_CODES)


class StoredContactView(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    external_id: str
    received_at: datetime
    accepted_at: datetime
    ticket_id: uuid.UUID | None
    contact: dict[str, Any]


class Unavailable(Problem):
    status = 503
    slug = "unavailable"


def _context(settings: IntakeSettings, key: ApiKey | None = None) -> dict[str, Any]:
    return {
        CONTEXT_DEFAULT_REGION: settings.default_phone_region,
        CONTEXT_INTEGRATION_REGION: key.phone_region if key is not None else None,
        CONTEXT_MAX_FUTURE_SKEW_S: settings.max_future_skew_s,
    }


def _is_json(media_type: str) -> bool:
    return media_type in ("application/json", "") or media_type.endswith("+json")


def _parse_json(
    raw: bytes, media_type: str, settings: IntakeSettings, key: ApiKey | None = None
) -> Contact:
    if _is_json(media_type):
        return parse_contact_json(raw, context=_context(settings, key))
    raise Problem(
        f"Send the contact as application/json (or a raw e-mail as {RFC822}), not {media_type}.",
        status=415,
        slug="unsupported-media-type",
    )


_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def _idempotency_key(headers: Mapping[str, str]) -> str | None:
    value = headers.get("idempotency-key")
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise Problem(
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            status=422,
            slug="validation-error",
            errors=[
                FieldError(
                    field="header.Idempotency-Key",
                    message="1-255 visible ASCII characters",
                    type="string_pattern_mismatch",
                )
            ],
        )
    return value


def _new_contact(
    contact: Contact,
    key: ApiKey,
    idempotency_key: str | None,
    *,
    received_at_is_request_time: bool = False,
) -> NewContact:
    document = contact_document(contact)
    canonical = canonical_json(document)  # serialized once: the stored body and its hash
    if received_at_is_request_time:
        # A raw e-mail that says nothing of when it arrived: its retry gets another time, and
        # must still be recognized as the same contact.
        fingerprint = request_hash({**document, "received_at": None})
    else:
        fingerprint = request_hash(document, canonical)
    hints = derive_customer_hints(contact)
    contact_id = uuid7()
    cid = correlation_id.get()
    return NewContact(
        contact_id=contact_id,
        channel=contact.channel,
        external_id=contact.external_id,
        api_key_id=key.id,
        integration_id=key.integration_id,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        received_at=contact.received_at,
        body_json=canonical.decode(),
        identities=customer_identities(contact, hints),
        customer_name=contact.customer.name,
        headers=tracing.headers_json(),
        make_event=lambda customer_id: contact_received_event(
            contact,
            document,
            contact_id=contact_id,
            customer_id=customer_id,
            correlation_id=cid,
            hints=hints,
        ),
    )


def _too_large_fields(new: NewContact, prefix: str = "") -> list[FieldError]:
    return [
        FieldError(
            field=prefix + path,
            message=f"{size} bytes once normalized",
            type="contact_too_large",
        )
        for path, size in largest_fields(orjson.loads(new.body_json))
    ]


async def _store(writer: ContactWriter, new: NewContact) -> StoredContact:
    try:
        return await writer.submit(new)
    except ContactTooLarge as exc:
        errors = _too_large_fields(new, "body.")
        raise Problem(
            f"The contact would be {exc.size} bytes once normalized and published, over the "
            f"limit of {exc.limit} bytes; the largest fields: "
            + ", ".join(f"{e.field} ({e.message})" for e in errors),
            status=413,
            slug="contact-too-large",
            errors=errors,
            extra={"max_bytes": exc.limit},
        ) from None
    except IdempotencyConflict as exc:
        what = (
            "This Idempotency-Key was used"
            if exc.by == "idempotency_key"
            else f"The {new.channel} id {new.external_id!r} was used"
        )
        raise Conflict(
            f"{what} for a different contact ({exc.existing_id}); send a new key for a new "
            "contact, or the same body to retry.",
            slug="idempotency-conflict",
            extra={"existing_contact_id": str(exc.existing_id)},
        ) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RuntimeError) as exc:
        raise Unavailable(
            "The contact could not be stored right now and was not kept; retry shortly.",
            headers={"Retry-After": "1"},
        ) from exc


@router.post(
    "/contacts",
    status_code=202,
    response_model=ContactAccepted,
    summary="Post one customer contact",
    description=(
        "Accepts a contact from any channel as JSON, or a raw e-mail as `message/rfc822`. "
        "The 202 is sent once the contact is durably stored; it is then published to the "
        "router. Retrying with the same `Idempotency-Key` (or the same channel and "
        "`external_id`) returns the original contact with `status: duplicate`."
    ),
    responses=_PROBLEMS,
    openapi_extra={
        "security": SECURITY,
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Makes retries safe; unique per API key (1-255 visible ASCII)",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Contact"}},
                RFC822: {"schema": {"type": "string", "format": "binary"}},
            },
        },
    },
)
async def post_contact(request: Request, response: Response) -> ContactAccepted:
    # Served by `ContactFastPath` (intake.api.fast) in the running app; this route documents
    # the operation and answers when the fast path is turned off.
    # The key before the body, as the fast path does.
    key = await authenticate(request)
    body, headers = await accept_contact(
        runtime_of(request.app),
        request.headers,
        await request.body(),
        request.client.host if request.client else None,
        key,
    )
    response.headers.update(headers)
    return ContactAccepted.model_validate(body)


async def accept_contact(
    runtime: Runtime,
    headers: Mapping[str, str],
    raw: bytes,
    client: str | None = None,
    key: ApiKey | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """POST /v1/contacts, whichever way it arrives: the 202's JSON body and its headers.
    `client` is the caller's address; `key` the caller's key if already authenticated (both
    callers do, before reading the body). Raises `Problem` for every refusal."""
    if key is None:
        key = await authenticate_headers(headers, parts_of(runtime).verifier, client)
    try:
        body, response_headers = await _accept_contact(runtime, headers, raw, key)
    except (Problem, ValidationError):
        metrics.REFUSED.inc()
        raise
    metrics.count(body["status"])
    return body, response_headers


async def _accept_contact(
    runtime: Runtime, headers: Mapping[str, str], raw: bytes, key: ApiKey
) -> tuple[dict[str, str], dict[str, str]]:
    parts = parts_of(runtime)
    settings = parts.settings
    idempotency_key = _idempotency_key(headers)
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    request_time = False
    if media_type == RFC822:
        require_channel(key, "email")  # before spending a worker on it
        contact, request_time = await parts.parse_pool.email_contact(
            raw, _context(settings, key), key.id
        )
    elif len(raw) > settings.parse_inline_max_bytes and _is_json(media_type):
        contact = await parts.parse_pool.json_contact(raw, _context(settings, key), key.id)
    else:
        contact = _parse_json(raw, media_type, settings, key)
    require_channel(key, contact.channel)
    new = _new_contact(contact, key, idempotency_key, received_at_is_request_time=request_time)
    stored = await _store(parts.writer, new)
    contact_id = str(stored.contact_id)
    response_headers = {"Location": f"/v1/contacts/{contact_id}"}
    if stored.status == "duplicate":
        response_headers["Idempotent-Replayed"] = "true"
    return {
        "id": contact_id,
        "customer_id": str(stored.customer_id),
        "status": stored.status,
        "channel": contact.channel,
        "external_id": contact.external_id,
    }, response_headers


@router.post(
    "/contacts:batch",
    response_model=ContactBatchResult,
    summary="Post many contacts at once (bulk importers)",
    description=(
        "Each item is validated and stored on its own: the result lists, per item in order, "
        "`accepted`, `duplicate` (same channel and `external_id` as a stored contact), "
        "`invalid` (with the fields at fault), `conflict` or `forbidden`. No item is ever "
        "half-stored."
    ),
    responses=_PROBLEMS,
    openapi_extra={
        "security": SECURITY,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ContactBatch"}}
            },
        },
    },
)
async def post_contact_batch(request: Request) -> ContactBatchResult:
    # The key is checked before the body is read: a caller without a valid key gets its 401
    # without intake receiving or parsing what it sent (the body is not a parameter for that).
    key = await authenticate(request)
    raw = await request.body()
    settings = parts(request).settings
    context = _context(settings, key)
    try:
        if len(raw) > settings.parse_inline_max_bytes:
            # Off the event loop, like a large contact: an item's HTML may take seconds to
            # sanitize (two e-mails of 499,000 `&` each: 5.3 s inline).
            items = await parts(request).parse_pool.batch_contacts(
                raw, context, settings.batch_max_items, key.id
            )
        else:
            items = read_batch(raw, {**context, CONTEXT_BATCH_MAX_ITEMS: settings.batch_max_items})
    except TooManyItems:
        raise Problem(
            f"A batch may hold at most {settings.batch_max_items} contacts.",
            status=422,
            slug="validation-error",
            errors=[FieldError(field="body.items", message="too many items", type="too_long")],
        ) from None
    results: list[BatchItemResult | None] = [None] * len(items)
    queued: list[tuple[int, NewContact]] = []
    for index, contact in enumerate(items):
        if isinstance(contact, list):
            results[index] = BatchItemResult(index=index, status="invalid", errors=contact)
            continue
        if contact.channel not in key.channels:
            results[index] = BatchItemResult(
                index=index,
                status="forbidden",
                errors=[
                    FieldError(
                        field="channel", message="not in this key's scope", type="forbidden_channel"
                    )
                ],
            )
            continue
        queued.append((index, _new_contact(contact, key, None)))
    writer = parts(request).writer
    outcomes = await asyncio.gather(
        *(writer.submit(new) for _, new in queued), return_exceptions=True
    )
    for (index, new), outcome in zip(queued, outcomes, strict=True):
        if isinstance(outcome, ContactTooLarge):
            results[index] = BatchItemResult(
                index=index, status="invalid", errors=_too_large_fields(new)
            )
        elif isinstance(outcome, IdempotencyConflict):
            results[index] = BatchItemResult(
                index=index,
                status="conflict",
                id=outcome.existing_id,
                errors=[
                    FieldError(
                        field="external_id", message=str(outcome), type="idempotency_conflict"
                    )
                ],
            )
        elif isinstance(outcome, BaseException):
            raise Unavailable(
                "Some contacts could not be stored right now; retry the batch (stored ones "
                "will come back as duplicates).",
                headers={"Retry-After": "1"},
            ) from outcome
        else:
            results[index] = BatchItemResult(
                index=index,
                status=outcome.status,
                id=outcome.contact_id,
                customer_id=outcome.customer_id,
            )
    done = [r for r in results if r is not None]
    for result in done:
        metrics.count(result.status)
    return ContactBatchResult(items=done)


@router.get(
    "/contacts/{contact_id}",
    response_model=StoredContactView,
    summary="A contact as stored, and the ticket it became once the router has placed it",
    responses=problem_responses(
        {
            401: _PROBLEM_CODES[401],
            404: "No such contact visible to this key",
            429: _PROBLEM_CODES[429],
        }
    ),
    openapi_extra={"security": SECURITY},
)
async def get_contact(contact_id: uuid.UUID, request: Request) -> StoredContactView:
    key = await authenticate(request)
    row = await stored_contact(parts(request).pool, contact_id, key.integration_id)
    # Another integration's contact is not found, exactly like one that does not exist.
    if row is None or row["channel"] not in key.channels:
        raise NotFound(f"No contact {contact_id} of this integration on this key's channels.")
    return StoredContactView(
        id=row["id"],
        customer_id=row["customer_id"],
        channel=row["channel"],
        external_id=row["external_id"],
        received_at=row["received_at"],
        accepted_at=row["accepted_at"],
        ticket_id=row["ticket_id"],
        contact=orjson.loads(row["body"]),
    )


def document_contact_schema(app: FastAPI) -> None:
    """Put the Contact union (validated by hand, per channel) into the OpenAPI components."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = default_openapi()
        schema = CONTACT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
        spec.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        components = spec["components"].setdefault("schemas", {})
        components.update(schema.pop("$defs", {}))
        components["Contact"] = schema
        components["ContactBatch"] = ContactBatch.model_json_schema()
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
