"""Classification in the router's hot path: per-message time of the rules alone and of the
rules with the trained model and the urgency signals (what a new ticket runs), over the
corpus's test split; the model's load time and memory. In-process, no stack needed:
`python -m bench.classification`; `python -m bench router` runs it first."""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

from router.classifier import store
from router.classifier.corpus import load
from router.domain.classification import DEFAULT_RULES, TicketFacts, classify

ROUNDS = 5


def _timings(texts: list[str], model: Any) -> list[float]:
    facts = [TicketFacts(channel="chat", text=t) for t in texts]
    for f in facts[:50]:  # warm: RE2's lazily built automata, numpy's first calls
        classify(f, DEFAULT_RULES, model)
    times = []
    for _ in range(ROUNDS):
        for f in facts:
            started = time.perf_counter()
            classify(f, DEFAULT_RULES, model)
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def _pct(values: list[float], p: float) -> float:
    return round(values[min(len(values) - 1, int(p * len(values)))], 3)


def measure() -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    model = store.load_for_router(None)
    load_s = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert model is not None
    texts = [e.text for e in load() if e.split == "test"]
    rules = _timings(texts, None)
    both = _timings(texts, model)
    return {
        "model_version": model.version,
        "messages": len(texts) * ROUNDS,
        "load_s": round(load_s, 3),
        "load_peak_mb": round(peak / 2**20, 1),
        "rules_ms": {"p50": _pct(rules, 0.5), "p99": _pct(rules, 0.99)},
        "rules_and_model_ms": {"p50": _pct(both, 0.5), "p99": _pct(both, 0.99)},
        "target_met": _pct(both, 0.99) < 2 and load_s < 2 and peak < 100 * 2**20,
    }


def report(result: dict[str, Any]) -> str:
    return (
        f"classification ({result['messages']} messages, model {result['model_version']}): "
        f"rules alone p50 {result['rules_ms']['p50']} / p99 {result['rules_ms']['p99']} ms; "
        f"rules + model + signals p50 {result['rules_and_model_ms']['p50']} / p99 "
        f"{result['rules_and_model_ms']['p99']} ms; model load {result['load_s']} s, "
        f"{result['load_peak_mb']} MB (targets p99 < 2 ms, < 2 s, < 100 MB: "
        f"{'met' if result['target_met'] else 'not met'})"
    )


def main(duration: int | None = None) -> None:
    print(report(measure()))


if __name__ == "__main__":
    main()
