from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback.domain.answers import Answer, InvalidAnswer, is_detractor, is_praise, may_update


@pytest.mark.parametrize(
    ("csat", "nps", "solved", "detractor"),
    [
        (2, 10, True, True),
        (3, 10, True, False),
        (5, 6, True, True),
        (5, 7, True, False),
        (5, 10, False, True),
        (5, 10, None, False),
        (None, None, False, True),
        (1, None, None, True),
    ],
)
def test_low_csat_low_nps_or_not_solved_is_a_detractor(
    csat: int | None, nps: int | None, solved: bool | None, detractor: bool
) -> None:
    assert is_detractor(Answer(csat, nps, solved, None)) is detractor


def test_praise_needs_top_scores_and_a_comment() -> None:
    assert is_praise(Answer(5, 9, True, "Lina was wonderful"))
    assert is_praise(Answer(5, 10, None, "谢谢！"))
    assert not is_praise(Answer(5, 10, True, "   "))
    assert not is_praise(Answer(4, 10, True, "good"))
    assert not is_praise(Answer(5, 8, True, "good"))
    assert not is_praise(Answer(5, None, True, "good"))


@pytest.mark.parametrize(
    ("csat", "nps", "field"), [(0, 5, "csat"), (6, 5, "csat"), (3, -1, "nps"), (3, 11, "nps")]
)
def test_scores_out_of_range_name_their_field(csat: int, nps: int, field: str) -> None:
    with pytest.raises(InvalidAnswer) as caught:
        Answer(csat, nps, None, None)
    assert caught.value.field == field


def test_an_empty_answer_is_refused() -> None:
    with pytest.raises(InvalidAnswer):
        Answer(None, None, None, "only a comment")


def test_answer_may_be_changed_only_within_the_window() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    assert may_update(t0, t0 + timedelta(hours=24), timedelta(hours=24))
    assert not may_update(t0, t0 + timedelta(hours=24, seconds=1), timedelta(hours=24))
