"""An integration's default phone region, set on its API key, reads its national numbers."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from tests.integration.intake.conftest import Intake


def _call(caller: str, external_id: str = "call-1") -> dict[str, Any]:
    return {
        "channel": "phone",
        "external_id": external_id,
        "received_at": "2026-11-25T08:00:00Z",
        "phone": {"caller": caller, "call_id": external_id, "direction": "inbound"},
    }


async def _stored_caller(intake: Intake, key: str, response_body: dict[str, Any]) -> str:
    read = await intake.client.get(
        f"/v1/contacts/{response_body['id']}", headers={"Authorization": f"Bearer {key}"}
    )
    caller: str = read.json()["contact"]["phone"]["caller"]
    return caller


async def test_national_number_is_read_in_the_keys_region(intake: Intake) -> None:
    us_key = await intake.new_key(["phone"], name="us-telephony", phone_region="US")

    response = await intake.post(_call("(201) 555-0123"), us_key)

    assert response.status_code == 202, response.text
    assert await _stored_caller(intake, us_key, response.json()) == "+12015550123"


async def test_without_a_key_region_the_default_region_reads_it(intake: Intake) -> None:
    key = await intake.new_key(["phone"], name="telephony")

    response = await intake.post(_call("(201) 555-0123"), key)

    assert await _stored_caller(intake, key, response.json()) == "+862015550123"


async def test_the_contacts_own_hints_beat_the_keys_region(intake: Intake) -> None:
    us_key = await intake.new_key(["phone"], name="us-telephony", phone_region="US")
    body = _call("138 0013 8000")
    body["phone"]["called"] = "+86 400 820 8820"

    response = await intake.post(body, us_key)

    assert await _stored_caller(intake, us_key, response.json()) == "+8613800138000"


async def test_national_number_invalid_in_the_keys_region_is_a_422_naming_the_field(
    intake: Intake,
) -> None:
    us_key = await intake.new_key(["phone"], name="us-telephony", phone_region="US")

    response = await intake.post(_call("138 0013 8000"), us_key)

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body.phone.caller"
    assert "US" in error["message"]
    assert "API key" in error["message"]
    assert await intake.count("contacts") == 0


async def test_doubled_plus_is_refused_not_normalised(intake: Intake) -> None:
    key = await intake.new_key(["phone"])

    response = await intake.post(_call("++8613800138000"), key)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.phone.caller"
    assert await intake.count("contacts") == 0


async def test_batch_items_are_read_in_the_keys_region(intake: Intake) -> None:
    us_key = await intake.new_key(["phone"], name="us-telephony", phone_region="US")
    items = [_call("(201) 555-0123", "call-a"), _call("138 0013 8000", "call-b")]

    response = await intake.client.post(
        "/v1/contacts:batch", json={"items": items}, headers={"Authorization": f"Bearer {us_key}"}
    )

    assert [r["status"] for r in response.json()["items"]] == ["accepted", "invalid"]
    assert await _stored_caller(intake, us_key, response.json()["items"][0]) == "+12015550123"


async def test_keys_cli_sets_and_checks_the_region(intake: Intake) -> None:
    env = {**os.environ, "INTAKE_DATABASE_URL": intake.database_url}

    async def keys(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "intake.cli", "keys", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate()
        return process.returncode or 0, out.decode()

    created, created_out = await keys(
        "create", "--name", "us", "--channels", "phone", "--region", "us"
    )
    refused, refused_out = await keys(
        "create", "--name", "xx", "--channels", "phone", "--region", "XX"
    )

    assert created == 0, created_out
    assert "phone region US" in created_out
    assert refused == 2
    assert "XX" in refused_out
    assert await intake.db.fetchval("SELECT phone_region FROM api_keys WHERE name = 'us'") == "US"
    assert await intake.db.fetchval("SELECT count(*) FROM api_keys WHERE name = 'xx'") == 0

    prefix = await intake.db.fetchval("SELECT prefix FROM api_keys WHERE name = 'us'")
    changed, _ = await keys("region", prefix, "gb")
    assert changed == 0
    assert await intake.db.fetchval("SELECT phone_region FROM api_keys WHERE name = 'us'") == "GB"
    listed, listing = await keys("list")
    assert listed == 0
    assert f"{prefix}  us" in listing
    assert " GB " in listing
    cleared, _ = await keys("region", prefix, "-")
    unknown, _ = await keys("region", "000000000000", "US")
    assert cleared == 0
    assert unknown == 1
    assert await intake.db.fetchval("SELECT phone_region FROM api_keys WHERE name = 'us'") is None
