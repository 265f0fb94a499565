"""Canonical forms of the identifiers customers are matched on (phone, email, social handle)
and of the HTML bodies channels send; pure functions, no I/O."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser

import nh3
import phonenumbers
from email_validator import EmailNotValidError, validate_email

DEFAULT_PHONE_REGION = "CN"
"""Region assumed for numbers written without a leading + (national format)."""

_MAX_PHONE_INPUT_CHARS = 64
NORMALIZED_CACHE_SIZE = 8_192
"""How many valid e-mail addresses and phone numbers (each) keep their normalized form. A body
names the same address or number more than once (customer.email and email.from, customer.phone
and phone.caller), a raw e-mail's addresses are checked while reading it and again as the
contact, and most contacts name the company's own address or line and returning customers:
validating them was most of intake's CPU per body. Only successes are kept (an invalid input is
checked again each time, and raises as before); keys are at most 254 and 64 characters."""
# What a written phone number may look like: one leading "+" at most, digits (any script: the
# library reads full-width and other decimal digits), the usual separators, and an extension.
# phonenumbers itself is lenient: it skips leading junk ("++86...", "tel:"), reads letters as
# keypad digits ("1-800-FLOWERS") and takes the first number of "+1 ... or +86 ...": here
# anything but the shape above is refused rather than guessed at.
_PHONE_SHAPE = re.compile(
    r"[+\uff0b]?[\s(]*\d[\d\s().\-/\u2010-\u2015\u00a0\u3000]*"
    r"(?:(?:ext\.?|x|#|;ext=)\s*\d{1,10})?",
    re.IGNORECASE,
)
_MAX_HANDLE_CHARS = 256
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WHITESPACE_RUN = re.compile(r"\s+")


class InvalidPhoneNumber(ValueError):
    """The text is not a valid, dialable phone number."""


class UnknownPhoneRegion(ValueError):
    """The text is not an ISO 3166 alpha-2 region that has phone numbers."""


@dataclass(frozen=True)
class RegionHint:
    """The region a national-format number is read in, and where that choice came from."""

    region: str
    source: str  # e.g. "phone.region", "the called number", "the API key", "the default"


def phone_region_code(raw: str) -> str:
    """An ISO 3166 alpha-2 region with a numbering plan, upper-cased ("us" -> "US")."""
    region = raw.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise UnknownPhoneRegion(f"{raw!r} is not an ISO 3166 alpha-2 region with phone numbers")
    return region


def is_international(raw: str) -> bool:
    """Written with its country code ("+1 201 ..."), so no region is needed to read it."""
    return raw.lstrip().startswith(("+", "\uff0b"))


def choose_phone_region(
    *,
    explicit: str | None = None,
    call_numbers: Iterable[tuple[str, str | None]] = (),
    integration: str | None = None,
    default: str = DEFAULT_PHONE_REGION,
) -> RegionHint:
    """The region to read a national-format number in: the first hint there is, in order.

    1. `explicit`: the region the channel gave for this contact (`phone.region`);
    2. the country of the call: the first of `call_numbers` ((source, raw text) pairs, e.g.
       ("the called number", "+1 800 555 0100")) that is a valid international number;
    3. `integration`: the default region of the integration's API key;
    4. `default`: the service's default region.

    Only the first hint is used: a number that is not valid there is refused by
    `normalize_phone`, never tried in another region.
    """
    if explicit:
        return RegionHint(phone_region_code(explicit), "phone.region")
    for source, raw in call_numbers:
        if raw and is_international(raw):
            region = phone_region(raw)
            if region is not None and region != "001":  # 001: non-geographic (+800, +882...)
                return RegionHint(region, source)
    if integration:
        return RegionHint(integration.upper(), "the API key's region")
    return RegionHint(default.upper(), "the default region")


class InvalidEmailAddress(ValueError):
    """The text is not a syntactically valid email address."""


class InvalidHandle(ValueError):
    """The text cannot be a social-media handle."""


class InvalidHtml(ValueError):
    """The HTML is nested too deeply to sanitize in reasonable time."""


def normalize_phone(raw: str, default_region: str = DEFAULT_PHONE_REGION) -> str:
    """Return the E.164 form ("+8613800138000") of a phone number.

    A number without a leading + is read in the national format of `default_region`
    (ISO 3166 alpha-2; see `choose_phone_region` for picking it) and must be valid there.
    Extensions are dropped: E.164 has none, and customers are matched on the line, not the
    extension. Anything not shaped like a written phone number (letters, a second "+", text
    around the number) is refused, not cleaned up.
    """
    region = default_region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        # A configuration mistake, not the caller's input: deliberately not a ValueError,
        # so that a validation layer does not blame the client for it.
        raise LookupError(f"unknown phone region {default_region!r}")
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    if len(text) > _MAX_PHONE_INPUT_CHARS:
        raise InvalidPhoneNumber(f"phone number is longer than {_MAX_PHONE_INPUT_CHARS} characters")
    if not _PHONE_SHAPE.fullmatch(text):
        raise InvalidPhoneNumber(
            "not a phone number: only digits, spaces, ()-./, one leading + and an extension"
        )
    return _e164(text, region)


@lru_cache(maxsize=NORMALIZED_CACHE_SIZE)
def _e164(text: str, region: str) -> str:
    """`normalize_phone` once the text is trimmed, bounded and shaped like a number."""
    international = is_international(text)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        if international:
            raise InvalidPhoneNumber("not a valid phone number for its country")
        raise InvalidPhoneNumber(
            f"not a valid phone number in {region}; write it with its country code (+...)"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_region(raw: str) -> str | None:
    """Return the region (ISO 3166 alpha-2) of a valid international-format number, else None."""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.region_code_for_number(number)


def normalize_email(raw: str) -> str:
    """Return a validated address in the form customers are matched on: entirely lower-case.

    RFC 5321 lets the local part be case-sensitive, but no mainstream provider treats it so,
    and customer matching must see "Maria.Lopez@Example.com" and "maria.lopez@example.com"
    as one person. Internationalized addresses are kept in Unicode (NFC), not punycode.
    Deliverability (DNS) is not checked: this stays pure and fast.
    """
    return _matched_email(raw.strip())


@lru_cache(maxsize=NORMALIZED_CACHE_SIZE)
def _matched_email(text: str) -> str:
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailAddress(str(exc)) from exc
    return result.normalized.lower()


def normalize_handle(raw: str) -> str:
    """Return a social handle in the form it is compared in: trimmed, NFC, case-folded.

    A leading "@" is kept when given and never added: platforms differ on whether it is part
    of the name. Inner whitespace runs become one space (some platforms' author names have
    spaces).
    """
    handle = _WHITESPACE_RUN.sub(" ", unicodedata.normalize("NFC", raw).strip())
    handle = unicodedata.normalize("NFC", handle.casefold())
    if handle in ("", "@"):
        raise InvalidHandle("handle is empty")
    if len(handle) > _MAX_HANDLE_CHARS:
        raise InvalidHandle(f"handle is longer than {_MAX_HANDLE_CHARS} characters")
    if _CONTROL_CHARS.search(handle):
        raise InvalidHandle("handle contains control characters")
    return handle


MAX_HTML_DEPTH = 1_000
"""How deeply elements may nest. The sanitizer's HTML parser looks through the open elements
for every block tag, so its time grows with depth times tags: 20,000 nested <div>s took 1 s
(100,000: 25 s, holding the GIL), 1,000 deep with 100,000 tags 0.2 s. Real mail nests a few
dozen deep."""

_VOID_OR_SELF_CLOSING = frozenset(
    {
        "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "image",
        "img", "input", "keygen", "link", "meta", "param", "source", "track", "wbr",
        # closed implicitly by the next one of their kind, as parsers do
        "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "rb", "rt", "rp",
        "tbody", "thead", "tfoot", "colgroup",
    }
)  # fmt: skip
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)")


def html_depth(html: str) -> int:
    """An upper bound of how deeply the elements of `html` nest (unclosed tags count)."""
    if html.count("<") <= MAX_HTML_DEPTH:
        return 0  # cannot be deeper than it has tags; skip the scan
    depth = deepest = 0
    for closing, name in _TAG.findall(html):
        if name.lower() in _VOID_OR_SELF_CLOSING:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def sanitize_html(raw: str) -> str:
    """Return HTML safe to show in the agent console: no script, style, event handlers or
    javascript: links. Script and style elements are dropped with their content. Raises
    `InvalidHtml` for HTML nested deeper than `MAX_HTML_DEPTH`."""
    depth = html_depth(raw)
    if depth > MAX_HTML_DEPTH:
        raise InvalidHtml(f"HTML elements are nested {depth} deep (limit {MAX_HTML_DEPTH})")
    return nh3.clean(raw, clean_content_tags={"script", "style"})


_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "footer",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section",
        "table", "tr", "ul",
    }
)  # fmt: skip
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Return the readable text of an HTML body: one line per block, whitespace collapsed."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (
        _WHITESPACE_RUN.sub(" ", line).strip() for line in "".join(extractor.chunks).split("\n")
    )
    return "\n".join(line for line in lines if line)
