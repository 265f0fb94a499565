"""The bare ceiling for intake's benchmark: FastAPI reading a contact model with the same
fields, lengths, closed objects and channel union as intake's, but no validation of e-mail
addresses or phone numbers (they are plain bounded text) and no other custom checks. Storing
nothing, answering 202 as `bench.ceiling_app` does. Intake's ratio against it is what the
project's validation costs beside what its storing costs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, TypeAdapter

from ccshared.gc import freeze_startup_objects, tune_gc
from ccshared.problem_handlers import install_problem_handlers


def _max(length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, max_length=length)


Id = Annotated[str, _max(512)]
Short = Annotated[str, _max(64)]
Name = Annotated[str, _max(256)]
Email = Annotated[str, _max(320)]  # no e-mail validation
Phone = Annotated[str, _max(64)]  # no phone validation
Url = Annotated[str, _max(2_048)]
Region = Annotated[str, _max(2)]
ContentType = Annotated[str, _max(255)]
Language = Annotated[str, _max(35)]
Subject = Annotated[str, _max(1_000)]
Text = Annotated[str, _max(100_000)]
Html = Annotated[str, _max(500_000)]
_CLOSED = ConfigDict(extra="forbid", populate_by_name=True)


class Customer(BaseModel):
    model_config = _CLOSED
    name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    social_handle: Name | None = None
    account_id: Id | None = None
    visitor_id: Id | None = None


class PhonePart(BaseModel):
    model_config = _CLOSED
    region: Region | None = None
    caller: Phone
    called: Phone | None = None
    call_id: Id
    direction: Literal["inbound", "outbound"]
    started_at: datetime | None = None
    duration_s: float | None = Field(default=None, ge=0)
    ivr_path: list[Short] = Field(default_factory=list, max_length=100)
    transcript: Text | None = None
    recording_ref: Id | None = None


class Mailbox(BaseModel):
    model_config = _CLOSED
    name: Name | None = None
    address: Email


class Attachment(BaseModel):
    model_config = _CLOSED
    filename: Name | None = None
    content_type: ContentType = "application/octet-stream"
    size_bytes: int = Field(ge=0)
    url: Url | None = None
    ref: Id | None = None


class EmailPart(BaseModel):
    model_config = _CLOSED
    message_id: Id
    from_: Email | Mailbox = Field(alias="from")
    to: list[Email | Mailbox] = Field(default_factory=list, max_length=100)
    cc: list[Email | Mailbox] = Field(default_factory=list, max_length=100)
    in_reply_to: Id | None = None
    references: list[Id] = Field(default_factory=list, max_length=100)
    html: Html | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)


class ChatMessage(BaseModel):
    model_config = _CLOSED
    from_: Literal["visitor", "agent", "bot"] = Field(alias="from")
    at: datetime
    text: Text


class ChatPart(BaseModel):
    model_config = _CLOSED
    session_id: Id
    visitor_id: Id | None = None
    page_url: Url | None = None
    messages: list[ChatMessage] = Field(default_factory=list, max_length=1_000)
    transcript: Text | None = None


class SocialPart(BaseModel):
    model_config = _CLOSED
    platform: Short
    post_id: Id
    author: Name | None = None
    visibility: Literal["public", "private"] | None = None
    url: Url | None = None
    parent_post_id: Id | None = None


class Base(BaseModel):
    model_config = _CLOSED
    external_id: Id
    received_at: datetime
    customer: Customer = Field(default_factory=Customer)
    subject: Subject | None = None
    text: Text | None = None
    language: Language | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class PhoneContact(Base):
    channel: Literal["phone"]
    phone: PhonePart


class EmailContact(Base):
    channel: Literal["email"]
    email: EmailPart


class ChatContact(Base):
    channel: Literal["chat"]
    chat: ChatPart


class SocialContact(Base):
    channel: Literal["social"]
    social: SocialPart


BARE_CONTACT: TypeAdapter[PhoneContact | EmailContact | ChatContact | SocialContact] = TypeAdapter(
    Annotated[
        PhoneContact | EmailContact | ChatContact | SocialContact,
        Field(discriminator="channel"),
    ]
)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    freeze_startup_objects()
    yield


def create_app() -> FastAPI:
    tune_gc()  # as bench.ceiling_app: the same collector settings as the services
    app = FastAPI(lifespan=_lifespan)
    install_problem_handlers(app)

    @app.post("/v1/contacts", status_code=202)
    async def post_contact(request: Request, response: Response) -> dict[str, str]:
        contact = BARE_CONTACT.validate_json(await request.body())
        response.headers["Location"] = f"/v1/contacts/{uuid.uuid4()}"
        return {"id": str(uuid.uuid4()), "status": "accepted", "channel": contact.channel}

    return app
