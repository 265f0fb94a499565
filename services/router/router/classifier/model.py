"""A trained model: TF-IDF weights over `features.analyze` and two multinomial logistic
regressions (category, priority), kept as plain arrays. `predict` computes the probabilities
itself (a few numpy operations over the hundred-odd features of a message: tens of
microseconds, where scikit-learn's per-call checks cost a millisecond) and returns the domain's
`ModelVerdicts`, each label with its probability and the features that pushed it most.

Stored as an `.npz` of arrays and a JSON header, loaded with `allow_pickle=False`: a model
file cannot run code, whoever wrote it. Load only the repo's artefact (`store.SHIPPED_DIR`) or
the deployment's in `ROUTER_CLASSIFIER_DIR` all the same; their SHA-256 is checked."""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections import Counter
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
        scores = self.coef[:, idx] @ w + self.intercept
        scores = np.exp(scores - scores.max())
        proba = scores / scores.sum()
        best = int(np.argmax(proba))
        contributions = self.coef[best, idx] * w
        order = np.argsort(-contributions)[:TOP_FEATURES]
        top = tuple(names[idx[i]] for i in order if contributions[i] > 0)
        return Verdict(self.labels[best], float(proba[best]), top)


@dataclass
class TrainedModel:
    version: str
    names: list[str]  # feature index -> feature
    idf: Floats
    category: Head
    priority: Head

    def __post_init__(self) -> None:
        self.vocabulary = {name: i for i, name in enumerate(self.names)}

    def weights(self, text: str) -> tuple[npt.NDArray[np.int64], Floats]:
        """The message's feature indices and their TF-IDF weights (sublinear tf, l2)."""
        vocabulary = self.vocabulary
        counts = Counter(i for f in analyze(text) if (i := vocabulary.get(f)) is not None)
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), np.float32, len(counts))
        w = tf * self.idf[idx]
        norm = float(np.sqrt(w @ w))
        return idx, (w / norm if norm else w)

    def predict(self, text: str) -> ModelVerdicts:
        idx, w = self.weights(text)
        return ModelVerdicts(
            self.version,
            self.category.verdict(idx, w, self.names),
            self.priority.verdict(idx, w, self.names),
        )

    def predict_labels(self, texts: list[str]) -> tuple[list[str], list[str]]:
        verdicts = [self.predict(t) for t in texts]
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
