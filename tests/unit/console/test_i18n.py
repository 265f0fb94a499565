"""The console's words (console.domain.i18n): a catalog with a key twice or a language missing
does not load, and a page's language is the switch's, else the user's, else the browser's best
supported one by q, else English."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.domain.i18n import CatalogError, catalog, load_catalog, negotiate, translate


def _write(directory: Path, name: str, entries: dict[str, dict[str, str]]) -> Path:
    path = directory / name
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_key_in_two_files_is_refused(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.json", {"board.title": {"en": "Board", "zh": "看板"}})
    second = _write(tmp_path, "b.json", {"board.title": {"en": "Board", "zh": "看板"}})
    with pytest.raises(CatalogError, match=r"board\.title.*another file"):
        load_catalog([first, second])


@pytest.mark.parametrize("texts", [{"en": "Board"}, {"en": "Board", "zh": ""}, {"zh": "看板"}])
def test_a_key_without_both_languages_is_refused(tmp_path: Path, texts: dict[str, str]) -> None:
    path = _write(tmp_path, "a.json", {"board.title": texts})
    with pytest.raises(CatalogError, match="has no"):
        load_catalog([path])


def test_the_shipped_catalog_loads_with_both_languages_for_every_key() -> None:
    words = catalog()
    assert words
    assert all(set(texts) == {"en", "zh"} for texts in words.values())
    assert translate("app.name", "zh") == words["app.name"]["zh"]
    assert translate("no.such.key", "en") == "no.such.key"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9,zh;q=0.8", "en"),
        ("fr;q=1.0,zh-TW;q=0.5,en;q=0.4", "zh"),  # the best supported by q, not the first
        ("en;q=0.2,zh;q=0.9", "zh"),  # by q, whatever the order
        ("fr,de", "en"),  # nothing supported: English
        ("zh;q=0", "en"),  # q=0 means "not this"
        ("zh;q=abc", "en"),  # an unreadable q counts as 0
        ("", "en"),
        (None, "en"),
    ],
)
def test_the_browser_language_is_picked_by_q(accept: str | None, expected: str) -> None:
    assert negotiate(None, None, accept) == expected


def test_the_switch_cookie_wins_over_the_users_language_and_the_browsers() -> None:
    assert negotiate("en", "zh", "zh-CN") == "en"
    assert negotiate("zh", "en", "en-US") == "zh"
    assert negotiate(None, "zh", "en-US") == "zh"  # then the user's saved one
    assert negotiate("fr", None, "zh-CN") == "zh"  # an unknown choice is ignored
