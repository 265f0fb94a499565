"""The SLA API is the UI's: any user reads, only supervisors change policies and calendars."""

from __future__ import annotations

from tests.helpers import as_agent, as_user
from tests.integration.sla.conftest import Sla

POLICY = {
    "name": "Urgent complaints",
    "condition": 'ticket.priority == "urgent"',
    "targets": {"first_response": "1h", "resolution": "8h"},
}


async def test_agents_read_supervisors_change(sla: Sla) -> None:
    assert (await sla.client.get("/v1/policies", headers={"Authorization": ""})).status_code == 401
    expired = as_user("amy", "agent", ttl_s=-120)
    assert (await sla.client.get("/v1/policies", headers=expired)).status_code == 401
    before = (await sla.client.get("/v1/policies", headers=as_agent("amy"))).json()
    assert (await sla.client.get("/v1/at-risk", headers=as_agent("amy"))).status_code == 403
    refused = await sla.client.post("/v1/policies", json=POLICY, headers=as_agent("amy"))
    assert refused.status_code == 403
    calendar = await sla.client.put("/v1/calendars/cn", json={"name": "x"}, headers=as_agent("amy"))
    assert calendar.status_code == 403
    assert (await sla.client.get("/v1/policies", headers=as_agent("amy"))).json() == before
