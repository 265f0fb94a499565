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
_SECRET_PATTERNS = [
    # user:password@ in a URL (database and broker URLs).
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),
    # A PEM private key, e.g. the token issuer's (to the end of the text if cut short).
    (
        re.compile(
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S
        ),
        r"-----BEGIN \1PRIVATE KEY-----***",
    ),
    # A JWT (the UI users' tokens): base64url of '{"' starts its header.
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "<jwt ***>"),
    # Any bearer credential, whatever its shape.
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    # Intake API keys, cck_<prefix>_<secret>: the prefix names the key (listings show it).
    (re.compile(r"\b(cck_[0-9a-f]{12}_)[A-Za-z0-9_-]+"), r"\1***"),
    (re.compile(r"\bcck_(?![0-9a-f]{12}_\*)[A-Za-z0-9_-]{8,}"), "cck_***"),
    # Webhook signing secrets as feedback generates them.
    (re.compile(r"\bwhsec_[A-Za-z0-9_-]+"), "whsec_***"),
    # Survey link tokens: base64url of 25 bytes (id, expiry) and of a 32-byte MAC.
    (
        re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{34}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
        "<survey-token ***>",
    ),
    # Labelled values: password=..., "api_key": "...", token: ..., Authorization: ...
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|token|api[_-]?key|authorization)"
            r"(\"?\s*[:=]\s*\"?)(bearer\s+)?[^\s\",;&]+"
        ),
        r"\1\2\3***",
    ),
    # Values quoted back by the libraries: asyncpg's DataError names the refused parameter,
    # pydantic the refused input (customer text as often as not), SQLAlchemy its parameters
    # (engines are made with hide_parameters; this covers any other).
    (re.compile(r"(invalid input for query argument \$\d+[^:\n]*: )[^\n]*"), r"\1***"),
    (re.compile(r"(input_value=).*?(, input_type=)"), r"\1***\2"),
    (re.compile(r"(?m)^(\[parameters: ).*$"), r"\1***]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
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

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_text:  # already formatted (and redacted) by RedactingFilter
            entry["exc"] = redact(record.exc_text)
        elif record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter(service)
        if json
        else PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
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
