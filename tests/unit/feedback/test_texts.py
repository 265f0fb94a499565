from __future__ import annotations

import pytest

from feedback.domain.texts import TEXTS, survey_language, texts_for


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("zh_Hant_TW", "zh"),
        ("ZH", "zh"),
        ("en-GB", "en"),
        ("fr", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_survey_language_follows_the_ticket_and_defaults_to_english(
    language: str | None, expected: str
) -> None:
    assert survey_language(language) == expected


def test_chinese_and_english_texts_cover_the_same_questions() -> None:
    assert texts_for("zh-CN").csat == "您对本次服务的满意度如何？"
    assert texts_for("en").submit == "Send"
    for texts in TEXTS.values():
        assert "{url}" in texts.message
        assert all(value for value in vars(texts).values())
