"""Intake's own counter on /metrics: each contact posted with a valid key, accepted, duplicate
or refused, on the fast path, through FastAPI and in batches alike; and the fast path's
requests are counted under their route like every other."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from tests.integration.intake.conftest import Intake, bad_samples, samples


def _counts() -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value("cc_intake_contacts_total", {"outcome": outcome}) or 0.0
        for outcome in ("accepted", "duplicate", "refused")
    }


def _posts(status: str) -> float:
    labels = {"service": "intake", "method": "POST", "route": "/v1/contacts", "status": status}
    return REGISTRY.get_sample_value("cc_http_requests_total", labels) or 0.0


@pytest.mark.parametrize("fast_path", [True, False])
async def test_contacts_are_counted_by_outcome(intake_factory, fast_path: bool) -> None:
    intake: Intake = await intake_factory(fast_path=fast_path)
    key = await intake.new_key()
    before, posted_before = _counts(), (_posts("202"), _posts("422"), _posts("401"))
    good = {**samples()[0], "external_id": f"m-{uuid.uuid4()}"}
    assert (await intake.post(good, key)).status_code == 202
    assert (await intake.post(good, key)).status_code == 202  # the same again: a duplicate
    assert (await intake.post(bad_samples()[0]["body"], key)).status_code == 422
    # Without a valid key it is no contact of anyone's: not counted (the 401 is, by route).
    assert (await intake.post(good, "not-a-key")).status_code == 401
    batch = await intake.client.post(
        "/v1/contacts:batch",
        json={"items": [{**good, "external_id": f"m-{uuid.uuid4()}"}, bad_samples()[0]["body"]]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert batch.status_code == 200, batch.text

    after = _counts()
    assert {k: after[k] - before[k] for k in after} == {
        "accepted": 2,
        "duplicate": 1,
        "refused": 2,
    }
    assert (_posts("202"), _posts("422"), _posts("401")) == (
        posted_before[0] + 2,
        posted_before[1] + 1,
        posted_before[2] + 1,
    )
