"""Feedback's management API is for supervisors; the survey pages are the customer's, by the
survey link alone."""

from __future__ import annotations

from tests.helpers import as_agent
from tests.integration.feedback.conftest import Feedback
from tests.integration.feedback.test_answers import _sent_survey


async def test_management_is_for_supervisors_and_surveys_need_only_their_link(
    feedback: Feedback,
) -> None:
    ticket, _, token = await _sent_survey(feedback)
    nobody = {"Authorization": ""}
    kpis = "/v1/kpis?from=2026-11-01&to=2026-11-30&group_by=queue"
    assert (await feedback.client.get(kpis, headers=nobody)).status_code == 401
    assert (await feedback.client.get(kpis, headers=as_agent("amy"))).status_code == 403
    assert (await feedback.client.get(kpis)).status_code == 200  # the fixture's supervisor
    hook = {"url": "https://hooks.example/x", "secret": "s" * 32, "channels": ["email"]}
    refused = await feedback.client.post("/v1/webhooks", json=hook, headers=as_agent("amy"))
    assert refused.status_code == 403
    assert await feedback.db.fetchval("SELECT count(*) FROM webhook_subscriptions") == 0
    # The ticket's survey is the resolving agent's (a1) and supervisors', not a stranger's,
    # and to another agent there is none (test_read_access.py walks every route).
    survey_path = f"/v1/tickets/{ticket}/survey"
    assert (await feedback.client.get(survey_path, headers=nobody)).status_code == 401
    assert (await feedback.client.get(survey_path, headers=as_agent("amy"))).status_code == 404
    assert (await feedback.client.get(survey_path, headers=as_agent("a1"))).status_code == 200
    # The customer needs nothing but the link.
    page = await feedback.client.get(f"/v1/surveys/{token}", headers=nobody)
    assert page.status_code == 200
    answer = await feedback.client.post(
        f"/v1/surveys/{token}", json={"csat": 5, "nps": 10}, headers=nobody
    )
    assert answer.status_code == 200
