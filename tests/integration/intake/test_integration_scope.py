"""Keys are scoped to their integration: one integration never reads another's contacts, and
its ids (external id, Idempotency-Key) never collide with another's nor reveal another's."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg

from tests.integration.intake.conftest import Intake, samples


async def test_another_integration_cannot_read_a_contact_on_the_same_channel(
    intake: Intake,
) -> None:
    telephony = await intake.new_key(["phone"], name="telephony")
    other = await intake.new_key(["phone"], name="other-vendor")
    accepted = (await intake.post(samples()[0], telephony)).json()
    url = f"/v1/contacts/{accepted['id']}"

    mine = await intake.client.get(url, headers={"Authorization": f"Bearer {telephony}"})
    theirs = await intake.client.get(url, headers={"Authorization": f"Bearer {other}"})

    assert mine.status_code == 200
    assert theirs.status_code == 404
    assert theirs.headers["content-type"].startswith("application/problem+json")
    body = theirs.text
    assert accepted["customer_id"] not in body
    assert samples()[0]["text"] not in body


async def test_a_rotated_key_of_the_same_integration_still_reads_and_retries(
    intake: Intake,
) -> None:
    old = await intake.new_key(["phone"], name="telephony")
    new = await intake.new_key(["phone"], name="telephony")
    accepted = (await intake.post(samples()[0], old)).json()

    read = await intake.client.get(
        f"/v1/contacts/{accepted['id']}", headers={"Authorization": f"Bearer {new}"}
    )
    retry = await intake.post(samples()[0], new)

    assert read.status_code == 200
    assert retry.status_code == 202
    assert retry.json() == {**accepted, "status": "duplicate"}


async def test_same_external_id_from_another_integration_is_its_own_contact(
    intake: Intake,
) -> None:
    telephony = await intake.new_key(["phone"], name="telephony")
    other = await intake.new_key(["phone"], name="other-vendor")
    first = (await intake.post(samples()[0], telephony)).json()
    guessed = copy.deepcopy(samples()[0])
    guessed["text"] = "a different call that happens to reuse the id"

    response = await intake.post(guessed, other)

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    assert response.json()["id"] != first["id"]
    assert first["id"] not in response.text
    assert await intake.count("contacts") == 2


async def test_same_body_from_another_integration_is_not_a_duplicate_of_theirs(
    intake: Intake,
) -> None:
    telephony = await intake.new_key(["phone"], name="telephony")
    other = await intake.new_key(["phone"], name="other-vendor")
    first = (await intake.post(samples()[0], telephony)).json()

    response = await intake.post(samples()[0], other)

    assert response.json()["status"] == "accepted"
    assert response.json()["id"] != first["id"]


async def test_idempotency_key_of_another_integration_neither_conflicts_nor_leaks(
    intake: Intake,
) -> None:
    telephony = await intake.new_key(["phone"], name="telephony")
    other = await intake.new_key(["phone"], name="other-vendor")
    first = await intake.post(samples()[0], telephony, headers={"Idempotency-Key": "k-1"})
    call = copy.deepcopy(samples()[0])
    call["external_id"] = "call-of-the-other-vendor"

    response = await intake.post(call, other, headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 202, response.text
    assert first.json()["id"] not in response.text


async def test_conflict_inside_one_integration_still_names_its_own_contact(
    intake: Intake,
) -> None:
    telephony = await intake.new_key(["phone"], name="telephony")
    first = (await intake.post(samples()[0], telephony)).json()
    changed = copy.deepcopy(samples()[0])
    changed["text"] = "another body"

    response = await intake.post(changed, telephony)

    assert response.status_code == 409
    assert response.json()["existing_contact_id"] == first["id"]


async def test_batch_from_another_integration_gets_its_own_contacts_not_conflicts(
    intake: Intake,
) -> None:
    telephony = await intake.new_key(["phone"], name="telephony")
    other = await intake.new_key(["phone"], name="other-vendor")
    first = (await intake.post(samples()[0], telephony)).json()
    guessed = copy.deepcopy(samples()[0])
    guessed["text"] = "another body"

    response = await intake.client.post(
        "/v1/contacts:batch",
        json={"items": [guessed]},
        headers={"Authorization": f"Bearer {other}"},
    )

    assert response.status_code == 200
    [item] = response.json()["items"]
    assert item["status"] == "accepted"
    assert item["id"] != first["id"]


async def test_batch_checks_the_key_before_reading_the_body(intake: Intake) -> None:
    bad_key = {
        "Authorization": "Bearer cck_000000000000_forged",
        "Content-Type": "application/json",
    }

    not_json = await intake.client.post("/v1/contacts:batch", content=b"{not json", headers=bad_key)
    no_key = await intake.client.post("/v1/contacts:batch", content=b"[1, 2")
    wrong_shape = await intake.client.post(
        "/v1/contacts:batch", json={"nothing": "here"}, headers=bad_key
    )

    assert not_json.status_code == 401
    assert no_key.status_code == 401
    assert wrong_shape.status_code == 401
    assert not_json.headers["www-authenticate"].startswith("Bearer")


async def test_batch_without_a_valid_key_is_refused_before_its_body_is_read(
    intake: Intake,
) -> None:
    pulled = 0

    async def ten_megabytes() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(10):
            pulled += 1
            yield b"[" * 1_048_576

    response = await intake.client.post(
        "/v1/contacts:batch",
        content=ten_megabytes(),  # streamed, no Content-Length: only reading can tell its size
        headers={"Authorization": "Bearer cck_000000000000_forged"},
    )

    assert response.status_code == 401
    assert pulled <= 1  # before: read until the body limit (413) or parsed (422)


async def test_upgrading_gives_stored_contacts_their_keys_integration(fresh_database: str) -> None:
    from ccshared.db import asyncpg_dsn, load_migrations, make_engine, migrate, shared_migrations

    migrations = shared_migrations() + load_migrations("intake", "intake")
    engine = make_engine(fresh_database, pool_size=1)
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        await migrate(engine, [m for m in migrations if m.component != "intake" or m.version == 1])
        keys = {name: uuid.uuid4() for name in ("old-a", "new-a", "b")}
        for name, key_id in keys.items():
            await conn.execute(
                "INSERT INTO api_keys (id, name, prefix, secret_hash, channels, rate_per_s, "
                "burst, created_at) VALUES ($1, $2, $3, '', '{phone}', 1, 1, $4)",
                key_id,
                name.removeprefix("old-").removeprefix("new-"),
                name,
                datetime(2026, 1, 1, tzinfo=UTC) if name.startswith("old") else datetime.now(UTC),
            )
        customer = uuid.uuid4()
        await conn.execute("INSERT INTO customers (id) VALUES ($1)", customer)
        for name, key_id in keys.items():
            await conn.execute(
                "INSERT INTO contacts (id, customer_id, channel, external_id, api_key_id, "
                "request_hash, received_at, body) VALUES ($1, $2, 'phone', $3, $4, '', now(), "
                "'{}')",
                uuid.uuid4(),
                customer,
                f"call-{name}",
                key_id,
            )

        await migrate(engine, migrations)

        integrations = dict(await conn.fetch("SELECT prefix, integration_id FROM api_keys"))
        by_contact = dict(await conn.fetch("SELECT external_id, integration_id FROM contacts"))
    finally:
        await conn.close()
        await engine.dispose()
    assert integrations == {"old-a": keys["old-a"], "new-a": keys["old-a"], "b": keys["b"]}
    assert by_contact == {
        "call-old-a": keys["old-a"],
        "call-new-a": keys["old-a"],
        "call-b": keys["b"],
    }
