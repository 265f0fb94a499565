"""The envelope every event travels in, and the only way to build or read one.

`new_event` checks the payload against the catalog, so a service cannot publish a type
the catalog does not know, on the wrong topic, or with a payload of the wrong shape.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ccshared.events.catalog import EVENT_TYPES, EventSpec

ENVELOPE_VERSION = 1


class EventDecodeError(ValueError):
    """The bytes are not an event this system can read. Retrying will not help."""


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=100)
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=200, description="Kafka partition key")
    correlation_id: str | None = Field(default=None, max_length=200)
    causation_id: uuid.UUID | None = Field(
        default=None, description="The event that caused this one, when there is one"
    )
    payload: dict[str, Any]

    @property
    def spec(self) -> EventSpec:
        return EVENT_TYPES[self.event_type]

    @property
    def topic(self) -> str:
        return self.spec.topic

    def typed_payload(self) -> BaseModel:
        return self.spec.payload.model_validate(self.payload)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


def new_event(
    payload: BaseModel,
    *,
    producer: str,
    key: str | None = None,
    correlation_id: str | None = None,
    causation_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """Wrap a catalogued payload; the key defaults to the payload field the event is keyed by
    (the topic's, unless the event names its own)."""
    spec = _spec_for_payload(payload)
    if key is None:
        key = str(getattr(payload, spec.partition_key_field))
    return Envelope(
        event_id=event_id or uuid.uuid4(),
        event_type=spec.event_type,
        schema_version=spec.version,
        occurred_at=occurred_at or datetime.now(UTC),
        producer=producer,
        key=key,
        correlation_id=correlation_id,
        causation_id=causation_id,
        payload=payload.model_dump(mode="json"),
    )


def decode_event(raw: bytes | None) -> tuple[Envelope, BaseModel]:
    """Parse and validate an event read from Kafka; raises EventDecodeError for poison."""
    if raw is None:
        raise EventDecodeError("empty message (tombstone) where an event was expected")
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as exc:
        raise EventDecodeError(f"not a valid envelope: {exc}") from exc
    spec = EVENT_TYPES.get(envelope.event_type)
    if spec is None:
        raise EventDecodeError(f"unknown event type {envelope.event_type!r}")
    if envelope.schema_version > spec.version:
        raise EventDecodeError(
            f"{envelope.event_type} schema version {envelope.schema_version} is newer than "
            f"the {spec.version} this service understands"
        )
    try:
        payload = spec.payload.model_validate(envelope.payload)
    except ValidationError as exc:
        raise EventDecodeError(f"payload of {envelope.event_type} is invalid: {exc}") from exc
    return envelope, payload


def _spec_for_payload(payload: BaseModel) -> EventSpec:
    for spec in EVENT_TYPES.values():
        if type(payload) is spec.payload:
            return spec
    raise TypeError(f"{type(payload).__name__} is not an event payload in the catalog")
