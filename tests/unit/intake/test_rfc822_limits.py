"""Hostile raw e-mails are refused quickly, naming what was over the limit, and never raise
anything but InvalidRawEmail (the API's 422/413)."""

from __future__ import annotations

import time

import pytest

from intake.domain.rfc822 import InvalidRawEmail, RawEmailLimits, parse_rfc822
from tests.unit.intake.hostile_email import HEAD, HOSTILE

# Each took from 0.5 s to minutes (or raised RecursionError) before; the bound leaves room for
# a busy two-core machine.
QUICK_S = 1.0


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_email_is_refused_quickly_naming_what_is_wrong(name: str) -> None:
    raw, field = HOSTILE[name]
    started = time.perf_counter()
    with pytest.raises(InvalidRawEmail) as refused:
        parse_rfc822(raw)
    elapsed = time.perf_counter() - started
    assert elapsed < QUICK_S, f"{name}: {elapsed:.2f} s"
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
    started = time.perf_counter()
    body = parse_rfc822(raw, limits=limits)
    assert time.perf_counter() - started < QUICK_S
    assert body["text"].startswith("--\n--\n")


def test_many_recipients_within_the_limit_are_read_and_the_first_100_kept() -> None:
    to = ", ".join(f'"Kunde {i}" <k{i}@example.com>' for i in range(800))
    raw = (HEAD + f"To: {to}\r\n\r\nhi\r\n").encode()
    started = time.perf_counter()
    body = parse_rfc822(raw)
    assert time.perf_counter() - started < QUICK_S
    assert len(body["email"]["to"]) == 100
    assert body["email"]["to"][0] == {"name": "Kunde 0", "address": "k0@example.com"}


def test_limits_are_reported_with_the_size_found() -> None:
    raw, _ = HOSTILE["300 MIME parts"]
    with pytest.raises(InvalidRawEmail, match=r"MIME parts: 201 \(limit 200\)"):
        parse_rfc822(raw)
