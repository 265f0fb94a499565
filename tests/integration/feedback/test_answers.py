"""The survey link: page and questions, token tampering and expiry, answering (form or JSON),
answering twice, and the events that close the loop."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from tests.helpers import wait_until
from tests.integration.feedback.conftest import Feedback, FeedbackEvents, now
from tests.integration.feedback.tickets import opened, resolved

H = timedelta(hours=1)


async def _sent_survey(
    feedback: Feedback, *, language: str = "en", agent: str = "a1"
) -> tuple[uuid.UUID, uuid.UUID, str]:
    ticket, customer, t0 = uuid.uuid4(), uuid.uuid4(), now() - H
    await feedback.publish(
        opened(ticket, customer, t0, language=language),
        resolved(ticket, customer, t0, now(), language=language, agent=agent),
    )
    return ticket, customer, await feedback.token_of(ticket)


async def test_survey_page_is_accessible_html_in_the_tickets_language(feedback: Feedback) -> None:
    _, _, token = await _sent_survey(feedback, language="zh-CN")
    page = await feedback.client.get(f"/v1/surveys/{token}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="zh">' in html
    assert "您对本次服务的满意度如何？" in html
    assert '<form method="post">' in html  # works without JavaScript
    assert "<script" not in html
    assert html.count("<legend>") == 3
    assert '<label for="comment">' in html
    assert html.count('type="radio" name="nps"') == 11

    data = await feedback.client.get(f"/v1/surveys/{token}", headers={"Accept": "application/json"})
    body = data.json()
    assert [q["id"] for q in body["questions"]] == [
        "csat",
        "nps",
        "solved_first_contact",
        "comment",
    ]
    assert body["language"] == "zh"
    assert body["answer"] is None
    assert body["may_answer"] is True


async def test_tampered_token_is_403_and_expired_token_is_410(feedback: Feedback) -> None:
    _, _, token = await _sent_survey(feedback)
    payload, mac = token.split(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac
    for method in ("GET", "POST"):
        response = await feedback.client.request(method, f"/v1/surveys/{forged}", json={"csat": 5})
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/invalid-survey-token")
    survey_id = (
        await feedback.client.get(f"/v1/surveys/{token}", headers={"Accept": "application/json"})
    ).json()["survey_id"]
    expired = feedback.token(survey_id, now() - timedelta(seconds=1))
    response = await feedback.client.post(f"/v1/surveys/{expired}", json={"csat": 5})
    assert response.status_code == 410
    assert response.json()["type"].endswith("/survey-expired")
    unknown = feedback.token(uuid.uuid4(), now() + H)
    assert (await feedback.client.get(f"/v1/surveys/{unknown}")).status_code == 404
    assert await feedback.db.fetchval("SELECT count(*) FROM answers") == 0


async def test_invalid_answer_is_422_naming_the_field(feedback: Feedback) -> None:
    _, _, token = await _sent_survey(feedback)
    response = await feedback.client.post(f"/v1/surveys/{token}", json={"csat": 7, "nps": 3})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.csat"]
    response = await feedback.client.post(f"/v1/surveys/{token}", json={"comment": "hi"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.csat"
    form = await feedback.client.post(
        f"/v1/surveys/{token}",
        content=b"csat=3&nps=eleven",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 422
    assert [e["field"] for e in form.json()["errors"]] == ["body.nps"]


async def test_answering_twice_updates_and_counts_once(
    feedback: Feedback, feedback_events: FeedbackEvents
) -> None:
    ticket, _, token = await _sent_survey(feedback)
    first = await feedback.client.post(
        f"/v1/surveys/{token}", json={"csat": 4, "nps": 8, "solved_first_contact": True}
    )
    assert first.status_code == 200, first.text
    assert (first.json()["revision"], first.json()["updated"]) == (1, False)
    second = await feedback.client.post(
        f"/v1/surveys/{token}",
        content=b"csat=5&nps=10&solved_first_contact=yes&comment=",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert second.status_code == 200
    assert "your answer has been updated" in second.text  # the thank-you page for forms

    survey = await feedback.survey_of(ticket)
    assert survey is not None
    assert survey["answer"]["revisions"] == 2
    assert (survey["answer"]["csat"], survey["answer"]["nps"]) == (5, 10)
    today = now().date().isoformat()
    since = (now() - timedelta(days=1)).date().isoformat()  # resolved just before midnight
    kpis = (await feedback.client.get(f"/v1/kpis?from={since}&to={today}&group_by=day")).json()
    total = kpis["total"]
    assert (total["answers"], total["csat"], total["nps"]) == (1, 1.0, 100.0)
    assert await feedback.db.fetchval("SELECT count(*) FROM answers") == 1
    await feedback_events.wait_event("survey.answered", 2, ticket_id=ticket)


async def test_answer_after_the_edit_window_is_refused(
    feedback_factory: Callable[..., Awaitable[Feedback]],
) -> None:
    feedback = await feedback_factory(answer_edit_window_s=0)
    _, _, token = await _sent_survey(feedback)
    assert (await feedback.client.post(f"/v1/surveys/{token}", json={"csat": 3})).status_code == 200
    again = await feedback.client.post(f"/v1/surveys/{token}", json={"csat": 1})
    assert again.status_code == 409
    assert await feedback.db.fetchval("SELECT csat FROM answers") == 3


async def test_detractor_answer_requests_one_follow_up_with_the_answer_attached(
    feedback: Feedback, feedback_events: FeedbackEvents
) -> None:
    ticket, customer, token = await _sent_survey(feedback)
    answer = {"csat": 2, "nps": 3, "solved_first_contact": False, "comment": "Still broken"}
    response = await feedback.client.post(f"/v1/surveys/{token}", json=answer)
    assert response.json()["follow_up_requested"] is True
    [event] = await feedback_events.wait_event("followup.requested", ticket_id=ticket)
    payload = event["payload"]
    assert payload["reason"] == "detractor"
    assert payload["customer_id"] == str(customer)
    assert payload["channel"] == "email"
    assert "CSAT 2/5" in payload["note"]
    assert "Still broken" in payload["note"]
    # Changing the answer (still unhappy) does not open a second follow-up.
    again = await feedback.client.post(f"/v1/surveys/{token}", json={**answer, "csat": 1})
    assert again.json()["follow_up_requested"] is False
    await feedback_events.wait_event("survey.answered", 2, ticket_id=ticket)
    assert len(feedback_events.events("followup.requested", ticket_id=ticket)) == 1


async def test_top_scores_with_a_comment_record_praise_for_the_agent(
    feedback: Feedback, feedback_events: FeedbackEvents
) -> None:
    ticket, _, token = await _sent_survey(feedback, agent="lina")
    response = await feedback.client.post(
        f"/v1/surveys/{token}", json={"csat": 5, "nps": 10, "comment": "Lina was great"}
    )
    assert response.json()["praise_recorded"] is True
    [event] = await feedback_events.wait_event("praise.recorded", ticket_id=ticket)
    assert (event["payload"]["agent_id"], event["payload"]["comment"]) == ("lina", "Lina was great")
    assert feedback_events.events("followup.requested", ticket_id=ticket) == []
    today = now().date().isoformat()
    since = (now() - timedelta(days=1)).date().isoformat()  # resolved just before midnight

    async def praised() -> bool:
        kpis = await feedback.client.get(f"/v1/kpis?from={since}&to={today}&group_by=agent")
        return any(g["key"] == "lina" and g["praise_count"] == 1 for g in kpis.json()["groups"])

    await wait_until(praised)


async def test_hostile_comment_is_kept_verbatim_and_escaped_on_the_page(
    feedback: Feedback,
) -> None:
    _, _, token = await _sent_survey(feedback)
    attack = "</textarea><script>alert('x')</script>'; DROP TABLE answers; -- 差评"
    response = await feedback.client.post(
        f"/v1/surveys/{token}", json={"csat": 4, "nps": 8, "comment": attack}
    )
    assert response.status_code in (200, 201), response.text
    assert await feedback.db.fetchval("SELECT comment FROM answers") == attack
    page = await feedback.client.get(f"/v1/surveys/{token}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;/textarea&gt;&lt;script&gt;" in page.text


async def test_forged_and_expired_tokens_leave_no_answer_and_no_event(
    feedback: Feedback, feedback_events: FeedbackEvents
) -> None:
    ticket, _, token = await _sent_survey(feedback)
    survey_id = (
        await feedback.client.get(f"/v1/surveys/{token}", headers={"Accept": "application/json"})
    ).json()["survey_id"]
    payload, mac = token.split(".")
    attempts = [
        (payload + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B"), 403),  # forged signature
        (payload + ".", 403),
        ("not-a-token", 403),
        ("." * 50, 403),
        ("'; DROP TABLE surveys; --", 403),
        (feedback.token(survey_id, now() - timedelta(seconds=1)), 410),  # expired
        (feedback.token(uuid.uuid4(), now() + H), 404),  # signed, but for no survey
    ]
    for forged, status in attempts:
        response = await feedback.client.post(
            f"/v1/surveys/{forged}", json={"csat": 1, "nps": 0, "comment": "forged"}
        )
        assert response.status_code == status, (forged, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await feedback.db.fetchval("SELECT count(*) FROM answers") == 0
    assert await feedback.db.fetchval("SELECT count(*) FROM surveys") == 1
    # Then a genuine answer: its events are the only answer events Kafka ever sees.
    genuine = await feedback.client.post(f"/v1/surveys/{token}", json={"csat": 1, "nps": 0})
    assert genuine.status_code == 200
    await feedback_events.wait_event("followup.requested", ticket_id=ticket)
    assert all(b"forged" not in record.value for record in feedback_events.records)
    assert len(feedback_events.events("followup.requested")) == 1


async def test_survey_page_sends_csp_no_referrer_and_nosniff_on_get_and_post(
    feedback: Feedback,
) -> None:
    _, _, token = await _sent_survey(feedback)
    page = await feedback.client.get(f"/v1/surveys/{token}", headers={"Accept": "text/html"})
    thanks = await feedback.client.post(
        f"/v1/surveys/{token}",
        content=b"csat=5&nps=9&solved_first_contact=yes&comment=",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    refused = await feedback.client.post(f"/v1/surveys/{token}x", json={"csat": 5})
    assert (page.status_code, thanks.status_code, refused.status_code) == (200, 200, 403)
    for response in (page, thanks, refused):
        csp = {
            d.strip().split(" ", 1)[0]: d.strip().split(" ", 1)[1:]
            for d in response.headers["content-security-policy"].split(";")
        }
        assert csp["default-src"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["form-action"] == ["'self'"]
        assert "script-src" not in csp  # no script at all: default-src 'none' applies
        assert csp["style-src"][0].startswith("'sha256-")  # the inline style, by its hash
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
    # The hash is the page's own <style>: the page renders styled under its own policy.
    style = page.text.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in page.headers["content-security-policy"]
