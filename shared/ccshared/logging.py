"""Structured JSON logs carrying the request's or event's correlation id; secrets redacted."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

# Secrets and customer text that might reach a log line, a dead letter's headers or an error
# trace through an exception message, a URL or a repr. Matched by their shape, whatever label
# (if any) they carry: one pattern per kind of secret this system issues or accepts.
# redact() runs on every log record, and a record can carry text from outside (an exception
# quoting a request body), so every pattern costs time linear in the text: each starts only
# where a run of its characters starts (a look-behind) and scans that run once (possessive
# repeats, or a bounded one), never from each position of the run again.
_ID = r"[A-Za-z0-9_-]"  # base64url, and the characters of identifiers
# A quoted value to its closing quote (an escaped quote does not close it), or the line's end.
_QUOTED = r"""(")(?:[^"\\\n]|\\.)*+|(')(?:[^'\\\n]|\\.)*+"""
_LABELS = r"password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key|credentials?"
# Each pattern with the (lower-case) strings one of which a text must hold for the pattern to
# match anything, None when there is no such string: `in` costs a fraction of a regex scan.
_LABEL_NEEDLES = ("pass", "secret", "token", "key", "credential")
_SECRET_PATTERNS: list[tuple[tuple[str, ...] | None, re.Pattern[str], str]] = [
    # user:password@ in a URL (database, broker and cache URLs): the password runs to the last
    # @ before the host (an unencoded @ in it), the user may be empty (redis://:pw@host).
    (("://",), re.compile(r"(://[^\s/?#@:]*+:)[^\s/?#]*@"), r"\1***@"),
    # A PEM private key, e.g. the token issuer's (to the end of the text if cut short).
    (
        ("private key",),
        re.compile(
            r"-----BEGIN ([A-Z0-9 ]{0,40})PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)",
            re.S,
        ),
        r"-----BEGIN \1PRIVATE KEY-----***",
    ),
    # A JWT (the UI users' tokens): base64url of '{"' starts its header.
    (("eyj",), re.compile(rf"(?<!{_ID})eyJ{_ID}*+\.{_ID}++\.{_ID}*+"), "<jwt ***>"),
    # Any bearer credential, whatever its shape.
    (("bearer",), re.compile(r"(?i)\b(bearer\s++)[A-Za-z0-9._~+/=-]++"), r"\1***"),
    # Intake API keys, cck_<prefix>_<secret>: the prefix names the key (listings show it).
    (("cck_",), re.compile(r"(?<![A-Za-z0-9_-])(cck_[0-9a-f]{12}_)[A-Za-z0-9_-]++"), r"\1***"),
    (
        ("cck_",),
        re.compile(r"(?<![A-Za-z0-9_-])cck_(?![0-9a-f]{12}_\*)[A-Za-z0-9_-]{8,}+"),
        "cck_***",
    ),
    # Webhook signing secrets as feedback generates them.
    (("whsec_",), re.compile(r"(?<![A-Za-z0-9_-])whsec_[A-Za-z0-9_-]++"), "whsec_***"),
    # Survey link tokens: base64url of 25 bytes (id, expiry) and of a 32-byte MAC.
    (None, re.compile(rf"(?<!{_ID}){_ID}{{34}}\.{_ID}{{43}}(?!{_ID})"), "<survey-token ***>"),
    # The Authorization header, whatever its scheme (Basic, Digest, ...): the whole value, to
    # its closing quote when quoted, else to the end of the line.
    (
        ("authorization",),
        re.compile(
            r"(?i)(?<![A-Za-z0-9_])((?:proxy[_-])?authorization[\"']?\s*+[:=]\s*+)"
            rf"(?:{_QUOTED}|[^\n]++)"
        ),
        r"\1\2\3***",
    ),
    # Labelled values, the label alone or ending a name (FEEDBACK_TOKEN_SECRET=, client_secret=,
    # x_api_key=, access_token=, "secret_key": ...): a quoted value to its closing quote.
    (
        _LABEL_NEEDLES,
        re.compile(
            rf"(?i)(?<![A-Za-z0-9_-])((?:[A-Za-z0-9]+[_-])*(?:{_LABELS})(?:[_-]key)?[\"']?"
            rf"\s*+[:=]\s*+)(?:{_QUOTED}|(?:bearer\s++)?[^\s\"',;&]++)"
        ),
        r"\1\2\3***",
    ),
    # Values quoted back by the libraries: asyncpg's DataError names the refused parameter,
    # pydantic the refused input (customer text as often as not), SQLAlchemy its parameters
    # (engines are made with hide_parameters; this covers any other), PostgreSQL the row or
    # key a constraint refused (DETAIL: Failing row contains (...), Key (email)=(...)).
    (
        ("invalid input for query argument",),
        re.compile(r"(invalid input for query argument \$\d+[^:\n]{0,200}: )[^\n]*+"),
        r"\1***",
    ),
    (("input_value=",), re.compile(r"(?m)(input_value=).*?(, input_type=|$)"), r"\1***\2"),
    (("[parameters: ",), re.compile(r"(?m)^(\[parameters: ).*+$"), r"\1***]"),
    (("detail:",), re.compile(r"(?<![A-Za-z0-9_])(DETAIL:)[^\n]*+"), r"\1 ***"),
    (
        ("key (", "failing row contains ("),
        re.compile(r"(Key \([^()\n]{0,500}\)=\(|Failing row contains \()[^\n]*+"),
        r"\1***)",
    ),
]

# The most of a text redact() scans and returns: a log line or a trace is a few KB, one quoting
# a hostile body could be megabytes.
REDACT_MAX_CHARS = 16_384


def redact(text: str, limit: int = REDACT_MAX_CHARS) -> str:
    """`text` with the secrets and customer data it quotes masked, cut to about `limit`
    characters first (at white space, so no secret is left half there and unrecognised)."""
    if len(text) > limit:
        head = text[:limit]
        # Back to the last white space: what a cut leaves of a secret could be too short to
        # be recognised (a URL's password without its @), and a secret holds no white space
        # (but in quotes or a header's value, which are masked to the end of the text anyway).
        head = head[: max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"), 0)]
        text = f"{head} … [{len(text) - len(head)} characters cut]"
    lower = text.lower()
    for needles, pattern, replacement in _SECRET_PATTERNS:
        if needles is None or any(needle in lower for needle in needles):
            text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts a record before any handler formats it: its message with the arguments filled
    in, its exception and stack text, and its string extras. On the handlers, so it covers
    every logger that propagates to them (a filter on a logger sees only that logger's own)."""

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the handler's to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exceptions.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and isinstance(value, str):
                record.__dict__[key] = redact(value)
        return True


_STD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    """One JSON line a record. It redacts nothing itself: the handler's RedactingFilter has
    done that before any formatter sees the record (once a record, not once a formatter)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_text:  # formatted (and redacted) by RedactingFilter
            entry["exc"] = record.exc_text
        elif record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter(service)
        if json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every reconnect at ERROR; keep ours readable.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Route uvicorn's own loggers through the JSON handler; an access log that uvicorn was told
    # to switch off (--no-access-log: no handlers, no propagation) stays off.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        if lg.handlers:
            lg.handlers[:] = []
            lg.propagate = True
