"""`make demo`'s sample contacts (`deploy/local/demo.py`): fresh ids, threads kept."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "local" / "demo.py"


def load_demo() -> ModuleType:
    """deploy/local/demo.py is a script, not a package module: load it from its file."""
    spec = importlib.util.spec_from_file_location("cc_demo", DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_sample_contacts_get_ids_of_their_own_run_and_replies_still_name_their_message() -> None:
    demo = load_demo()
    originals = [json.loads(line) for line in demo.SAMPLES.read_text().splitlines() if line]
    now = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    first, second = demo.sample_contacts("r1", now), demo.sample_contacts("r2", now)
    assert len(first) == len(originals)
    ids = [c["external_id"] for c in first]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & {c["external_id"] for c in second}
    assert not set(ids) & {c["external_id"] for c in originals}
    by_message = {c["email"]["message_id"]: c for c in first if c["channel"] == "email"}
    replies = [c for c in first if c["channel"] == "email" and c["email"]["in_reply_to"]]
    assert replies
    for reply in replies:
        assert reply["email"]["references"][0] in by_message  # the thread survives the tags
        assert reply["email"]["references"][0].endswith(".r1@mail.example.com>")
    sessions = [c["chat"]["session_id"] for c in first if c["channel"] == "chat"]
    assert len(sessions) >= 2
    assert len(set(sessions)) == 1


def test_sample_contacts_are_received_in_the_files_order_ending_now() -> None:
    demo = load_demo()
    now = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    times = [datetime.fromisoformat(c["received_at"]) for c in demo.sample_contacts("r", now)]
    assert times == sorted(times)
    assert times[-1] == now


def test_the_demo_agents_between_them_serve_every_default_queue() -> None:
    demo = load_demo()
    skills = set().union(*(a.skills for a in demo.AGENTS))
    assert {"complaints", "technical", "billing", "vip", "escalations"} <= skills
    assert demo.SUPERVISOR.role == "supervisor"
