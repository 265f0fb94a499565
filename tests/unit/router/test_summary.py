"""A ticket's summary line and wait (`router.domain.summary`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from router.domain.summary import (
    SUBJECT_LINE_CHARS,
    customer_display_name,
    subject_line,
    waiting_since,
)

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_the_subject_is_the_summary_line_when_there_is_one() -> None:
    assert subject_line("  Refund for order 88231 ", "Hello,\nI returned it") == (
        "Refund for order 88231"
    )


def test_without_a_subject_the_first_non_blank_line_of_the_text_is_used() -> None:
    assert subject_line(None, "\n\n  Hello,   where is\tmy order?\nSecond line") == (
        "Hello, where is my order?"
    )
    assert subject_line("   ", "我上周买的洗衣机一直漏水\n请尽快处理") == "我上周买的洗衣机一直漏水"


def test_a_long_line_is_cut_to_140_characters_ending_in_an_ellipsis() -> None:
    line = subject_line(None, "退款" * 200)
    assert line is not None
    assert len(line) == SUBJECT_LINE_CHARS
    assert line.endswith("…")
    assert subject_line("x" * SUBJECT_LINE_CHARS, None) == "x" * SUBJECT_LINE_CHARS


@pytest.mark.parametrize(("subject", "text"), [(None, None), ("", " \n\t\n"), (" ", "")])
def test_blank_subject_and_text_give_no_summary_line(subject: str | None, text: str | None) -> None:
    assert subject_line(subject, text) is None


def test_a_blank_customer_name_is_none_and_a_name_is_trimmed() -> None:
    assert customer_display_name("  王芳 ") == "王芳"
    assert customer_display_name("   ") is None
    assert customer_display_name(None) is None


def test_a_queued_or_offered_ticket_waits_since_it_was_queued_others_since_the_last_message() -> (
    None
):
    queued_at, last = T0, T0 + timedelta(minutes=5)
    assert waiting_since("queued", queued_at, last) == queued_at
    assert waiting_since("assigned", queued_at, last) == queued_at
    assert waiting_since("in_progress", queued_at, last) == last
    assert waiting_since("pending_customer", None, last) == last


def test_a_huge_one_line_text_is_read_only_as_far_as_its_summary_line_needs() -> None:
    huge = "漏水" * 500_000 + "\nsecond line"
    line = subject_line(None, huge)
    assert line is not None
    assert line == "漏水" * 69 + "漏…"
