"""A trained model: TF-IDF weights over `features.analyze` and two multinomial logistic
regressions (category, priority), kept as plain arrays. `predict` computes the probabilities
itself (a few numpy operations over the hundred-odd features of a message: tens of
microseconds, where scikit-learn's per-call checks cost a millisecond) and returns the domain's
`ModelVerdicts`, each label with its probability and the features that pushed it most (of
features pushing alike, the one first in the message). `predict_many` does a batch's messages
with the same numpy calls (the router's consumer batch: about 40 % less time per message at
20-50 messages).

Stored as an `.npz` of arrays and a JSON header, loaded with `allow_pickle=False`: a model
file cannot run code, whoever wrote it. Load only the repo's artefact (`store.SHIPPED_DIR`) or
the deployment's in `ROUTER_CLASSIFIER_DIR` all the same; their SHA-256 is checked."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router.classifier.features import analyze
from router.domain.classification import ModelVerdicts, Verdict

TOP_FEATURES = 3
Floats = npt.NDArray[np.float32]


@dataclass
class Head:
    """One question's regression: a label per row of `coef` (labels × features)."""

    labels: tuple[str, ...]
    coef: Floats
    intercept: Floats

    def verdict(self, idx: npt.NDArray[np.int64], w: Floats, names: list[str]) -> Verdict:
        """One message's: `idx` its features in the order they first appear, `w` weights."""
        scores = self.coef[:, idx] @ w + self.intercept
        scores = np.exp(scores - scores.max())
        proba = scores / scores.sum()
        best = int(np.argmax(proba))
        contributions = self.coef[best, idx] * w
        order = np.argsort(-contributions, kind="stable")[:TOP_FEATURES]
        top = tuple(names[idx[i]] for i in order if contributions[i] > 0)
        return Verdict(self.labels[best], float(proba[best]), top)

    def verdicts(self, batch: _Batch, names: list[str]) -> list[Verdict]:
        """Each message's label, its probability and the features that pushed it most,
        computed for the whole batch at once."""
        n = batch.messages
        scores = np.tile(self.intercept, (n, 1))
        if len(batch.feature):
            # Every entry's score for every label, summed message by message.
            parts = self.coef[:, batch.feature] * batch.weight
            sums = np.add.reduceat(parts, np.minimum(batch.start, len(batch.feature) - 1), axis=1)
            scores += np.where(np.diff(batch.start, append=len(batch.feature)) > 0, sums, 0).T
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        proba = scores / scores.sum(axis=1, keepdims=True)
        best = np.argmax(proba, axis=1)
        # Each feature's push towards its message's label; per message the strongest first,
        # features pushing alike (always seen together in training) in the message's order.
        push = self.coef[best[batch.row], batch.feature] * batch.weight
        pushing = np.flatnonzero(push > 0)
        by_seen = pushing[np.argsort(batch.seen[pushing])]
        # (message, push descending) as one integer: a positive float32's bits order as it.
        rank = np.int64(0x7FFFFFFF) - push[by_seen].view(np.int32)
        order = by_seen[np.argsort((batch.row[by_seen] << 32) | rank, kind="stable")]
        rows = batch.row[order]
        first = np.searchsorted(rows, rows)  # each message's first entry among them
        top = order[np.arange(len(order)) - first < TOP_FEATURES]
        features: list[list[str]] = [[] for _ in range(n)]
        for r, f in zip(batch.row[top].tolist(), batch.feature[top].tolist(), strict=True):
            features[r].append(names[f])
        labels = self.labels
        return [
            Verdict(labels[b], p, tuple(fs))
            for b, p, fs in zip(
                best.tolist(), proba[np.arange(n), best].tolist(), features, strict=True
            )
        ]


@dataclass(frozen=True)
class _Batch:
    """Messages' TF-IDF weights as flat arrays, message by message (`row` ascending):
    `feature[i]` of message `row[i]` weighs `weight[i]`; message r's entries start at
    `start[r]`; entry i's feature first appears at `seen[i]` (in the batch's order)."""

    messages: int
    row: npt.NDArray[np.int64]
    feature: npt.NDArray[np.int64]
    weight: Floats
    start: npt.NDArray[np.int64]
    seen: npt.NDArray[np.int64]  # where each entry's feature first appears in its message


@dataclass
class TrainedModel:
    version: str
    names: list[str]  # feature index -> feature
    idf: Floats
    category: Head
    priority: Head

    def __post_init__(self) -> None:
        self.vocabulary = {name: i for i, name in enumerate(self.names)}

    def _weights(self, texts: Sequence[str]) -> _Batch:
        """The messages' feature indices and TF-IDF weights (sublinear tf, l2 per message):
        the features looked up in C (`map`), counted and weighed for the batch in numpy."""
        get, missing = self.vocabulary.get, itertools.repeat(-1)
        found = [list(map(get, analyze(text), missing)) for text in texts]
        width = len(self.names)
        flat = np.fromiter(itertools.chain.from_iterable(found), np.int64)
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), [len(f) for f in found])
        known = flat >= 0
        keys, seen, counts = np.unique(
            rows[known] * width + flat[known], return_index=True, return_counts=True
        )
        row, feature = keys // width, keys % width
        w = (1.0 + np.log(counts)).astype(np.float32) * self.idf[feature]
        norm = np.sqrt(np.bincount(row, weights=w * w, minlength=len(texts))).astype(np.float32)
        w = w / np.where(norm > 0, norm, np.float32(1.0))[row]
        start = np.searchsorted(row, np.arange(len(texts)))
        return _Batch(len(texts), row, feature, w, start, seen)

    def predict_many(self, texts: Sequence[str]) -> list[ModelVerdicts]:
        """`predict` for many messages at once: numpy's fixed cost per call is paid once a
        batch, not once a message."""
        if not texts:
            return []
        batch = self._weights(texts)
        categories = self.category.verdicts(batch, self.names)
        priorities = self.priority.verdicts(batch, self.names)
        return [
            ModelVerdicts(self.version, c, p) for c, p in zip(categories, priorities, strict=True)
        ]

    def predict(self, text: str) -> ModelVerdicts:
        """One message (a handful of numpy calls; `predict_many` for a batch). The same
        verdicts as `predict_many`, up to float rounding (its sums go in another order)."""
        vocabulary = self.vocabulary
        counts = Counter(i for f in analyze(text) if (i := vocabulary.get(f)) is not None)
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), np.float32, len(counts))
        w = tf * self.idf[idx]
        norm = float(np.sqrt(w @ w))
        w = w / norm if norm else w
        return ModelVerdicts(
            self.version,
            self.category.verdict(idx, w, self.names),
            self.priority.verdict(idx, w, self.names),
        )

    def predict_labels(self, texts: list[str]) -> tuple[list[str], list[str]]:
        verdicts = self.predict_many(texts)
        return [v.category.label for v in verdicts], [v.priority.label for v in verdicts]


def build(version: str, vectorizer: Any, category: Any, priority: Any) -> TrainedModel:
    """From a fitted TfidfVectorizer(analyzer=analyze, sublinear_tf=True) and two fitted
    multinomial LogisticRegressions."""

    def head(clf: Any) -> Head:
        return Head(
            tuple(str(c) for c in clf.classes_),
            clf.coef_.astype(np.float32),
            clf.intercept_.astype(np.float32),
        )

    names = [str(n) for n in vectorizer.get_feature_names_out()]
    return TrainedModel(
        version, names, vectorizer.idf_.astype(np.float32), head(category), head(priority)
    )


def to_bytes(model: TrainedModel) -> bytes:
    """The model file's bytes: compressed arrays and a JSON header (what `save` writes and
    the router's database keeps, `db.classifier_models`)."""
    header = {
        "format": 1,
        "version": model.version,
        "names": model.names,
        "category_labels": list(model.category.labels),
        "priority_labels": list(model.priority.labels),
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        header=np.frombuffer(json.dumps(header, ensure_ascii=False).encode(), dtype=np.uint8),
        idf=model.idf,
        category_coef=model.category.coef,
        category_intercept=model.category.intercept,
        priority_coef=model.priority.coef,
        priority_intercept=model.priority.intercept,
    )
    return buffer.getvalue()


def save(model: TrainedModel, path: Path) -> str:
    """Write the model (compressed arrays, JSON header); its SHA-256, which `load` checks."""
    data = to_bytes(model)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load(path: Path, sha256: str | None = None) -> TrainedModel:
    """A model file; if `sha256` is given the file must have it (one replaced after training
    is refused). No pickle: arrays and JSON only."""
    return from_bytes(path.read_bytes(), sha256, str(path))


def from_bytes(data: bytes, sha256: str | None = None, source: str = "model") -> TrainedModel:
    """A model from its file's bytes (a file, or a row of the router's database); if `sha256`
    is given the bytes must have it."""
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{source}: its SHA-256 is not the one recorded when it was trained")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        header = json.loads(arrays["header"].tobytes().decode())
        if header.get("format") != 1:
            raise ValueError(f"{source}: unknown model format {header.get('format')!r}")
        return TrainedModel(
            header["version"],
            header["names"],
            arrays["idf"],
            Head(
                tuple(header["category_labels"]),
                arrays["category_coef"],
                arrays["category_intercept"],
            ),
            Head(
                tuple(header["priority_labels"]),
                arrays["priority_coef"],
                arrays["priority_intercept"],
            ),
        )
