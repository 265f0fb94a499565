"""The console's words in English and Chinese, and which language a request gets.

The catalog is split by screen (console/i18n/*.json: {"key": {"en": ..., "zh": ...}}), so each
screen's words live beside each other; a key in two files, or without both languages, fails at
load (and in the unit tests)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from console.domain.users import Language

LANGUAGES: tuple[Language, ...] = ("en", "zh")
DEFAULT_LANGUAGE: Language = "en"
CATALOG_DIR = Path(__file__).resolve().parent.parent / "i18n"


class CatalogError(ValueError):
    """A key twice, or without both languages."""


def load_catalog(files: Iterable[Path]) -> dict[str, dict[Language, str]]:
    catalog: dict[str, dict[Language, str]] = {}
    for path in sorted(files):
        for key, texts in json.loads(path.read_text(encoding="utf-8")).items():
            if key in catalog:
                raise CatalogError(f"{path.name}: {key!r} is defined in another file too")
            missing = [lang for lang in LANGUAGES if not texts.get(lang)]
            if missing:
                raise CatalogError(f"{path.name}: {key!r} has no {', '.join(missing)} text")
            catalog[key] = {lang: texts[lang] for lang in LANGUAGES}
    return catalog


@lru_cache(maxsize=1)
def catalog() -> dict[str, dict[Language, str]]:
    return load_catalog(CATALOG_DIR.glob("*.json"))


def translate(key: str, language: Language, **values: object) -> str:
    """The key's text in the language, its {placeholders} filled; an unknown key is shown as
    itself (and the unit test that reads every template finds it first)."""
    texts = catalog().get(key)
    text = texts[language] if texts else key
    return text.format(**values) if values else text


def negotiate(
    chosen: str | None, user_language: str | None, accept_language: str | None
) -> Language:
    """The language of a page: the switch's choice (cookie), else the user's saved one, else
    the browser's first supported language (Accept-Language, by q), else English."""
    for candidate in (chosen, user_language):
        if candidate in LANGUAGES:
            return candidate
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, index, tag.strip().lower()))
    for negative_q, _, tag in sorted(ranked):
        primary = tag.split("-")[0]
        if negative_q < 0 and primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE
