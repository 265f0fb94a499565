"""`make demo`'s intake side (`deploy/local/demo.py`) against intake in-process: the key made
by intake's own command-line tool takes the sample contacts, and each run's are new."""

from __future__ import annotations

import pytest

from tests.integration.intake.conftest import Intake
from tests.unit.test_demo import load_demo


async def test_the_demo_key_posts_every_sample_contact_and_a_second_run_posts_new_ones(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = load_demo()
    monkeypatch.setenv("INTAKE_DATABASE_URL", intake.database_url)
    key = demo.create_intake_key()
    assert key.startswith("cck_")

    run1 = demo.sample_contacts("run1")
    first = await demo.post_contacts(intake.client, key, run1)
    assert len(first) == len(run1)
    assert {a["status"] for a in first} == {"accepted"}
    again = await demo.post_contacts(intake.client, key, run1)
    assert {a["status"] for a in again} == {"duplicate"}  # the ids are the run's
    second = await demo.post_contacts(intake.client, key, demo.sample_contacts("run2"))
    assert {a["status"] for a in second} == {"accepted"}
