"""`python -m router.classifier.train` (`make train`): train category and priority models from
the shipped corpus plus the deployment's corrections, print per-class precision and recall on
the held-back slice (the corpus's test split and one correction in five), and store the new
version; promote it only if it is not worse than the current one on that same slice."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from router.classifier import store
from router.classifier.corpus import Example, load
from router.classifier.features import analyze
from router.classifier.model import TrainedModel, build, from_bytes
from router.domain.urgency import most_urgent, signals

C = 30.0  # inverse regularisation, chosen on the train split by cross-validation


def fit(examples: Sequence[Example], version: str = "candidate") -> TrainedModel:
    texts = [e.text for e in examples]
    vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True)
    x = vectorizer.fit_transform(texts)

    def model(labels: list[str]) -> Any:
        return LogisticRegression(C=C, max_iter=5000, class_weight="balanced").fit(x, labels)

    return build(
        version,
        vectorizer,
        model([e.category for e in examples]),
        model([e.priority for e in examples]),
    )


def with_signals(priority: str, text: str) -> str:
    """The model's priority raised by the urgency signals, as the router does."""
    floors = [s.floor for s in signals(text)]
    return most_urgent([priority, *floors]) if floors else priority  # type: ignore[list-item]


def evaluate(model: TrainedModel, examples: Sequence[Example]) -> dict[str, Any]:
    if not examples:
        return {"examples": 0}
    texts = [e.text for e in examples]
    categories, priorities = model.predict_labels(texts)
    final = [with_signals(p, t) for p, t in zip(priorities, texts, strict=True)]
    return {
        "examples": len(examples),
        "category_accuracy": accuracy_score([e.category for e in examples], categories),
        "priority_accuracy": accuracy_score([e.priority for e in examples], final),
        "priority_accuracy_model_alone": accuracy_score([e.priority for e in examples], priorities),
    }


def score(metrics: dict[str, Any]) -> float:
    return float(metrics["category_accuracy"] + metrics["priority_accuracy"]) / 2


def held_back(key: str) -> bool:
    """One correction in five (by its ticket id) is held back for evaluation."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 5 == 0


def report(model: TrainedModel, examples: Sequence[Example], title: str) -> str:
    texts = [e.text for e in examples]
    categories, priorities = model.predict_labels(texts)
    final = [with_signals(p, t) for p, t in zip(priorities, texts, strict=True)]
    return str(
        f"== {title}: category ({len(examples)} messages)\n"
        + classification_report(
            [e.category for e in examples], categories, digits=3, zero_division=0
        )
        + f"\n== {title}: priority (model + urgency signals)\n"
        + classification_report([e.priority for e in examples], final, digits=3, zero_division=0)
    )


@dataclass
class Candidate:
    """A trained version and the decision on it: promote only if not worse on the slice."""

    model: TrainedModel
    promote: bool
    metrics: dict[str, Any]
    metadata: dict[str, Any]


def candidate(
    corrections: Sequence[tuple[str, Example]],
    current: TrainedModel | None,
    *,
    corpus: Sequence[Example] | None = None,
    force: bool = False,
    out: Any = sys.stdout,
) -> Candidate:
    """Train on the corpus's train split plus four corrections in five, evaluate on the
    test split plus the held-back fifth, and compare with `current` on that same slice."""
    corpus = load() if corpus is None else corpus
    fixes_train = [e for k, e in corrections if not held_back(k)]
    fixes_test = [e for k, e in corrections if held_back(k)]
    train_set = [e for e in corpus if e.split == "train"] + fixes_train
    test_set = [e for e in corpus if e.split == "test"] + fixes_test
    model = fit(train_set)
    metrics = evaluate(model, test_set)
    out.write(report(model, [e for e in corpus if e.split == "test"], "corpus test split") + "\n")
    if fixes_test:
        out.write(f"held-back corrections: {evaluate(model, fixes_test)}\n")
    baseline = evaluate(current, test_set) if current is not None else None
    promote = force or baseline is None or score(metrics) >= score(baseline)
    metadata = {
        "trained_at": datetime.now(UTC).isoformat(),
        "train_examples": len(train_set),
        "corrections": len(corrections),
        "metrics": metrics,
        "previous": current.version if current is not None else None,
        "previous_metrics": baseline,
    }
    return Candidate(model, promote, metrics, metadata)


def _verdict(name: str, c: Candidate, current: TrainedModel | None) -> str:
    kept = f"kept {current.version if current else '-'} (the new one is worse)"
    return (
        f"{name}: category {c.metrics['category_accuracy']:.3f}, priority "
        f"{c.metrics['priority_accuracy']:.3f} on {c.metrics['examples']} held back; "
        f"{'promoted' if c.promote else kept}\n"
    )


def train(
    directory: Path,
    corrections: Sequence[tuple[str, Example]] = (),
    *,
    corpus: Sequence[Example] | None = None,
    force: bool = False,
    out: Any = sys.stdout,
) -> tuple[str, bool, dict[str, Any]]:
    """Train, evaluate, store in `directory`; (version, promoted, metrics).
    `corrections`: (key, example)."""
    current = store.load_current(directory)
    c = candidate(corrections, current, corpus=corpus, force=force, out=out)
    name = store.add_version(directory, c.model, c.metadata, promote=c.promote)
    out.write(_verdict(name, c, current))
    return name, c.promote, c.metrics


async def train_into_database(
    engine: AsyncEngine,
    directory: Path | None = None,
    *,
    corpus: Sequence[Example] | None = None,
    force: bool = False,
    out: Any = sys.stdout,
) -> tuple[str, bool, dict[str, Any]]:
    """The cluster's training job: the corpus plus the database's corrections, compared with
    the version the router runs (the database's promoted one, else `directory`'s or the
    shipped one), stored in the router's database as the next version and promoted there
    only if not worse; (version, promoted, metrics)."""
    from router.classifier.model import to_bytes
    from router.db.classifier_models import (
        add_model,
        next_number,
        promoted_version,
        stored_model,
    )
    from router.db.corrections import training_labels

    async with engine.connect() as conn:
        corrections = [
            (str(c.ticket_id), Example(c.text, c.category, c.priority, split="train"))
            for c in await training_labels(conn)
        ]
        current = store.load_for_router(directory)
        if (found := await promoted_version(conn)) is not None:
            stored = await stored_model(conn, found[0])
            if stored is not None:
                current = from_bytes(stored.data, found[1], f"classifier_models {found[0]}")
    out.write(f"{len(corrections)} corrections from the deployment\n")
    c = await asyncio.to_thread(
        candidate, corrections, current, corpus=corpus, force=force, out=out
    )
    async with engine.begin() as conn:
        number = await next_number(conn, store.last_shipped())
        c.model.version = f"v{number}"  # the file's header names the version it is stored as
        data = to_bytes(c.model)
        sha256 = hashlib.sha256(data).hexdigest()
        name = await add_model(conn, number, data, sha256, c.metadata, promote=c.promote)
    out.write(_verdict(name, c, current))
    return name, c.promote, c.metrics


async def _corrections(database_url: str) -> list[tuple[str, Example]]:
    from router.db.corrections import training_labels

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [
                (str(c.ticket_id), Example(c.text, c.category, c.priority, split="train"))
                for c in await training_labels(conn)
            ]
    finally:
        await engine.dispose()


async def _train_into(database_url: str, directory: Path | None, force: bool) -> None:
    engine = create_async_engine(database_url)
    try:
        await train_into_database(engine, directory, force=force)
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    from ccshared.settings import LOCAL_PG

    # Only the two settings training needs, read as the router reads them (RouterSettings
    # would also demand the token key, which training has nothing to do with).
    classifier_dir = os.environ.get("ROUTER_CLASSIFIER_DIR")
    database_url = os.environ.get("ROUTER_DATABASE_URL", f"{LOCAL_PG}/router")
    parser = argparse.ArgumentParser(prog="python -m router.classifier.train", description=__doc__)
    parser.add_argument(
        "--dir", type=Path, default=Path(classifier_dir) if classifier_dir else store.SHIPPED_DIR
    )
    parser.add_argument("--no-corrections", action="store_true", help="the corpus alone")
    parser.add_argument("--force", action="store_true", help="promote even if worse")
    parser.add_argument(
        "--database",
        action="store_true",
        help="store the version in the router's database (ROUTER_DATABASE_URL), where every "
        "replica loads the promoted one from: the cluster's scheduled job (router-train)",
    )
    args = parser.parse_args(argv)
    if args.database:
        asyncio.run(
            _train_into(database_url, Path(classifier_dir) if classifier_dir else None, args.force)
        )
        return
    corrections: list[tuple[str, Example]] = []
    if not args.no_corrections:
        try:
            corrections = asyncio.run(_corrections(database_url))
        except Exception as exc:  # noqa: BLE001 - no database: the corpus alone, said so
            print(f"corrections not read ({type(exc).__name__}: {exc}); the corpus alone")
    print(f"{len(corrections)} corrections from the deployment")
    train(args.dir, corrections, force=args.force)


if __name__ == "__main__":
    main()
