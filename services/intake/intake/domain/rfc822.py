"""Turns a raw RFC 5322 message, as email gateways deliver it (message/rfc822), into the body of
an email contact: the same dict a channel integration would POST to /v1/contacts.

Two kinds of input shape this module.

Hostile mail. The stdlib's `policy.default` header parser slices the rest of the header for
every token, so it is quadratic in a header's length (a 32 KB `To:` of commas took 8 s, a 420 KB
Subject of encoded words 12 s), and it and the address parser recurse on nested comments; the
feed parser takes about 0.2 ms per MIME part and recurses per nesting level. So the limits in
`RawEmailLimits` are checked on the bytes before the stdlib sees them and again on every part
while walking the tree, the tree is walked without recursion, and headers are decoded here with
linear code (`email.utils.getaddresses`, an encoded-word decoder of our own) on the compat32
parser's raw header values, never by `policy.default`. Worst case after the limits: well under
a second of CPU (`tests/unit/intake/test_rfc822_limits.py`); the API runs this in a worker
process with a time budget on top (`intake.tasks.parse_pool`).

Real-world mail. Mail servers deliver messages without Message-ID or Date, with a sender only
in Sender/Reply-To/Return-Path, with charsets that lie (GB2312 labels on GBK text) and raw 8-bit
headers. A missing Message-ID is derived from the content (`derived_message_id`), so a retry
of the same message is still recognized; a missing or far-future Date falls back to the time of
receipt (the newest Received header, else the request's time); only a message with no usable
sender address at all is refused.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from intake.domain.normalize import (
    InvalidEmailAddress,
    InvalidHtml,
    normalize_email,
    sanitize_html,
)

# As the contact model takes them (intake.domain.contact_models); longer values are cut here, not
# refused: a long subject or text does not make a message less of a contact.
MAX_ID_CHARS = 512
MAX_NAME_CHARS = 256
MAX_SUBJECT_CHARS = 1_000
MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 500_000
MAX_LIST_ITEMS = 100


@dataclass(frozen=True)
class RawEmailLimits:
    """What a raw message may hold; over a limit is refused (422) before it is parsed further.
    Real mail stays far below each: a few dozen header fields of a few hundred bytes, a
    handful of MIME parts three or four levels deep, a few encoded words per header."""

    header_bytes: int = 64 * 1024  # one header section (the message's, or a part's)
    header_fields: int = 500  # fields in one header section
    field_bytes: int = 32 * 1024  # one field, its folded lines included
    comment_depth: int = 16  # nested (comments) in an address field
    encoded_words: int = 2_000  # =?charset?b?...?= words in all header fields together
    mime_parts: int = 200
    mime_depth: int = 16
    # Counted on the bytes, before the feed parser runs: its cost grows with the parts (about
    # 0.2 ms each, and each needs a line starting with "--"), and with lines times the
    # multiparts around them (it checks every line against every enclosing boundary).
    delimiter_lines: int = 2_000
    containers: int = 50  # "Content-Type: multipart/..." or "message/..." headers
    lines: int = 100_000


DEFAULT_LIMITS = RawEmailLimits()


class InvalidRawEmail(ValueError):
    """The bytes are not an email message intake can take. `field` names what is wrong
    ("body", "body.header.To", "body.mime", ...); `status` is 413 for plain size, else 422."""

    def __init__(
        self,
        message: str,
        field: str = "body",
        kind: str = "rfc822_invalid",
        status: int = 422,
    ) -> None:
        super().__init__(message, field, kind, status)  # all in args: it crosses processes
        self.message = message
        self.field = field
        self.kind = kind
        self.status = status

    def __str__(self) -> str:
        return self.message


def _over_limit(what: str, field: str, size: int, limit: int) -> InvalidRawEmail:
    return InvalidRawEmail(f"{what}: {size} (limit {limit})", field, "rfc822_limit_exceeded")


@dataclass(frozen=True)
class ParsedEmail:
    body: dict[str, Any]
    """The contact body, as a client would POST it."""
    received_at_is_request_time: bool
    """No Date or Received header said when it arrived: `received_at` is the request's time,
    which a retry does not repeat (so it should not count when a retry is recognized)."""


def parse_rfc822(
    raw: bytes,
    *,
    fallback_received_at: datetime | None = None,
    max_future_skew_s: float = 300,
    limits: RawEmailLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Return the contact body of a raw message; validate it with the API's contact model.
    See `read_rfc822`."""
    return read_rfc822(
        raw,
        fallback_received_at=fallback_received_at,
        max_future_skew_s=max_future_skew_s,
        limits=limits,
    ).body


def read_rfc822(
    raw: bytes,
    *,
    fallback_received_at: datetime | None = None,
    max_future_skew_s: float = 300,
    limits: RawEmailLimits = DEFAULT_LIMITS,
) -> ParsedEmail:
    """Parse a raw message into a contact body.

    `received_at` is the Date header unless it is missing, unreadable or more than
    `max_future_skew_s` ahead of `fallback_received_at` (the request's time, which stands in
    last, after the newest Received header). Recipients that are not valid addresses are
    dropped rather than refusing a customer's message over a bad Cc. Attachment content is not
    kept, only its name, type and decoded size. Raises `InvalidRawEmail`.
    """
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        raise InvalidRawEmail("the message is empty")
    raw = bytes(raw)
    _check_bytes(raw, limits)
    try:
        message = message_from_bytes(raw)
        parts = _walk(message, limits)
        return _contact_body(message, parts, fallback_received_at, max_future_skew_s)
    except InvalidRawEmail:
        raise
    except RecursionError:
        raise InvalidRawEmail("the message is nested too deeply to parse", "body.mime") from None
    except (ValueError, LookupError, TypeError, AttributeError, IndexError) as exc:
        # The stdlib parser is lenient; what still breaks it is a message too mangled to trust.
        raise InvalidRawEmail(f"the message cannot be parsed: {exc}") from exc


# --- limits -------------------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"^[^ \t\r\n]", re.MULTILINE)
_CONTAINER = re.compile(rb"content-type[ \t]*:[ \t\r\n]*(?:multipart|message)/", re.IGNORECASE)
_ENCODED_WORD_START = b"=?"


def _check_bytes(raw: bytes, limits: RawEmailLimits) -> None:
    """Cheap checks on the bytes (C-speed scans, about a millisecond per MiB) that bound what
    the stdlib parser will be given: the top header section, lines that could be MIME
    delimiters, and how many multiparts or attached messages could nest."""
    end = _HEADER_END.search(raw)
    header = raw[: end.start()] if end else raw
    if len(header) > limits.header_bytes:
        raise _over_limit("header section bytes", "body.header", len(header), limits.header_bytes)
    fields = len(_FIELD_START.findall(header))
    if fields > limits.header_fields:
        raise _over_limit("header fields", "body.header", fields, limits.header_fields)
    words = header.count(_ENCODED_WORD_START)
    if words > limits.encoded_words:
        raise _over_limit("encoded words", "body.header", words, limits.encoded_words)
    delimiters = raw.count(b"\n--")
    if delimiters > limits.delimiter_lines:
        raise _over_limit("MIME delimiter lines", "body.mime", delimiters, limits.delimiter_lines)
    containers = len(_CONTAINER.findall(raw))
    if containers > limits.containers:
        raise _over_limit(
            "MIME multiparts and messages", "body.mime", containers, limits.containers
        )
    lines = raw.count(b"\n")
    if lines > limits.lines:
        raise _over_limit("lines", "body", lines, limits.lines)


@dataclass
class _Part:
    message: Message
    depth: int
    in_attached_message: bool


def _walk(message: Message, limits: RawEmailLimits) -> list[_Part]:
    """Every part in document order, without recursion, each checked against the limits."""
    found: list[_Part] = []
    words = 0
    stack = [_Part(message, 0, False)]
    while stack:
        part = stack.pop()
        found.append(part)
        if len(found) > limits.mime_parts:
            raise _over_limit("MIME parts", "body.mime", len(found), limits.mime_parts)
        if part.depth > limits.mime_depth:
            raise _over_limit("MIME nesting depth", "body.mime", part.depth, limits.mime_depth)
        words += _check_fields(part.message, limits)
        if words > limits.encoded_words:
            raise _over_limit("encoded words", "body.header", words, limits.encoded_words)
        payload = part.message.get_payload()
        if isinstance(payload, list):
            attached = part.in_attached_message or part.message.get_content_maintype() == "message"
            children = [p for p in payload if isinstance(p, Message)]
            stack += [_Part(p, part.depth + 1, attached) for p in reversed(children)]
    return found


_ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "return-path"})


def _check_fields(message: Message, limits: RawEmailLimits) -> int:
    """Check one part's header fields; return how many encoded words they hold."""
    items = list(message.raw_items())
    if len(items) > limits.header_fields:
        raise _over_limit("header fields", "body.header", len(items), limits.header_fields)
    total = words = 0
    for name, value in items:
        size = len(value)
        total += size + len(name)
        if size > limits.field_bytes:
            raise _over_limit(
                f"bytes in header {name}", f"body.header.{name}", size, limits.field_bytes
            )
        if name.lower() in _ADDRESS_FIELDS and value.count("(") > limits.comment_depth:
            depth = _comment_depth(value)
            if depth > limits.comment_depth:
                raise _over_limit(
                    f"nested comments in header {name}",
                    f"body.header.{name}",
                    depth,
                    limits.comment_depth,
                )
        words += value.count("=?")
    if total > limits.header_bytes:
        raise _over_limit("header section bytes", "body.header", total, limits.header_bytes)
    return words


def _comment_depth(value: str) -> int:
    depth = deepest = 0
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(0, depth - 1)
    return deepest


# --- the contact --------------------------------------------------------------------------

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def _contact_body(
    message: Message,
    parts: list[_Part],
    fallback_received_at: datetime | None,
    max_future_skew_s: float,
) -> ParsedEmail:
    charset = _declared_charset(parts)
    headers = _Headers(message, charset)
    sender = _sender(headers)
    plain, html_part = _bodies(parts)
    text = _clean(_decoded_text(plain), MAX_TEXT_CHARS) if plain is not None else None
    html = _clean(_decoded_text(html_part)) if html_part is not None else None
    if html is not None and len(html) > MAX_HTML_CHARS:
        raise InvalidRawEmail(
            f"the HTML body is {len(html)} characters (limit {MAX_HTML_CHARS})",
            "body.email.html",
            "rfc822_too_large",
            413,
        )
    try:
        sanitized = sanitize_html(html) if html is not None else None
    except InvalidHtml as exc:
        raise InvalidRawEmail(str(exc), "body.email.html", "rfc822_limit_exceeded") from None
    subject = headers.text("Subject")
    bodies = (plain, html_part)
    attachments = [_attachment(p.message) for p in parts if _is_attachment(p, bodies)]
    attachments = attachments[:MAX_LIST_ITEMS]
    date_header = headers.raw("Date")
    message_id = _first_message_id(headers.raw("Message-ID"))
    if message_id is None or len(message_id) > MAX_ID_CHARS:
        message_id = derived_message_id(
            sender["address"] or "", date_header, subject, text, html, attachments
        )
    in_reply_to = _first_message_id(headers.raw("In-Reply-To"))
    received_at, from_request = _received_at(
        date_header, headers.raw("Received"), fallback_received_at, max_future_skew_s
    )
    email: dict[str, Any] = {
        "message_id": message_id,
        "from": sender,
        "to": _valid_only(headers.mailboxes("To")),
        "cc": _valid_only(headers.mailboxes("Cc")),
        "in_reply_to": in_reply_to if in_reply_to and len(in_reply_to) <= MAX_ID_CHARS else None,
        "references": [
            ref
            for ref in _MESSAGE_ID.findall(headers.raw("References") or "")
            if len(ref) <= MAX_ID_CHARS
        ][-MAX_LIST_ITEMS:],
        "html": sanitized,
        "attachments": attachments,
    }
    return ParsedEmail(
        body={
            "channel": "email",
            "external_id": message_id,
            "received_at": received_at,
            "subject": subject[:MAX_SUBJECT_CHARS] if subject else None,
            "text": text,
            "email": email,
        },
        received_at_is_request_time=from_request,
    )


def derived_message_id(
    sender: str,
    date: str | None,
    subject: str | None,
    text: str | None,
    html: str | None,
    attachments: list[dict[str, Any]],
) -> str:
    """A Message-ID for a message that has none, from what makes it this message: the same
    content (relayed again, with other trace headers or line endings) gives the same id, so
    its retry is recognized. `.invalid` says it was never a real id."""
    digest = hashlib.sha256()
    for value in (sender.lower(), " ".join((date or "").split()), subject, text, html):
        digest.update((value or "").encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    for attachment in attachments:
        digest.update(repr(sorted(attachment.items())).encode("utf-8", "surrogatepass"))
    return f"<{digest.hexdigest()[:40]}@derived.intake.invalid>"


def _first_message_id(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    match = _MESSAGE_ID.search(value)
    if match:
        return match.group()
    return value or None  # some mailers omit the angle brackets


_Mailbox = dict[str, str | None]


def _sender(headers: _Headers) -> _Mailbox:
    """The first usable address of From, then Sender, Reply-To and Return-Path (the envelope
    sender). From's display name is kept even when its address is not usable."""
    from_boxes = headers.mailboxes("From")
    name = next((box["name"] for box in from_boxes if box["name"]), None)
    if name is None and from_boxes and "@" not in (headers.raw("From") or ""):
        name = _clean(headers.text("From") or "", MAX_NAME_CHARS).strip('" ') or None
    tried = []
    for field in ("From", "Sender", "Reply-To", "Return-Path"):
        for box in headers.mailboxes(field):
            address = box["address"] or ""
            try:
                normalize_email(address)
            except InvalidEmailAddress as exc:
                tried.append(f"{field} {address!r}: {exc}")
                continue
            return {"name": name or box["name"], "address": address}
    found = "; ".join(tried[:3]) or "none of From, Sender, Reply-To, Return-Path has one"
    raise InvalidRawEmail(
        f"the message has no usable sender address ({found})",
        "body.header.From",
        "rfc822_no_sender",
    )


def _valid_only(mailboxes: list[_Mailbox]) -> list[_Mailbox]:
    """The first `MAX_LIST_ITEMS` mailboxes whose address is valid (the rest are not kept,
    so not checked either)."""
    valid: list[_Mailbox] = []
    for mailbox in mailboxes:
        if len(valid) == MAX_LIST_ITEMS:
            break
        try:
            normalize_email(mailbox["address"] or "")
        except InvalidEmailAddress:
            continue
        valid.append(mailbox)
    return valid


def _received_at(
    date: str | None,
    received: str | None,
    fallback: datetime | None,
    max_future_skew_s: float,
) -> tuple[datetime, bool]:
    latest = None if fallback is None else fallback + timedelta(seconds=max_future_skew_s)
    for value in (date, received.rsplit(";", 1)[-1] if received and ";" in received else None):
        when = _parse_date(value)
        if when is not None and (latest is None or when <= latest):
            return when, False
    if fallback is None:
        raise InvalidRawEmail("the message has no readable Date header", "body.header.Date")
    return fallback, True


def _parse_date(value: str | None) -> datetime | None:
    if not value or not value.strip():
        return None
    try:
        when = parsedate_to_datetime(" ".join(value.split()))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # RFC 5322 "-0000": the time is UTC, the sender's zone unknown.
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


# --- headers ------------------------------------------------------------------------------


class _Headers:
    """One message's header fields, decoded in linear time: RFC 2047 encoded words, and raw
    8-bit bytes (which many mailers send) read as UTF-8, else as the message's charset."""

    def __init__(self, message: Message, charset: str | None) -> None:
        self._values: dict[str, str] = {}
        for name, value in message.raw_items():
            self._values.setdefault(name.lower(), value)
        self._charset = charset

    def raw(self, name: str) -> str | None:
        """The first field of that name, unfolded, 8-bit bytes decoded; encoded words kept."""
        value = self._values.get(name.lower())
        if value is None:
            return None
        return _unfold(_decode_8bit(value, self._charset))

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        return _clean(decode_encoded_words(value)).strip() if value is not None else None

    def mailboxes(self, name: str) -> list[_Mailbox]:
        value = self.raw(name)
        if value is None:
            return []
        found: list[_Mailbox] = []
        for display_name, address in getaddresses([value]):
            if not address and not display_name:
                continue
            decoded = _clean(decode_encoded_words(display_name), MAX_NAME_CHARS).strip()
            found.append({"name": decoded or None, "address": _clean(address).strip()})
        return found


_FOLDING = re.compile(r"\r?\n(?=[ \t])")
_SURROGATES = re.compile("[\udc80-\udcff]+")


def _unfold(value: str) -> str:
    return _FOLDING.sub("", value).strip()


def _decode_8bit(value: str, charset: str | None) -> str:
    """The parser keeps bytes >= 0x80 of a header as surrogate escapes: decode those runs."""
    if not _SURROGATES.search(value):
        return value
    return decode_bytes(value.encode("ascii", "surrogateescape"), charset)


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"[ \t\r\n]*")


def decode_encoded_words(value: str) -> str:
    """Decode RFC 2047 encoded words in one pass. Adjacent words (only whitespace between)
    are joined before decoding, so a character split across two words (as Outlook and some
    Chinese webmail split GBK and UTF-8) comes out whole; an undecodable word stays as it is."""
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset: str | None = None
    position = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset))
            pending.clear()
        pending_charset = None

    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        if not (pending and _BETWEEN_WORDS.fullmatch(between)):
            flush()
            out.append(between)
        charset = match.group(1).split("*", 1)[0].lower()  # RFC 2231 language suffix
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            flush()
            out.append(match.group())
        else:
            if pending and charset != pending_charset:
                flush()
            pending.append(data)
            pending_charset = charset
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out)


def _word_bytes(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            return base64.b64decode(text + "=" * (-len(text) % 4))
        return binascii.a2b_qp(text.encode("ascii", "surrogateescape"), header=True)
    except (ValueError, binascii.Error):
        return None


# --- bodies and charsets ------------------------------------------------------------------

# Labels that mailers use for a subset of what they send: read them as the superset, as
# browsers do (WHATWG Encoding), so that the GBK characters in "GB2312" mail survive.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "gb_2312-80": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "utf-8",  # 8-bit text labelled ASCII is UTF-8 far more often than anything
    "ascii": "utf-8",
    "iso-8859-9": "cp1254",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
}
# Codecs that are not a mail charset, or that are slow on long input (punycode and idna are
# quadratic).
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "raw_unicode_escape", "unicode_escape", "undefined", "mbcs", "oem"}
)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip('"').lower()
    label = _SUPERSETS.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Text from bytes of a declared charset that may be missing, unknown or wrong: the
    declared one if the bytes are valid in it, else UTF-8, else GB18030, else the declared one
    (or Windows-1252) with replacement characters."""
    codec = _codec(declared)
    for candidate in (codec, "utf-8", "gb18030"):
        if candidate is None:
            continue
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode(codec or "cp1252", errors="replace")


def _declared_charset(parts: list[_Part]) -> str | None:
    """The charset of the message's first text part, to read raw 8-bit headers in."""
    for part in parts:
        if part.in_attached_message:
            break
        charset = part.message.get_content_charset()
        if charset:
            return charset
    return None


def _decoded_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_content_charset())


_NUL = re.compile("[\x00\ud800-\udfff]")


def _clean(value: str, max_chars: int | None = None) -> str:
    """Line ends as \\n, and no NUL or lone surrogate (the API refuses them in text)."""
    value = _NUL.sub("", value.replace("\r\n", "\n"))
    return value[:max_chars] if max_chars is not None else value


def _is_attachment_disposition(message: Message) -> bool:
    disposition = message.get("Content-Disposition")
    return isinstance(disposition, str) and disposition.split(";", 1)[0].strip().lower() == (
        "attachment"
    )


def _bodies(parts: list[_Part]) -> tuple[Message | None, Message | None]:
    """The plain and HTML bodies as `EmailMessage.get_body` would choose them: the first
    text/plain (text/html) part that is not an attachment, looking into multiparts (only the
    start part of a multipart/related) but not into attached messages."""
    plain = html = None
    for message in _body_candidates(parts[0].message):
        subtype = message.get_content_subtype()
        if subtype == "plain" and plain is None:
            plain = message
        elif subtype == "html" and html is None:
            html = message
    return plain, html


def _body_candidates(root: Message) -> Iterator[Message]:
    stack = [root]
    while stack:
        part = stack.pop()
        if _is_attachment_disposition(part):
            continue
        maintype = part.get_content_maintype()
        if maintype == "text":
            yield part
            continue
        children = part.get_payload()
        if maintype != "multipart" or not isinstance(children, list) or not children:
            continue
        if part.get_content_subtype() == "related":
            children = [_related_start(part, children)]
        stack += reversed([c for c in children if isinstance(c, Message)])


def _related_start(part: Message, children: list[Any]) -> Any:
    start = part.get_param("start")
    if isinstance(start, str):
        for child in children:
            if isinstance(child, Message) and child.get("Content-ID") == start:
                return child
    return children[0]


def _is_attachment(part: _Part, bodies: tuple[Message | None, ...]) -> bool:
    """Every leaf part that is not one of the bodies shown as text, inline images included.
    An attached message (message/rfc822) counts as one attachment, not as its parts."""
    if part.depth == 0 or part.in_attached_message:
        return False
    if any(part.message is body for body in bodies):
        return False
    leaf = not isinstance(part.message.get_payload(), list)
    return leaf or part.message.get_content_maintype() == "message"


_CONTENT_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def _attachment(part: Message) -> dict[str, Any]:
    payload = part.get_payload()
    if isinstance(payload, list):  # an attached message, or a delivery report's fields
        size = sum(len(p.as_bytes()) for p in payload if isinstance(p, Message))
    else:
        decoded = part.get_payload(decode=True)
        size = len(decoded) if isinstance(decoded, bytes) else 0
    content_type = part.get_content_type()
    filename = _filename(part)
    return {
        "filename": filename,
        "content_type": content_type
        if _CONTENT_TYPE.fullmatch(content_type)
        else "application/octet-stream",
        "size_bytes": size,
    }


def _filename(part: Message) -> str | None:
    name = part.get_filename() or part.get_param("name")
    if isinstance(name, tuple):  # RFC 2231 (charset, language, value)
        charset, _, value = name
        name = decode_bytes(value.encode("latin-1", "surrogateescape"), charset)
    if not isinstance(name, str):
        return None
    if _SURROGATES.search(name):
        name = decode_bytes(name.encode("ascii", "surrogateescape"), part.get_content_charset())
    return _clean(decode_encoded_words(_unfold(name)), MAX_NAME_CHARS).strip() or None
