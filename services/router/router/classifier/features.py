"""Text to features for both languages without a network download: traditional Chinese folded
to simplified (OpenCC t2s), full-width folded (NFKC), lower case; Chinese as character 1-3
grams, other scripts as words and word pairs (order numbers and other digits become `0`)."""

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


@functools.cache
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def fold(text: str) -> str:
    """Simplified, NFKC, lower case, digit runs as `0`, first `MAX_CHARS` characters."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS])
    return _DIGITS.sub("0", _converter().convert(text).lower())


def analyze(raw: str) -> list[str]:
    """The features of a text, folded: Han character 1-3 grams (within a run of Han), Latin
    words and adjacent word pairs. Module level, so a pickled vectoriser can find it."""
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
    return features
