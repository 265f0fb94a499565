"""Policies and calendars through the API: validation names the field at fault, holidays
import from iCalendar, unknown things are 404s."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.sla.conftest import Sla, fast_policy

ICAL = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//holidays//EN
BEGIN:VEVENT
UID:1
SUMMARY:National Day
DTSTART;VALUE=DATE:20251001
DTEND;VALUE=DATE:20251004
END:VEVENT
BEGIN:VEVENT
UID:2
SUMMARY:New Year
DTSTART;VALUE=DATE:20260101
END:VEVENT
END:VCALENDAR
"""

OFFICE = {
    "id": "shanghai-office",
    "name": "Shanghai office",
    "timezone": "Asia/Shanghai",
    "hours": {day: ["09:00-12:00", "13:30-18:00"] for day in ("monday", "tuesday")},
}


def problem_fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"targets": {"first_response": 0}}, "body.targets.first_response"),
        ({"targets": {"first_response": 60, "sooner": 30}}, "body.targets.sooner.[key]"),
        ({"targets": {}}, "body.targets"),
        ({"warn_at_share": 1.5}, "body.warn_at_share"),
        ({"calendar_id": "nowhere"}, "body.calendar_id"),
        ({"conditions": {"priority": ["asap"]}}, "body.conditions.priority"),
        (
            {
                "escalation": [
                    {"level": 2, "offset": 60, "actions": ["notify_manager"]},
                    {"level": 1, "offset": 120, "actions": ["notify_supervisor"]},
                ]
            },
            "body.escalation.1.level",
        ),
        ({"escalation": [{"level": 1, "offset": 0, "actions": []}]}, "body.escalation.0.actions"),
    ],
)
async def test_invalid_policy_is_a_422_naming_the_field(
    sla: Sla, change: dict[str, Any], field: str
) -> None:
    response = await sla.client.post("/v1/policies", json=fast_policy() | change)
    assert field in problem_fields(response)
    assert (await sla.client.get("/v1/policies/fast")).status_code == 404  # nothing was saved


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hours": {}}, "body.hours"),
        ({"hours": {"monday": ["09:00-12:00", "11:00-13:00"]}}, "body.hours.monday.1"),
        ({"hours": {"monday": ["18:00-09:00"]}}, "body.hours.monday.0"),
        ({"hours": {"monday": ["9 to 5"]}}, "body.hours.monday.0"),
        ({"timezone": "Mars/Olympus"}, "body.timezone"),
        ({"twenty_four_seven": True}, "body.hours"),
    ],
)
async def test_invalid_calendar_is_a_422_naming_the_field(
    sla: Sla, change: dict[str, Any], field: str
) -> None:
    response = await sla.client.post("/v1/calendars", json=OFFICE | change)
    assert field in problem_fields(response)
    assert (await sla.client.get("/v1/calendars/shanghai-office")).status_code == 404


async def test_policy_is_created_as_version_1_and_a_second_create_conflicts(sla: Sla) -> None:
    created = await sla.client.post("/v1/policies", json=fast_policy())
    assert created.status_code == 201
    assert created.json()["version"] == 1
    assert created.json()["active"] is True
    assert (await sla.client.post("/v1/policies", json=fast_policy())).status_code == 409
    listed = {p["id"] for p in (await sla.client.get("/v1/policies")).json()}
    assert {"fast", "default-urgent", "default-normal"} <= listed
    missing = await sla.client.put("/v1/policies/nope", json=fast_policy() | {"id": None})
    assert missing.status_code == 422  # the body of a change carries no id
    body = {k: v for k, v in fast_policy().items() if k != "id"}
    assert (await sla.client.put("/v1/policies/nope", json=body)).status_code == 404


async def test_calendar_holidays_import_from_icalendar_and_merge(sla: Sla) -> None:
    created = await sla.client.post("/v1/calendars", json=OFFICE | {"holidays": ["2025-10-01"]})
    assert created.status_code == 201, created.text
    imported = await sla.client.post(
        "/v1/calendars/shanghai-office/holidays",
        content=ICAL,
        headers={"content-type": "text/calendar"},
    )
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert body["imported"] == 4
    assert body["added"] == 3
    assert body["calendar"]["holidays"] == [
        "2025-10-01",
        "2025-10-02",
        "2025-10-03",
        "2026-01-01",
    ]
    assert body["calendar"]["revision"] == 2

    wrong_type = await sla.client.post(
        "/v1/calendars/shanghai-office/holidays",
        content=ICAL,
        headers={"content-type": "text/plain"},
    )
    assert wrong_type.status_code == 415
    broken = await sla.client.post(
        "/v1/calendars/shanghai-office/holidays",
        content=b"BEGIN:VCALENDAR\nEND:VCALENDAR\n",
        headers={"content-type": "text/calendar"},
    )
    assert problem_fields(broken) == ["body.holidays_ical"]


async def test_calendar_in_use_cannot_be_deleted(sla: Sla) -> None:
    assert (await sla.client.post("/v1/calendars", json=OFFICE)).status_code == 201
    policy = fast_policy(calendar_id="shanghai-office")
    assert (await sla.client.post("/v1/policies", json=policy)).status_code == 201
    assert (await sla.client.delete("/v1/calendars/shanghai-office")).status_code == 409
    assert (await sla.client.delete("/v1/calendars/24x7x")).status_code == 404


async def test_calendar_is_created_once_replaced_by_revision_and_deleted_when_unused(
    sla: Sla,
) -> None:
    created = await sla.client.post("/v1/calendars", json=OFFICE)
    assert created.status_code == 201, created.text
    assert created.json()["revision"] == 1
    again = await sla.client.post("/v1/calendars", json=OFFICE | {"name": "Another"})
    assert again.status_code == 409
    assert (await sla.client.get("/v1/calendars/shanghai-office")).json()["name"] == OFFICE["name"]
    listed = [c["id"] for c in (await sla.client.get("/v1/calendars")).json()]
    assert "shanghai-office" in listed
    assert listed == sorted(listed)

    body = {k: v for k, v in OFFICE.items() if k != "id"} | {"name": "Shanghai HQ"}
    replaced = await sla.client.put("/v1/calendars/shanghai-office", json=body)
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["name"], replaced.json()["revision"]) == ("Shanghai HQ", 2)
    assert (await sla.client.put("/v1/calendars/nowhere", json=body)).status_code == 404
    assert (
        await sla.client.post(
            "/v1/calendars/nowhere/holidays",
            content=ICAL,
            headers={"content-type": "text/calendar"},
        )
    ).status_code == 404

    assert (await sla.client.delete("/v1/calendars/shanghai-office")).status_code == 204
    assert (await sla.client.get("/v1/calendars/shanghai-office")).status_code == 404
    assert (await sla.client.delete("/v1/calendars/shanghai-office")).status_code == 404


async def test_unknown_policy_versions_are_404s_and_nothing_is_deactivated(sla: Sla) -> None:
    assert (await sla.client.post("/v1/policies", json=fast_policy())).status_code == 201
    assert (await sla.client.get("/v1/policies/nope/versions")).status_code == 404
    assert (await sla.client.get("/v1/policies/fast/versions/2")).status_code == 404
    assert (await sla.client.post("/v1/policies/nope/deactivate")).status_code == 404
    assert (await sla.client.get("/v1/policies/fast")).json()["active"] is True
    deactivated = await sla.client.post("/v1/policies/fast/deactivate")
    assert (deactivated.status_code, deactivated.json()["active"]) == (200, False)
    assert (await sla.client.get("/v1/policies/fast/versions/1")).json()["active"] is False


async def test_attainment_range_must_be_ordered_and_zoned(sla: Sla) -> None:
    backwards = await sla.client.get(
        "/v1/attainment", params={"from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}
    )
    assert problem_fields(backwards) == ["query.to"]
    naive = await sla.client.get(
        "/v1/attainment", params={"from": "2025-01-01T00:00:00", "to": "2025-02-01T00:00:00Z"}
    )
    assert problem_fields(naive) == ["query.from"]
    grouped = await sla.client.get(
        "/v1/attainment",
        params={"from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z", "group_by": "x"},
    )
    assert problem_fields(grouped) == ["query.group_by"]
    unknown = await sla.client.get("/v1/tickets/00000000-0000-0000-0000-000000000001/sla")
    assert unknown.status_code == 404
