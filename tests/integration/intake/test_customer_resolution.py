"""Customers resolved by the one-statement batch write: from a cold cache, and by two intake
processes (each with its own cache) racing to create the same new customers."""

from __future__ import annotations

import asyncio
from typing import Any

from ccshared.service import runtime_of
from intake.db.writer import ContactWriter
from tests.integration.intake.conftest import Intake


def _writer(intake: Intake) -> ContactWriter:
    writer: ContactWriter = runtime_of(intake.app).parts.writer
    return writer


def _email(external_id: str, email: str, **customer: str) -> dict[str, Any]:
    return {
        "channel": "email",
        "external_id": f"<{external_id}@mail.example.com>",
        "received_at": "2026-11-25T09:00:00Z",
        "customer": {"email": email, **customer},
        "subject": "订单问题 / order question",
        "text": "我的订单还没到。My order has not arrived.",
        "email": {
            "message_id": f"<{external_id}@mail.example.com>",
            "from": email,
            "to": ["support@shop.example"],
        },
    }


async def _orphans(intake: Intake) -> int:
    return int(
        await intake.db.fetchval(
            "SELECT count(*) FROM customers c WHERE NOT EXISTS "
            "(SELECT 1 FROM customer_identities i WHERE i.customer_id = c.id) "
            "AND NOT EXISTS (SELECT 1 FROM contacts t WHERE t.customer_id = c.id)"
        )
    )


async def test_a_process_with_a_cold_cache_finds_the_stored_customer(intake_factory: Any) -> None:
    first = await intake_factory()
    key = await first.new_key()
    a = (await first.post(_email("a1", "wang.fang@example.cn", name="王芳"), key)).json()

    second = await intake_factory()  # another worker on the same database: knows nobody
    call = {
        "channel": "phone",
        "external_id": "call-wf-1",
        "received_at": "2026-11-25T09:05:00Z",
        "customer": {"email": "Wang.Fang@example.cn"},
        "phone": {"caller": "+86 139 1000 2000", "call_id": "c-wf", "direction": "inbound"},
    }
    b = await second.post(call, key)
    assert b.status_code == 202
    assert b.json()["customer_id"] == a["customer_id"]
    assert _writer(second).held == 1  # proposed a new customer, learned the stored one
    owners = await first.db.fetch("SELECT kind, customer_id::text AS c FROM customer_identities")
    assert {(r["kind"], r["c"]) for r in owners} == {
        ("email", a["customer_id"]),
        ("phone", a["customer_id"]),
    }
    assert await first.count("customers") == 1


async def test_two_processes_racing_on_new_customers_make_one_each(intake_factory: Any) -> None:
    one = await intake_factory()
    two = await intake_factory()
    key = await one.new_key()
    customers = [f"customer{n}@example.com" for n in range(20)]
    posts = [
        (one if i % 2 else two).post(_email(f"race-{i}", customers[i % len(customers)]), key)
        for i in range(120)
    ]
    responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [202] * len(posts)

    rows = await one.db.fetch(
        "SELECT i.value, i.customer_id, count(t.id) AS contacts, "
        "count(*) FILTER (WHERE t.customer_id <> i.customer_id) AS elsewhere "
        "FROM customer_identities i LEFT JOIN contacts t ON t.customer_id = i.customer_id "
        "GROUP BY i.value, i.customer_id"
    )
    assert sorted(r["value"] for r in rows) == sorted(customers)  # one owner per address
    assert all(r["elsewhere"] == 0 for r in rows)
    assert sum(r["contacts"] for r in rows) == 120  # every contact is with its address's owner
    assert await one.count("customers") == len(customers)
    assert await _orphans(one) == 0
    by_address: dict[str, set[str]] = {}
    for i, r in enumerate(responses):
        by_address.setdefault(customers[i % len(customers)], set()).add(r.json()["customer_id"])
    assert all(len(ids) == 1 for ids in by_address.values())
