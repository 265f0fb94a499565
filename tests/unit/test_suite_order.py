"""The test that stops and starts the shared broker runs after every other test of a run, so no
other test (and no `make run` service sharing the broker) loses Kafka in the middle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_broker_restarting_test_is_collected_last() -> None:
    # The outage test's folder sorts before others: without the ordering it would run early.
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration/intake/test_kafka_outage.py",
            "tests/integration/intake/test_suite_topics.py",
            "tests/unit/test_gc.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    items = [line for line in collected.splitlines() if "::" in line]
    assert len(items) > 2, collected
    assert "test_kafka_outage.py" in items[-1]
    assert not any("test_kafka_outage.py" in item for item in items[:-1])
