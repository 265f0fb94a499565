"""Text to features for both languages without a network download: traditional Chinese folded
to simplified (OpenCC t2s), full-width folded (NFKC), lower case; Chinese as character 1-3
grams, other scripts as words, word pairs and each word's character 2-5 grams within its
boundaries (" refund" → "# r", "# re", …; so "refunded", "refunds" and a typo'd "refnd" share
most features without a stemmer); order numbers and other digits become `0`."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from typing import Final

import opencc

MAX_CHARS: Final = 2_000
"""Only the first 2,000 characters are read: a customer's point is made at the start, and the
cost of a prediction must not grow with what a customer pastes."""

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z][a-z']*|\d+")
_DIGITS = re.compile(r"\d+")
CHAR_GRAMS: Final = (2, 5)
"""The character n-grams of a Latin word, within its boundaries (scikit-learn's `char_wb`)."""


@functools.lru_cache(maxsize=65_536)
def _word_grams(word: str) -> tuple[str, ...]:
    padded = f" {word} "
    lo, hi = CHAR_GRAMS
    return tuple(
        "#" + padded[i : i + k] for k in range(lo, hi + 1) for i in range(len(padded) - k + 1)
    )


@functools.cache
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def fold(text: str) -> str:
    """Simplified, NFKC, lower case, digit runs as `0`, first `MAX_CHARS` characters."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS])
    return _DIGITS.sub("0", _converter().convert(text).lower())


def analyze(raw: str) -> list[str]:
    """The features of a text, folded: Han character 1-3 grams (within a run of Han), Latin
    words, adjacent word pairs and each word's character 2-5 grams (`#`-prefixed; a model
    trained without them ignores them). Module level, so a vectoriser can find it."""
    text = fold(raw)
    features: list[str] = []
    for run in _HAN_RUN.findall(text):
        n = len(run)
        features.extend(run)
        features.extend(run[i : i + 2] for i in range(n - 1))
        features.extend(run[i : i + 3] for i in range(n - 2))
    words = _WORD.findall(text)
    features.extend(words)
    features.extend(f"{a} {b}" for a, b in itertools.pairwise(words))
    for word in words:
        if word != "0":
            features.extend(_word_grams(word))
    return features
