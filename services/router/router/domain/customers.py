"""Customers as the UI sees them: what a batch of contacts adds to each customer's view, what a
search query means (a phone, an e-mail or a name), and whether one customer may be merged into
another. Pure: no I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import phonenumbers

from ccshared.events.payloads import ContactReceived
from router.domain.summary import customer_display_name

IdentityKind = Literal["email", "phone", "handle"]
Identity = tuple[IdentityKind, str]

MAX_QUERY_CHARS = 200
# Names shorter than this are matched as a prefix (trigram indexes need three characters to
# narrow a substring search; a Chinese name's first two characters are surname and more).
SUBSTRING_MIN_CHARS = 3
# What a phone number typed into a search box may look like: digits (any script), one leading
# + (or 00), and the usual separators; at least five digits so "2024" is not read as one.
_PHONE_LIKE = re.compile(r"^[+\uff0b]?[\d\s().\-/\u2010-\u2015\u00a0\u3000]+$")
_MIN_PHONE_DIGITS = 5


def email_identity(raw: str | None) -> str | None:
    """An e-mail as the router keys it: trimmed and lower-cased (intake has validated it)."""
    cleaned = (raw or "").strip().lower()
    return cleaned or None


def handle_identity(handle: str | None, platform: str | None) -> str | None:
    """A social handle with its platform ("weibo:小王"), as intake keys it; without one, bare."""
    cleaned = (handle or "").strip()
    if not cleaned:
        return None
    return f"{platform}:{cleaned}" if platform else cleaned


def contact_identities(contact: ContactReceived) -> list[Identity]:
    """The e-mail, phone (E.164 from intake) and social handle a contact gave."""
    hints = contact.customer
    found: list[Identity] = []
    email = email_identity(hints.email)
    if email:
        found.append(("email", email))
    if hints.phone and hints.phone.strip():
        found.append(("phone", hints.phone.strip()))
    handle = handle_identity(hints.social_handle, contact.thread.social_platform)
    if handle:
        found.append(("handle", handle))
    return found


@dataclass
class CustomerSighting:
    """What a batch of contacts says of one customer: the latest name given (and when), the
    first and last contact, how many, and the identities they gave (first seen when)."""

    customer_id: uuid.UUID
    first_contact_at: datetime
    last_contact_at: datetime
    contacts: int = 0
    name: str | None = None
    name_at: datetime | None = None
    identities: dict[Identity, datetime] = field(default_factory=dict)

    def add(self, contact: ContactReceived) -> None:
        at = contact.received_at
        self.contacts += 1
        self.first_contact_at = min(self.first_contact_at, at)
        self.last_contact_at = max(self.last_contact_at, at)
        name = customer_display_name(contact.customer.name)
        if name and (self.name_at is None or at >= self.name_at):
            self.name, self.name_at = name, at
        for identity in contact_identities(contact):
            seen = self.identities.get(identity)
            self.identities[identity] = at if seen is None else min(seen, at)


def sightings(contacts: Iterable[ContactReceived]) -> list[CustomerSighting]:
    """Each customer's sighting in a batch, in customer id order (the order their rows are
    locked in, so two batches never wait on each other in a cycle)."""
    by_customer: dict[uuid.UUID, CustomerSighting] = {}
    for contact in contacts:
        seen = by_customer.get(contact.customer_id)
        if seen is None:
            at = contact.received_at
            seen = by_customer[contact.customer_id] = CustomerSighting(contact.customer_id, at, at)
        seen.add(contact)
    return [by_customer[c] for c in sorted(by_customer)]


# --- search -------------------------------------------------------------------------------


class InvalidQuery(ValueError):
    """The search text is empty, too long, or a phone number that cannot be one."""


@dataclass(frozen=True)
class CustomerQuery:
    """What to look for: an identity's exact value, or a name (substring, or prefix when
    shorter than `SUBSTRING_MIN_CHARS`)."""

    kind: Literal["email", "phone", "name"]
    value: str

    @property
    def name_as_prefix(self) -> bool:
        return self.kind == "name" and len(self.value) < SUBSTRING_MIN_CHARS


def normalize_phone_query(raw: str, region: str) -> str:
    """The E.164 form of a phone number as a person types it: "+86 138-0013-8000",
    "0086 13800138000", "86 13800138000", "(138) 0013 8000" (national, read in `region`),
    full-width digits. A number valid in `region` wins; else the digits read with their country
    code; else any possible reading."""
    text = raw.strip().replace("\uff0b", "+")
    if text.startswith("00"):
        text = "+" + text[2:]
    readings = [(text, region.upper())]
    if not text.startswith("+"):
        readings.append(("+" + text, "ZZ"))
    parsed: list[phonenumbers.PhoneNumber] = []
    for candidate, where in readings:
        try:
            parsed.append(phonenumbers.parse(candidate, where))
        except phonenumbers.NumberParseException:
            continue
    chosen = next((n for n in parsed if phonenumbers.is_valid_number(n)), None)
    chosen = chosen or next((n for n in parsed if phonenumbers.is_possible_number(n)), None)
    if chosen is None:
        raise InvalidQuery(f"{raw!r} is not a phone number")
    return phonenumbers.format_number(chosen, phonenumbers.PhoneNumberFormat.E164)


def customer_query(raw: str, phone_region: str) -> CustomerQuery:
    """An e-mail (has an @: exact, case-insensitive), a phone number (only digits and
    separators, five digits or more: its E.164 form) or a name (anything else: whitespace
    collapsed, case-insensitive)."""
    text = " ".join(raw.split())
    if not text:
        raise InvalidQuery("the search text is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"the search text is longer than {MAX_QUERY_CHARS} characters")
    if "@" in text:
        return CustomerQuery("email", text.lower())
    digits = sum(ch.isdigit() for ch in text)
    if _PHONE_LIKE.match(text) and digits >= _MIN_PHONE_DIGITS:
        return CustomerQuery("phone", normalize_phone_query(text, phone_region))
    return CustomerQuery("name", text.lower())


def like_pattern(query: CustomerQuery) -> str:
    """The LIKE pattern of a name query, its wildcards escaped (backslash is the escape)."""
    escaped = query.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%" if query.name_as_prefix else "%" + escaped + "%"


# --- merging ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerState:
    """What a merge decides on: the customer's row as locked."""

    id: uuid.UUID
    display_name: str | None
    name_at: datetime | None
    first_contact_at: datetime
    last_contact_at: datetime
    contact_count: int
    merged_into: uuid.UUID | None


class MergeRefused(Exception):
    """Why these two customers cannot be merged; `field` is the request's field at fault."""

    def __init__(self, reason: str, *, status: int, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.field = field


@dataclass(frozen=True)
class MergePlan:
    """The merge decided: the source's tickets and identities go to the target, whose view
    becomes the union of both (the latest name given wins, earliest first and latest last
    contact, counts added)."""

    source: uuid.UUID
    target: uuid.UUID
    display_name: str | None
    name_at: datetime | None
    first_contact_at: datetime
    last_contact_at: datetime
    contact_count: int


def plan_merge(source: CustomerState, target: CustomerState) -> MergePlan:
    """Merge `source` into `target`, or refuse: into itself (422 naming body.into), a source
    already merged (409), a target that is merged itself (409, naming the one it went to)."""
    if source.id == target.id:
        raise MergeRefused("a customer cannot be merged into itself", status=422, field="body.into")
    if source.merged_into is not None:
        raise MergeRefused(
            f"customer {source.id} was already merged into {source.merged_into}", status=409
        )
    if target.merged_into is not None:
        raise MergeRefused(
            f"customer {target.id} was merged into {target.merged_into}: merge into that one",
            status=409,
            field="body.into",
        )
    name, name_at = target.display_name, target.name_at
    if source.display_name and (
        name is None or (source.name_at and (name_at is None or source.name_at > name_at))
    ):
        name, name_at = source.display_name, source.name_at
    return MergePlan(
        source=source.id,
        target=target.id,
        display_name=name,
        name_at=name_at,
        first_contact_at=min(source.first_contact_at, target.first_contact_at),
        last_contact_at=max(source.last_contact_at, target.last_contact_at),
        contact_count=source.contact_count + target.contact_count,
    )
