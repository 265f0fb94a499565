"""The labelled corpus (`corpus/messages.jsonl`): messages written as customers write, in
simplified and traditional Chinese and English, each with its category, priority, language,
channel and fixed split (train or test). Near-duplicates (after folding) share a split."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from router.classifier.features import fold

CORPUS_PATH: Final = Path(__file__).parent / "corpus" / "messages.jsonl"
NEAR_DUPLICATE: Final = 0.25
"""Two texts whose character-trigram sets (folded, letters and Han only) overlap by at least
this Jaccard similarity are near-duplicates: a translation to traditional, a reworded copy."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    category: str
    priority: str
    language: str = ""
    channel: str = ""
    split: str = "train"


def load(path: Path = CORPUS_PATH) -> list[Example]:
    with path.open(encoding="utf-8") as f:
        return [_example(json.loads(line)) for line in f if line.strip()]


def _example(doc: dict[str, str]) -> Example:
    return Example(
        doc["text"],
        doc["category"],
        doc["priority"],
        doc.get("language", ""),
        doc.get("channel", ""),
        doc.get("split", "train"),
    )


def dump(examples: Iterable[Example], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for e in examples:
            doc = {
                "text": e.text,
                "category": e.category,
                "priority": e.priority,
                "language": e.language,
                "channel": e.channel,
                "split": e.split,
            }
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")


def shingles(text: str) -> frozenset[str]:
    """Character trigrams of the folded text's letters and Han characters (spaces, digits and
    punctuation dropped, so "订单 123!" and "訂單 456" are the same)."""
    letters = "".join(ch for ch in fold(text) if ch.isalpha())
    return frozenset(letters[i : i + 3] for i in range(max(1, len(letters) - 2)))


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = NEAR_DUPLICATE
) -> list[tuple[int, int, float]]:
    """Every pair (i < j) of texts at least `threshold` similar, by an inverted index of
    trigrams (so not every pair is compared)."""
    sets = [shingles(t) for t in texts]
    index: dict[str, list[int]] = {}
    for i, s in enumerate(sets):
        for g in s:
            index.setdefault(g, []).append(i)
    pairs = []
    for i, s in enumerate(sets):
        shared: dict[int, int] = {}
        for g in s:
            for j in index[g]:
                if j > i:
                    shared[j] = shared.get(j, 0) + 1
        for j, common in shared.items():
            similarity = common / (len(s) + len(sets[j]) - common)
            if similarity >= threshold:
                pairs.append((i, j, similarity))
    return pairs


def groups(texts: Sequence[str], threshold: float = NEAR_DUPLICATE) -> list[int]:
    """A group id per text: near-duplicates, transitively, share one (union-find)."""
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in near_duplicate_pairs(texts, threshold):
        parent[root(i)] = root(j)
    return [root(i) for i in range(len(texts))]
