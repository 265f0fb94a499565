"""Classification rules through the API: versioned, in force for new tickets at once, every
decision naming the rule and the version; only supervisors change them."""

from __future__ import annotations

import uuid

from router.domain.classification import DEFAULT_RULES
from tests.helpers import as_agent
from tests.integration.router.conftest import Router, contact

WARRANTY = {
    "id": "warranty",
    "description": "Warranty questions go to their own category, quickly",
    "keywords": [["保修", "warranty", "guarantee"]],
    "category": "warranty",
    "priority": "high",
}


async def test_the_shipped_rules_are_version_one(router: Router) -> None:
    response = await router.client.get("/v1/classification-rules", headers=as_agent("amy"))
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 1
    assert [r["id"] for r in body["rules"]] == [r.id for r in DEFAULT_RULES]
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="我要投诉"))
    assert (await router.ticket(ticket_id))["classification"]["rules_version"] == 1


async def test_new_rules_apply_to_the_next_ticket_and_explain_it(router: Router) -> None:
    current = (await router.client.get("/v1/classification-rules")).json()
    rules = [WARRANTY, *current["rules"]]
    response = await router.client.put("/v1/classification-rules", json={"rules": rules})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert response.json()["created_by"] == "supervisor:sup"

    ticket_id = await router.receive(contact(uuid.uuid4(), text_="我的洗衣机还在保修期内吗？"))
    ticket = await router.ticket(ticket_id)
    assert ticket["category"] == "warranty"
    assert ticket["priority"] == "high"
    classification = ticket["classification"]
    assert classification["rules_version"] == 2
    assert classification["category_rule"] == "warranty"
    assert "保修" in classification["matched_rules"][0]["reason"]
    again = (await router.client.get("/v1/classification-rules")).json()
    assert again["version"] == 2
    assert again["rules"][0]["id"] == "warranty"


async def test_bad_rules_are_422_naming_the_field_and_change_nothing(router: Router) -> None:
    broken = {**WARRANTY, "condition": "ticket.channel == "}
    response = await router.client.put(
        "/v1/classification-rules", json={"rules": [WARRANTY, broken | {"id": "w2"}]}
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.rules.1.condition"]
    unknown = await router.client.put(
        "/v1/classification-rules", json={"rules": [{**WARRANTY, "priority": "critical"}]}
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"].startswith("body.rules.0.priority")
    as_agent_amy = await router.client.put(
        "/v1/classification-rules", json={"rules": [WARRANTY]}, headers=as_agent("amy")
    )
    assert as_agent_amy.status_code == 403
    assert (await router.client.get("/v1/classification-rules")).json()["version"] == 1


async def test_rule_regex_re2_cannot_run_is_422_naming_the_condition(router: Router) -> None:
    lookbehind = {**WARRANTY, "condition": 'matches(text, "(?<!no )warranty")'}
    response = await router.client.put("/v1/classification-rules", json={"rules": [lookbehind]})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body.rules.0.condition"
    assert "no backreferences or lookaround" in error["message"]
    assert (await router.client.get("/v1/classification-rules")).json()["version"] == 1
