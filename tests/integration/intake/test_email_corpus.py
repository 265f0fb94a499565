"""The real-world e-mail corpus (tests/fixtures/email) posted raw to the running service: each
message is accepted (202) or refused with a clear 4xx, never a 5xx; what is stored has the
right sender, subject and text; posting the same bytes again returns the same contact, also
for messages without Message-ID or Date."""

from __future__ import annotations

from datetime import UTC, datetime

from intake.domain.contact_models import EmailContact, parse_contact
from tests.integration.intake.conftest import Intake
from tests.unit.intake.test_email_corpus import EXPECTED, check_contact, raw


async def test_every_corpus_message_is_accepted_as_expected_or_refused_clearly(
    intake: Intake,
) -> None:
    key = await intake.new_key(["email"])
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "message/rfc822"}
    started = datetime.now(UTC)
    accepted: dict[str, str] = {}
    for name, expected in sorted(EXPECTED.items()):
        response = await intake.client.post("/v1/contacts", content=raw(name), headers=headers)
        assert response.status_code == expected["status"], (name, response.text)
        if response.status_code != 202:
            problem = response.json()
            assert response.headers["content-type"] == "application/problem+json"
            assert problem["errors"][0]["field"] == expected["field"], (name, problem)
            assert "sender" in problem["detail"], problem
            continue
        accepted[name] = response.json()["id"]
    finished = datetime.now(UTC)

    for name, contact_id in accepted.items():
        stored = await intake.client.get(
            f"/v1/contacts/{contact_id}", headers={"Authorization": f"Bearer {key}"}
        )
        assert stored.status_code == 200
        contact = parse_contact(stored.json()["contact"], context={"now": finished})
        assert isinstance(contact, EmailContact)
        check_contact(contact, EXPECTED[name], now=(started, finished))

    for name, contact_id in accepted.items():  # a gateway's retry: the same bytes again
        again = await intake.client.post("/v1/contacts", content=raw(name), headers=headers)
        assert again.status_code == 202, (name, again.text)
        assert again.json()["id"] == contact_id, name
        assert again.json()["status"] == "duplicate", name
    assert await intake.count("contacts") == len(accepted)
