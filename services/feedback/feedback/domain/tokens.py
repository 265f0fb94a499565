"""Signed, expiring survey links: the token carries the survey id and its expiry, signed with
HMAC-SHA256, so answering needs no lookup table of issued tokens and a forged id is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid
from datetime import UTC, datetime

_VERSION = 1
_BODY = struct.Struct(">B16sQ")  # version, survey id, expiry (unix seconds)


class InvalidToken(Exception):
    """The token was not issued by us (malformed, or its signature does not match)."""


class ExpiredToken(Exception):
    """The token is genuine but its validity ended."""

    def __init__(self, survey_id: uuid.UUID, expired_at: datetime) -> None:
        super().__init__(f"survey link expired at {expired_at.isoformat()}")
        self.survey_id = survey_id
        self.expired_at = expired_at


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict: the decoder alone ignores characters outside the alphabet and the unused low bits
    of the last one, so several strings would read as one token. Only the canonical one does."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, b"survey-token\x00" + body, hashlib.sha256).digest()


def issue_token(survey_id: uuid.UUID, expires_at: datetime, secret: bytes) -> str:
    body = _BODY.pack(_VERSION, survey_id.bytes, int(expires_at.timestamp()))
    return f"{_b64(body)}.{_b64(_mac(secret, body))}"


def read_token(token: str, secret: bytes, now: datetime) -> uuid.UUID:
    """The survey id of a genuine, unexpired token; InvalidToken or ExpiredToken otherwise.

    The signature is checked before the expiry so that a forger learns nothing from the answer.
    """
    try:
        body_text, mac_text = token.split(".")
        body, mac = _unb64(body_text), _unb64(mac_text)
        version, raw_id, expiry = _BODY.unpack(body)
    except (ValueError, struct.error) as exc:
        raise InvalidToken("malformed survey token") from exc
    if not hmac.compare_digest(mac, _mac(secret, body)) or version != _VERSION:
        raise InvalidToken("survey token signature does not match")
    expires_at = datetime.fromtimestamp(expiry, UTC)
    survey_id = uuid.UUID(bytes=raw_id)
    if now >= expires_at:
        raise ExpiredToken(survey_id, expires_at)
    return survey_id
