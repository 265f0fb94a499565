"""Key accounts: customers called back on a schedule (monthly in the first year of the
relationship, quarterly after); each due call-back becomes a `followup.requested` event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request, Response

from ccshared.problem_handlers import problem_responses
from ccshared.problems import Conflict, NotFound, found_or_404
from ccshared.user_auth import AUTH_RESPONSES, supervisor
from feedback.api.deps import engine_of
from feedback.api.schemas import (
    CallbackView,
    KeyAccountIn,
    KeyAccountPatch,
    KeyAccountView,
)
from feedback.db import key_accounts as db
from feedback.domain.callbacks import next_callback_after

router = APIRouter(
    prefix="/v1/key-accounts",
    tags=["key accounts"],
    dependencies=[Depends(supervisor)],
    responses=AUTH_RESPONSES,
)
_NOT_FOUND = problem_responses({404: "The customer is not a key account"})


@router.post(
    "",
    status_code=201,
    response_model=KeyAccountView,
    summary="Make a customer a key account",
    responses=problem_responses(
        {409: "The customer is a key account already", 422: "Invalid key account"}
    ),
)
async def create_key_account(request: Request, body: KeyAccountIn) -> KeyAccountView:
    values = body.model_dump(exclude={"first_callback_at"})
    values["next_callback_at"] = body.first_callback_at or next_callback_after(
        body.relationship_started_at, datetime.now(UTC)
    )
    async with engine_of(request).begin() as conn:
        row = await db.create_key_account(conn, values)
        if row is not None:
            await db.publish_segment(conn, row["customer_id"], row["active"])
    if row is None:
        raise Conflict("This customer is a key account already.")
    return KeyAccountView(**row)


@router.get("", response_model=list[KeyAccountView], summary="List key accounts")
async def list_key_accounts(request: Request) -> list[KeyAccountView]:
    async with engine_of(request).connect() as conn:
        return [KeyAccountView(**r) for r in await db.list_key_accounts(conn)]


@router.get(
    "/{customer_id}",
    response_model=KeyAccountView,
    summary="A key account and the call-backs requested so far",
    responses=_NOT_FOUND,
)
async def get_key_account(request: Request, customer_id: uuid.UUID) -> KeyAccountView:
    async with engine_of(request).connect() as conn:
        row = found_or_404(
            await db.get_key_account(conn, customer_id), "This customer is not a key account."
        )
        callbacks = await db.callbacks_of(conn, customer_id)
    return KeyAccountView(**row, callbacks=[CallbackView(**c) for c in callbacks])


@router.patch(
    "/{customer_id}",
    response_model=KeyAccountView,
    summary="Change a key account (a new start date reschedules the next call-back)",
    responses={**_NOT_FOUND, **problem_responses({422: "Invalid change"})},
)
async def update_key_account(
    request: Request, customer_id: uuid.UUID, body: KeyAccountPatch
) -> KeyAccountView:
    changes = body.model_dump(exclude_unset=True)
    if "relationship_started_at" in changes:
        changes["next_callback_at"] = next_callback_after(
            changes["relationship_started_at"], datetime.now(UTC)
        )
    async with engine_of(request).begin() as conn:
        row = found_or_404(
            await db.update_key_account(conn, customer_id, changes),
            "This customer is not a key account.",
        )
        await db.publish_segment(conn, customer_id, row["active"])
    return KeyAccountView(**row)


@router.delete("/{customer_id}", status_code=204, responses=_NOT_FOUND)
async def delete_key_account(request: Request, customer_id: uuid.UUID) -> Response:
    async with engine_of(request).begin() as conn:
        if not await db.delete_key_account(conn, customer_id):
            raise NotFound("This customer is not a key account.")
        await db.publish_segment(conn, customer_id, None)
    return Response(status_code=204)
