"""The trained classifier in the router, and corrections of a ticket's classification: who may
make them, what they change (history, event, queue) and that they are stored as labels."""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path

import orjson

import router as router_package
from router.classifier import store
from router.classifier import train as train_module
from router.db.corrections import training_labels
from tests.helpers import as_agent
from tests.integration.router.conftest import Router, contact

TILLS_DOWN = "我们门店的收银机全部登录不了，顾客排着长队等结账"
SHIPPED = store.current_name(store.SHIPPED_DIR)  # the shipped version the router loads
LAST_SHIPPED = store.versions(store.SHIPPED_DIR)[-1]


async def test_a_new_ticket_records_the_model_that_classified_it_and_the_urgency_signals(
    router: Router,
) -> None:
    ticket_id = await router.receive(contact(uuid.uuid4(), text_=TILLS_DOWN))
    ticket = await router.ticket(ticket_id)
    c = ticket["classification"]
    assert ticket["category"] == "technical"
    assert c["category_source"] == f"model:{SHIPPED}"
    assert c["model"]["version"] == SHIPPED
    assert c["model"]["category"]["label"] == "technical"
    assert 0.5 <= c["model"]["category"]["probability"] <= 1
    assert c["model"]["category"]["features"]
    assert ticket["priority"] == "urgent"
    assert [s["kind"] for s in c["signals"]] == ["scope"]
    opened = next(h for h in ticket["history"] if h["action"] == "open")
    assert opened["data"]["category_by"] == f"model:{SHIPPED}"


async def test_a_supervisor_corrects_a_waiting_ticket_which_moves_and_becomes_a_label(
    router: Router,
) -> None:
    await router.runtime.relay.stop()  # the events stay in the outbox, to be read here
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="你们的发票系统怎么用？"))
    before = await router.ticket(ticket_id)
    response = await router.client.post(
        f"/v1/tickets/{ticket_id}/classification",
        json={"category": "complaint", "priority": "high", "reason": "the customer is angry"},
    )
    assert response.status_code == 200, response.text
    after = await router.ticket(ticket_id)
    assert (after["category"], after["priority"]) == ("complaint", "high")
    assert after["queue_id"] == "complaints" != before["queue_id"]
    entry = next(h for h in after["history"] if h["action"] == "reclassify")
    assert entry["actor"] == "supervisor:test-supervisor" or entry["actor"].startswith(
        "supervisor:"
    )
    assert entry["data"]["from_category"] == before["category"]
    assert entry["data"]["model_version"] == SHIPPED
    events = [
        orjson.loads(v)
        for (v,) in await router.sql(
            "SELECT value FROM outbox WHERE key = :t ORDER BY id", t=str(ticket_id)
        )
    ]
    types = [e["event_type"] for e in events]
    assert "ticket.reclassified" in types
    assert types[-1] == "ticket.routed"
    reclassified = next(e for e in events if e["event_type"] == "ticket.reclassified")["payload"]
    assert reclassified["to_category"] == "complaint"
    assert reclassified["to_queue_id"] == "complaints"
    async with router.runtime.engine.connect() as conn:
        labels = await training_labels(conn)
    assert [(str(x.ticket_id), x.text, x.category, x.priority) for x in labels] == [
        (str(ticket_id), "你们的发票系统怎么用？", "complaint", "high")
    ]
    assert labels[0].model_version == SHIPPED


async def test_an_agent_corrects_a_ticket_they_may_read_and_no_other(router: Router) -> None:
    await router.agent("amy", skills={"technical": 3}, status="offline")
    mine = await router.receive(contact(uuid.uuid4(), text_=TILLS_DOWN))  # technical queue
    other = await router.receive(contact(uuid.uuid4(), text_="我要投诉你们的快递员，态度恶劣"))
    assert (await router.ticket(other))["queue_id"] == "complaints"

    refused = await router.client.post(
        f"/v1/tickets/{other}/classification",
        json={"category": "praise"},
        headers=as_agent("amy"),
    )
    assert refused.status_code == 404
    assert "complaint" not in refused.text
    assert "快递员" not in refused.text
    assert (await router.ticket(other))["category"] == "complaint"
    assert await router.sql("SELECT 1 FROM classification_corrections") == []

    allowed = await router.client.post(
        f"/v1/tickets/{mine}/classification", json={"priority": "high"}, headers=as_agent("amy")
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["priority"] == "high"
    rows = await router.sql("SELECT corrected_by, category FROM classification_corrections")
    assert [(r.corrected_by, r.category) for r in rows] == [("agent:amy", "technical")]


async def test_a_correction_naming_nothing_is_a_422(router: Router) -> None:
    ticket_id = await router.receive(contact(uuid.uuid4()))
    response = await router.client.post(f"/v1/tickets/{ticket_id}/classification", json={})
    assert response.status_code == 422


async def test_the_stored_shipped_rules_become_fallbacks_and_a_supervisors_stay_overrides(
    router: Router,
) -> None:
    rules = (await router.client.get("/v1/classification-rules")).json()["rules"]
    fallback = {r["id"]: r["fallback"] for r in rules}
    assert fallback["refund"] is True
    assert fallback["technical"] is True
    assert fallback["complaint"] is False
    assert fallback["auto-reply"] is False
    # A database whose version 1 was stored before the model: migration 0016 marks it.
    await router.sql(
        "UPDATE classification_rules SET rules = (SELECT jsonb_agg(r - 'fallback' ORDER BY o) "
        "FROM jsonb_array_elements(rules) WITH ORDINALITY AS x (r, o)) WHERE version = 1"
    )
    sql = Path(router_package.__file__).parent / "migrations/0016_shipped_rules_fallback.sql"
    await router.sql(sql.read_text())
    stored = await router.sql("SELECT rules FROM classification_rules WHERE version = 1")
    marked = {r["id"]: r.get("fallback") for r in stored[0].rules}
    assert marked["refund"] is True
    assert marked["outage"] is True
    assert marked["complaint"] is None
    assert marked["key-account"] is None


async def test_make_train_reads_the_deployments_corrections_and_keeps_versions(
    router: Router, fresh_database: str, tmp_path: Path
) -> None:
    """The loop through the API: a correction, then training (what `make train` runs) on the
    corpus plus the deployment's corrections, into the deployment's model directory."""
    ticket_id = await router.receive(
        contact(uuid.uuid4(), text_="数字人民币付不了款，提示交易异常")
    )
    response = await router.client.post(
        f"/v1/tickets/{ticket_id}/classification", json={"category": "billing"}
    )
    assert response.status_code == 200, response.text
    corrections = await train_module._corrections(fresh_database)
    assert [(k, e.text, e.category) for k, e in corrections] == [
        (str(ticket_id), "数字人民币付不了款，提示交易异常", "billing")
    ]
    out = io.StringIO()
    first, promoted, _ = await asyncio.to_thread(train_module.train, tmp_path, corrections, out=out)
    assert promoted
    assert first == f"v{LAST_SHIPPED + 1}"  # numbered after the shipped versions
    second, _, _ = await asyncio.to_thread(train_module.train, tmp_path, corrections, out=out)
    assert second == f"v{LAST_SHIPPED + 2}"
    names = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert names == ["current", f"{first}.json", f"{first}.npz", f"{second}.json", f"{second}.npz"]
    assert '"corrections": 1' in (tmp_path / f"{first}.json").read_text()
    assert "precision" in out.getvalue()
