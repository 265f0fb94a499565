"""Every outbox row is built by ccshared.outbox: the topic comes from the catalog, and a
statement of one's own gets its outbox part (named or numbered parameters) from one place."""

from __future__ import annotations

import uuid

from ccshared.events import new_event
from ccshared.events.catalog import INTAKE_CONTACTS, SLA_EVENTS, TOPICS
from ccshared.events.payloads import SlaMet
from ccshared.outbox import (
    OUTBOX_COLUMNS,
    OUTBOX_PART,
    outbox_arrays,
    outbox_part,
    outbox_tuple,
    outbox_tuples,
)


def test_topic_constants_name_the_catalog_topics() -> None:
    assert {INTAKE_CONTACTS, SLA_EVENTS} <= set(TOPICS)


def test_outbox_tuple_takes_its_topic_from_the_catalog() -> None:
    event_id = uuid.uuid4()
    row = outbox_tuple("contact.received", "customer-1", event_id, b"{}")
    assert row == (INTAKE_CONTACTS, "customer-1", event_id, "contact.received", b"{}", "{}")


def test_outbox_arrays_are_the_columns_of_the_rows_in_order() -> None:
    events = [
        new_event(
            SlaMet.model_validate(
                {
                    "ticket_id": str(uuid.uuid4()),
                    "metric": "first_response",
                    "policy_id": "p",
                    "policy_version": 1,
                    "deadline": "2026-01-01T00:00:00Z",
                    "met_at": "2026-01-01T00:00:00Z",
                }
            ),
            producer="sla",
        )
        for _ in range(2)
    ]
    arrays = outbox_arrays(outbox_tuples(events))
    assert len(arrays) == len(OUTBOX_COLUMNS)
    assert arrays[0] == [SLA_EVENTS, SLA_EVENTS]
    assert arrays[2] == [e.event_id for e in events]


def test_numbered_outbox_part_uses_six_parameters_from_the_first_given() -> None:
    name, sql = outbox_part(first_param=3, where="u.ord IN (SELECT ord FROM kept)")
    assert name == "events"
    assert "CAST($3 AS text[])" in sql
    assert "CAST($8 AS text[])" in sql
    assert "$9" not in sql
    assert "WHERE u.ord IN (SELECT ord FROM kept) ORDER BY u.ord" in sql
    assert ":e_" not in sql


def test_named_outbox_part_is_unchanged_for_sqlalchemy_statements() -> None:
    assert "CAST(:e_topic AS text[])" in OUTBOX_PART[1]
    assert "$" not in OUTBOX_PART[1]
