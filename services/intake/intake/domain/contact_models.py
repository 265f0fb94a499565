"""The contact a channel integration may send (`POST /v1/contacts` and its batch form),
validated and normalized as it is read, and the customer hints derived from it. Pydantic models,
no web framework: the HTTP edge (responses, batch envelope) is `intake.api.schemas`.

Validation context keys (pass with `parse_contact(data, context={...})`):
- `default_region`: region for phone numbers written without "+", default `DEFAULT_PHONE_REGION`.
- `integration_region`: the API key's region for them, before the default (None: no hint).
- `max_future_skew_s`: how far in the future a timestamp may lie, default 300 s.
- `now`: aware datetime used as "now" by that check (tests, replays); default the clock.
"""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses
from functools import lru_cache
from typing import Annotated, Any, Literal, Self, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from intake.domain.normalize import (
    DEFAULT_PHONE_REGION,
    NORMALIZED_CACHE_SIZE,
    InvalidEmailAddress,
    InvalidHandle,
    InvalidPhoneNumber,
    RegionHint,
    UnknownPhoneRegion,
    choose_phone_region,
    html_to_text,
    is_international,
    normalize_email,
    normalize_handle,
    normalize_phone,
    phone_region_code,
    sanitize_html,
)

CONTEXT_DEFAULT_REGION = "default_region"
CONTEXT_INTEGRATION_REGION = "integration_region"
# Set by PhoneContact for the validation of its own numbers (a scratch entry of the per-call
# copy of the context that `parse_contact` makes): field name -> the region hints of the call.
_CONTEXT_CALL_REGIONS = "_call_regions"
CONTEXT_MAX_FUTURE_SKEW_S = "max_future_skew_s"
CONTEXT_NOW = "now"
DEFAULT_MAX_FUTURE_SKEW_S = 300

MAX_ID_CHARS = 512
MAX_NAME_CHARS = 256
MAX_SUBJECT_CHARS = 1_000
MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 500_000
MAX_URL_CHARS = 2_048
MAX_LIST_ITEMS = 100
MAX_CHAT_MESSAGES = 1_000
MAX_METADATA_BYTES = 16_384
MAX_BATCH_ITEMS = 500

Channel = Literal["phone", "email", "chat", "social"]
CHANNELS: tuple[str, ...] = get_args(Channel)


# --- scalar field types -------------------------------------------------------------------

# PostgreSQL text and jsonb refuse NUL, and UTF-8 cannot encode a lone surrogate.
_FORBIDDEN_CHARS = re.compile("[\x00\ud800-\udfff]")


def _without_forbidden_chars(value: str) -> str:
    if _FORBIDDEN_CHARS.search(value):
        raise PydanticCustomError(
            "text_forbidden_character",
            "Text must not contain NUL characters or unpaired surrogates",
        )
    return value


def _clean_text(value: str) -> str:
    return unicodedata.normalize("NFC", _without_forbidden_chars(value))


def _blank_to_none(value: object) -> object:
    """Optional fields treat "" (an empty form field) as absent."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _context_value(info: ValidationInfo, key: str, default: Any) -> Any:
    context = info.context
    if isinstance(context, Mapping) and context.get(key) is not None:
        return context[key]
    return default


def _parse_timestamp(value: object) -> object:
    # Only ISO 8601 text or datetimes: pydantic would also take numbers as Unix times.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PydanticCustomError(
        "timestamp_invalid",
        "Input should be an ISO 8601 timestamp with a time zone, e.g. 2026-11-25T01:02:03Z",
    )


def _utc_not_far_in_future(value: datetime, info: ValidationInfo) -> datetime:
    value = value.astimezone(UTC)
    now: datetime = _context_value(info, CONTEXT_NOW, None) or datetime.now(UTC)
    skew_s = _context_value(info, CONTEXT_MAX_FUTURE_SKEW_S, DEFAULT_MAX_FUTURE_SKEW_S)
    if value > now + timedelta(seconds=skew_s):
        raise PydanticCustomError(
            "timestamp_in_future",
            "Timestamp is more than {max_future_skew_s} s in the future",
            {"max_future_skew_s": skew_s},
        )
    return value


def _region_for(info: ValidationInfo) -> RegionHint:
    """Where a national-format number of this field is read: the hints of its call (set by
    PhoneContact), else the key's region, else the default region."""
    call: dict[str, RegionHint] = _context_value(info, _CONTEXT_CALL_REGIONS, {})
    hint = call.get(info.field_name or "")
    if hint is not None:
        return hint
    return choose_phone_region(
        integration=_context_value(info, CONTEXT_INTEGRATION_REGION, None),
        default=_context_value(info, CONTEXT_DEFAULT_REGION, DEFAULT_PHONE_REGION),
    )


def _phone_number(value: str, info: ValidationInfo) -> str:
    hint = None if is_international(value) else _region_for(info)
    try:
        return normalize_phone(value, hint.region if hint else DEFAULT_PHONE_REGION)
    except InvalidPhoneNumber as exc:
        reason = f"{exc} (the region comes from {hint.source})" if hint else str(exc)
        raise PydanticCustomError(
            "phone_number_invalid", "Invalid phone number: {reason}", {"reason": reason}
        ) from exc


def _phone_region(value: str) -> str:
    try:
        return phone_region_code(value)
    except UnknownPhoneRegion as exc:
        raise PydanticCustomError(
            "phone_region_invalid",
            "Input should be an ISO 3166 alpha-2 region with phone numbers, e.g. 'US' or 'CN'",
        ) from exc


def _email_address(value: str) -> str:
    try:
        return normalize_email(value)
    except InvalidEmailAddress as exc:
        raise PydanticCustomError(
            "email_address_invalid", "Invalid email address: {reason}", {"reason": str(exc)}
        ) from exc


def _social_handle(value: str) -> str:
    try:
        return normalize_handle(_without_forbidden_chars(value))
    except InvalidHandle as exc:
        raise PydanticCustomError(
            "handle_invalid", "Invalid social handle: {reason}", {"reason": str(exc)}
        ) from exc


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(_without_forbidden_chars(value))
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        valid = False
    if not valid or any(ch.isspace() for ch in value):
        raise PydanticCustomError("url_invalid", "Input should be an absolute http or https URL")
    return value


_LANGUAGE_TAG = re.compile(
    r"(?P<language>[a-z]{2,3})(?:-(?P<script>[a-z]{4}))?(?:-(?P<region>[a-z]{2}|\d{3}))?"
    r"(?P<variants>(?:-(?:[a-z0-9]{5,8}|\d[a-z0-9]{3}))*)",
    re.IGNORECASE | re.ASCII,
)


def _language_tag(value: str) -> str:
    """Accept the common BCP 47 shapes and write them canonically: "zh_hans_cn" -> "zh-Hans-CN"."""
    match = _LANGUAGE_TAG.fullmatch(value.replace("_", "-"))
    if match is None:
        raise PydanticCustomError(
            "language_tag_invalid",
            "Input should be a BCP 47 language tag such as 'zh', 'en' or 'zh-Hans-CN'",
        )
    subtags = [match["language"].lower()]
    if match["script"]:
        subtags.append(match["script"].title())
    if match["region"]:
        subtags.append(match["region"].upper())
    return "-".join(subtags) + match["variants"].lower()


_MIME_NAME = r"[a-z0-9!#$&^_.+-]+"
_CONTENT_TYPE = re.compile(f"{_MIME_NAME}/{_MIME_NAME}")


def _content_type(value: str) -> str:
    """Keep "type/subtype" lower-cased; parameters such as charset are dropped."""
    essence = value.split(";", 1)[0].strip().lower()
    if not _CONTENT_TYPE.fullmatch(essence):
        raise PydanticCustomError(
            "content_type_invalid", "Input should be a MIME type such as 'application/pdf'"
        )
    return essence


def _check_json_strings(value: JsonValue) -> None:
    if isinstance(value, str):
        _without_forbidden_chars(value)
    elif isinstance(value, list):
        for item in value:
            _check_json_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _without_forbidden_chars(key)
            _check_json_strings(item)


def _bounded_metadata(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    _check_json_strings(value)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise PydanticCustomError(
            "metadata_too_large",
            "metadata must serialize to at most {max_bytes} bytes of JSON",
            {"max_bytes": MAX_METADATA_BYTES},
        )
    return value


def _stripped(max_length: int, min_length: int = 1) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


Identifier = Annotated[str, _stripped(MAX_ID_CHARS), AfterValidator(_without_forbidden_chars)]
ShortIdentifier = Annotated[str, _stripped(64), AfterValidator(_without_forbidden_chars)]
Name = Annotated[str, _stripped(MAX_NAME_CHARS), AfterValidator(_clean_text)]
Subject = Annotated[str, _stripped(MAX_SUBJECT_CHARS), AfterValidator(_clean_text)]
Text = Annotated[str, _stripped(MAX_TEXT_CHARS), AfterValidator(_clean_text)]
Html = Annotated[
    str, _stripped(MAX_HTML_CHARS), AfterValidator(_clean_text), AfterValidator(sanitize_html)
]
Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_parse_timestamp), AfterValidator(_utc_not_far_in_future)
]
PhoneNumber = Annotated[str, _stripped(64), AfterValidator(_phone_number)]
PhoneRegion = Annotated[str, _stripped(2, 2), AfterValidator(_phone_region)]
EmailAddress = Annotated[str, _stripped(320), AfterValidator(_email_address)]
SocialHandle = Annotated[str, _stripped(MAX_NAME_CHARS), AfterValidator(_social_handle)]
HttpUrl = Annotated[str, _stripped(MAX_URL_CHARS), AfterValidator(_http_url)]
LanguageTag = Annotated[str, _stripped(35), AfterValidator(_language_tag)]
ContentType = Annotated[str, _stripped(255), AfterValidator(_content_type)]
Platform = Annotated[str, _stripped(64), AfterValidator(_clean_text), AfterValidator(str.casefold)]
Metadata = Annotated[dict[str, JsonValue], AfterValidator(_bounded_metadata)]

OptionalIdentifier = Annotated[Identifier | None, BeforeValidator(_blank_to_none)]
OptionalName = Annotated[Name | None, BeforeValidator(_blank_to_none)]
OptionalSubject = Annotated[Subject | None, BeforeValidator(_blank_to_none)]
OptionalText = Annotated[Text | None, BeforeValidator(_blank_to_none)]
OptionalHtml = Annotated[Html | None, BeforeValidator(_blank_to_none)]
OptionalPhoneNumber = Annotated[PhoneNumber | None, BeforeValidator(_blank_to_none)]
OptionalEmailAddress = Annotated[EmailAddress | None, BeforeValidator(_blank_to_none)]
OptionalSocialHandle = Annotated[SocialHandle | None, BeforeValidator(_blank_to_none)]
OptionalHttpUrl = Annotated[HttpUrl | None, BeforeValidator(_blank_to_none)]

# Unknown keys are refused so that a typo ("emial") fails loudly instead of losing data.
# `from` is a Python keyword: such fields are named `from_` and dumped as "from".
_CLOSED = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


# --- request ------------------------------------------------------------------------------


class CustomerHints(BaseModel):
    """What the channel knows about who is reaching out, normalized for customer matching."""

    model_config = _CLOSED

    name: OptionalName = None
    email: OptionalEmailAddress = None
    phone: OptionalPhoneNumber = None
    social_handle: OptionalSocialHandle = None
    account_id: OptionalIdentifier = None
    visitor_id: OptionalIdentifier = None
    """The chat widget's visitor id; usually derived from `chat.visitor_id`."""


class PhoneDetails(BaseModel):
    """Numbers without a country code are read in, first hint first: `region`, the country of
    the call's other number (when that one has its country code), the API key's region, the
    service's default region. A number not valid there is refused, never read elsewhere."""

    model_config = _CLOSED

    region: Annotated[PhoneRegion | None, BeforeValidator(_blank_to_none)] = None
    """ISO 3166 alpha-2 region of the numbers written without a country code, e.g. "US"."""
    caller: PhoneNumber
    called: OptionalPhoneNumber = None
    call_id: Identifier
    direction: Literal["inbound", "outbound"]
    started_at: Timestamp | None = None
    duration_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    ivr_path: list[ShortIdentifier] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    transcript: OptionalText = None
    recording_ref: OptionalIdentifier = None


class Mailbox(BaseModel):
    """An email address with its display name; given as "Name <addr>" or {"name", "address"}."""

    model_config = _CLOSED

    name: OptionalName = None
    address: EmailAddress

    @model_validator(mode="before")
    @classmethod
    def _split_display_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            mailboxes = _mailboxes(data)
            if len(mailboxes) != 1:
                raise PydanticCustomError(
                    "email_address_invalid", "Input should be exactly one email address"
                )
            name, address = mailboxes[0]
            return {"name": name or None, "address": address or data}
        return data


_MAX_CACHED_MAILBOX_CHARS = 1_024


def _mailboxes(text: str) -> tuple[tuple[str, str], ...]:
    """`getaddresses` of one header-like text; the common short ones are remembered (the same
    sender and the company's own address come back on most e-mails)."""
    if len(text) > _MAX_CACHED_MAILBOX_CHARS:
        return tuple(getaddresses([text]))
    return _cached_mailboxes(text)


@lru_cache(maxsize=NORMALIZED_CACHE_SIZE)
def _cached_mailboxes(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(getaddresses([text]))


class Attachment(BaseModel):
    """What is known of an attachment; its content is stored elsewhere, never sent here."""

    model_config = _CLOSED

    filename: OptionalName = None
    content_type: ContentType = "application/octet-stream"
    size_bytes: int = Field(ge=0)
    url: OptionalHttpUrl = None
    ref: OptionalIdentifier = None


class EmailDetails(BaseModel):
    """Subject and plain text live on the contact itself; `html` is kept sanitized."""

    model_config = _CLOSED

    message_id: Identifier
    from_: Mailbox = Field(alias="from")
    to: list[Mailbox] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    cc: list[Mailbox] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    in_reply_to: OptionalIdentifier = None
    references: list[Identifier] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    html: OptionalHtml = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)

    @model_validator(mode="after")
    def _drop_html_emptied_by_sanitizing(self) -> Self:
        if self.html is not None and not self.html.strip():
            self.html = None
        return self


class ChatMessage(BaseModel):
    model_config = _CLOSED

    from_: Literal["visitor", "agent", "bot"] = Field(alias="from")
    at: Timestamp
    text: Text


class ChatDetails(BaseModel):
    model_config = _CLOSED

    session_id: Identifier
    visitor_id: OptionalIdentifier = None
    page_url: OptionalHttpUrl = None
    messages: list[ChatMessage] = Field(default_factory=list, max_length=MAX_CHAT_MESSAGES)
    transcript: OptionalText = None


class SocialDetails(BaseModel):
    model_config = _CLOSED

    platform: Platform
    """Free text, case-folded: "weibo", "x", "facebook", "wechat"..."""
    post_id: Identifier
    author: OptionalSocialHandle = None
    visibility: Literal["public", "private"] | None = None
    url: OptionalHttpUrl = None
    parent_post_id: OptionalIdentifier = None


class ContactBase(BaseModel):
    """Fields every channel shares. Subject and text are here for all channels (an email's
    text is derived from its HTML when only HTML is given)."""

    model_config = _CLOSED

    external_id: Identifier
    """The channel's own id of this contact; (channel, external_id) makes retries idempotent."""
    received_at: Timestamp
    customer: CustomerHints = Field(default_factory=CustomerHints)
    subject: OptionalSubject = None
    text: OptionalText = None
    language: Annotated[LanguageTag | None, BeforeValidator(_blank_to_none)] = None
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _require_identifiable_customer(self) -> Self:
        if not derive_customer_hints(self).model_dump(exclude_none=True):
            raise PydanticCustomError(
                "customer_unidentifiable",
                "Give at least one customer hint, or a channel part that names the customer "
                "(phone.caller, email.from, social.author, chat.visitor_id)",
            )
        return self


class PhoneContact(ContactBase):
    channel: Literal["phone"]
    phone: PhoneDetails

    @model_validator(mode="before")
    @classmethod
    def _choose_regions_of_national_numbers(cls, data: Any, info: ValidationInfo) -> Any:
        """The region each national-format number of the call is read in (see PhoneDetails):
        the caller's in the called number's country, the called number's in the caller's;
        a national-format customer.phone in the country of the customer's side of the call
        first (the same person is on both), then the other side's. Computed only when a number
        lacks its country code; the field validators read it from the context."""
        context = info.context
        if not isinstance(data, dict) or not isinstance(context, dict):
            return data
        phone, customer = data.get("phone"), data.get("customer")
        if not isinstance(phone, dict):
            return data
        caller, called = _text_or_none(phone.get("caller")), _text_or_none(phone.get("called"))
        hint = _text_or_none(customer.get("phone")) if isinstance(customer, dict) else None
        if all(n is None or is_international(n) for n in (caller, called, hint)):
            return data
        region = phone.get("region")
        if not isinstance(region, str) or not region.strip():
            region = None
        caller_side = ("the caller's number", caller)
        called_side = ("the called number", called)
        customer_first = phone.get("direction") == "inbound"
        sides = {
            "caller": [called_side],
            "called": [caller_side],
            "phone": [caller_side, called_side] if customer_first else [called_side, caller_side],
        }
        with contextlib.suppress(UnknownPhoneRegion):  # phone.region's validator reports it
            context[_CONTEXT_CALL_REGIONS] = {
                field: choose_phone_region(
                    explicit=region,
                    call_numbers=others,
                    integration=context.get(CONTEXT_INTEGRATION_REGION),
                    default=context.get(CONTEXT_DEFAULT_REGION) or DEFAULT_PHONE_REGION,
                )
                for field, others in sides.items()
            }
        return data


class EmailContact(ContactBase):
    channel: Literal["email"]
    email: EmailDetails

    @model_validator(mode="after")
    def _text_from_html(self) -> Self:
        if self.text is None and self.email.html is not None:
            self.text = html_to_text(self.email.html)[:MAX_TEXT_CHARS] or None
        return self


class ChatContact(ContactBase):
    channel: Literal["chat"]
    chat: ChatDetails


class SocialContact(ContactBase):
    channel: Literal["social"]
    social: SocialDetails


Contact = Annotated[
    PhoneContact | EmailContact | ChatContact | SocialContact, Field(discriminator="channel")
]
CONTACT_ADAPTER: TypeAdapter[Contact] = TypeAdapter(Contact)


def derive_customer_hints(contact: ContactBase) -> CustomerHints:
    """Merge the explicit `customer` hints with what the channel part says about the customer;
    explicit hints win. The customer is the caller of an inbound call, the called party of an
    outbound one, the sender of an email, the author of a post, the visitor of a chat."""
    derived: dict[str, str | None] = {}
    if isinstance(contact, PhoneContact):
        phone = contact.phone
        derived["phone"] = phone.caller if phone.direction == "inbound" else phone.called
    elif isinstance(contact, EmailContact):
        derived["email"] = contact.email.from_.address
        derived["name"] = contact.email.from_.name
    elif isinstance(contact, SocialContact):
        derived["social_handle"] = contact.social.author
    elif isinstance(contact, ChatContact):
        derived["visitor_id"] = contact.chat.visitor_id
    explicit = contact.customer
    missing = {
        field: value
        for field, value in derived.items()
        if value is not None and getattr(explicit, field) is None
    }
    return explicit.model_copy(update=missing) if missing else explicit


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def parse_contact(data: object, *, context: Mapping[str, Any] | None = None) -> Contact:
    """Validate a decoded request body. Raises `ValidationError` whose `loc`s name fields as
    the client wrote them: ("customer", "email"), ("channel",), never the union's tag."""
    try:
        return CONTACT_ADAPTER.validate_python(data, context=dict(context or {}))
    except ValidationError as exc:
        raise _with_client_locations(exc) from None


def parse_contact_json(raw: str | bytes, *, context: Mapping[str, Any] | None = None) -> Contact:
    """Like `parse_contact`, straight from the JSON text (faster: one pass)."""
    try:
        return CONTACT_ADAPTER.validate_json(raw, context=dict(context or {}))
    except ValidationError as exc:
        raise _with_client_locations(exc) from None


class ContactBatch(BaseModel):
    """The body of `POST /v1/contacts:batch`. Items stay raw here and go through
    `parse_contact` one by one, so one bad item does not refuse the whole batch."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


_BUILTIN_ERROR_TYPES = frozenset(get_args(ErrorType))


def _with_client_locations(exc: ValidationError) -> ValidationError:
    """Drop the discriminated union's tag from every `loc` and pin contact-level errors to
    the field a client must fix."""
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        error_type, loc, value = error["type"], error["loc"], error["input"]
        ctx = error.get("ctx")
        if error_type == "union_tag_not_found":
            error_type, loc, ctx = "missing", ("channel",), None
        elif error_type == "union_tag_invalid":
            loc = ("channel",)
            value = ctx["tag"] if ctx else value
        elif loc and loc[0] in CHANNELS:
            loc = loc[1:]
        if not loc and error_type == "customer_unidentifiable":
            loc = ("customer",)
        detail: InitErrorDetails = {"type": error_type, "loc": loc, "input": value}
        if error_type not in _BUILTIN_ERROR_TYPES:
            # The message is already formatted; re-formatting it is only safe without braces.
            detail["type"] = PydanticCustomError(
                error_type, error["msg"], None if "{" in error["msg"] else ctx
            )
        elif ctx is not None:
            detail["ctx"] = ctx
        details.append(detail)
    return ValidationError.from_exception_data("Contact", details)
