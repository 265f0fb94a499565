"""Hostile raw e-mails are refused quickly, naming what was over the limit, and never raise
anything but InvalidRawEmail (the API's 422/413)."""

from __future__ import annotations

import functools

import pytest

from intake.domain.rfc822 import InvalidRawEmail, RawEmailLimits, parse_rfc822
from tests.helpers import best_seconds
from tests.unit.intake.hostile_email import HEAD, HOSTILE

# Each took from 0.5 s to minutes (or raised RecursionError) before. Time is judged against a
# ceiling measured in the same run: parsing an ordinary message of 1 MB (Chinese and English
# text, the size of a large real e-mail). Within the limits, nothing may cost more than
# QUICK_TIMES that; the quadratic and exponential shapes the limits cut off cost thousands.
QUICK_TIMES = 50


@functools.cache
def _ordinary_megabyte_s() -> float:
    line = "您好，订单 20240518-7731 的发票还没收到。Hello, the invoice is still missing.\r\n"
    raw = (HEAD + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + line * 10_000).encode()
    return max(best_seconds(lambda: parse_rfc822(raw)), 0.001)


def _refused(raw: bytes) -> None:
    with pytest.raises(InvalidRawEmail):
        parse_rfc822(raw)


def assert_quick(seconds: float, what: str) -> None:
    ceiling = _ordinary_megabyte_s()
    assert seconds < QUICK_TIMES * ceiling, (
        f"{what}: {seconds * 1000:.0f} ms, {seconds / ceiling:.0f}× an ordinary 1 MB message"
    )


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_email_is_refused_quickly_naming_what_is_wrong(name: str) -> None:
    raw, field = HOSTILE[name]
    with pytest.raises(InvalidRawEmail) as refused:
        parse_rfc822(raw)
    assert_quick(best_seconds(lambda: _refused(raw), repeat=2), name)
    assert refused.value.field.startswith(field), (name, refused.value.field, str(refused.value))
    assert refused.value.status in (413, 422)


def test_the_largest_message_within_every_limit_parses_in_well_under_a_second() -> None:
    """Just inside the limits that bound the feed parser: 49 multiparts around 99,000 lines,
    and 1,900 delimiter lines, in one message."""
    limits = RawEmailLimits(mime_depth=100)
    depth = 49
    opening = "".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n" for i in range(depth)
    )
    closing = "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    inner = f"--b{depth}\r\nContent-Type: text/plain\r\n\r\n" + "--\n" * 1_800 + "\n" * 97_000
    raw = (
        HEAD
        + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
        + opening
        + inner
        + f"\r\n--b{depth}--\r\n"
        + closing
    ).encode()
    body = parse_rfc822(raw, limits=limits)
    assert body["text"].startswith("--\n--\n")
    assert_quick(best_seconds(lambda: parse_rfc822(raw, limits=limits), repeat=2), "largest")


def test_many_recipients_within_the_limit_are_read_and_the_first_100_kept() -> None:
    to = ", ".join(f'"Kunde {i}" <k{i}@example.com>' for i in range(800))
    raw = (HEAD + f"To: {to}\r\n\r\nhi\r\n").encode()
    body = parse_rfc822(raw)
    assert len(body["email"]["to"]) == 100
    assert_quick(best_seconds(lambda: parse_rfc822(raw), repeat=2), "800 recipients")
    assert body["email"]["to"][0] == {"name": "Kunde 0", "address": "k0@example.com"}


def test_limits_are_reported_with_the_size_found() -> None:
    raw, _ = HOSTILE["300 MIME parts"]
    with pytest.raises(InvalidRawEmail, match=r"MIME parts: 201 \(limit 200\)"):
        parse_rfc822(raw)
