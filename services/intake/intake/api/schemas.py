"""The HTTP edge of `POST /v1/contacts` and its batch form: the responses, and the batch
envelope `ContactBatch` (defined with the contact models, so that a parser worker can read it).
The contact itself (its models, validation and normalization) is
`intake.domain.contact_models`."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, ValidationError

from ccshared.problems import FieldError, field_errors
from intake.domain.contact_models import Channel
from intake.domain.contact_models import ContactBatch as ContactBatch  # the envelope, re-exported


class ContactAccepted(BaseModel):
    id: UUID
    customer_id: UUID
    status: Literal["accepted", "duplicate"]
    """"duplicate": this (channel, external_id) was already taken; `id` is the original."""
    channel: Channel
    external_id: str


class BatchItemResult(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "invalid", "conflict", "forbidden"]
    id: UUID | None = None
    customer_id: UUID | None = None
    errors: list[FieldError] = Field(default_factory=list)

    @classmethod
    def taken(cls, index: int, accepted: ContactAccepted) -> BatchItemResult:
        return cls(
            index=index, status=accepted.status, id=accepted.id, customer_id=accepted.customer_id
        )

    @classmethod
    def invalid(cls, index: int, exc: ValidationError) -> BatchItemResult:
        # The offending input is left out on purpose: it may be large or personal.
        return cls(
            index=index, status="invalid", errors=field_errors(exc.errors(include_url=False))
        )


class ContactBatchResult(BaseModel):
    items: list[BatchItemResult]
