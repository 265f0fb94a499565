"""The bare ceiling of `python -m bench intake`: intake's contact fields without e-mail or
phone validation, taking the benchmark's bodies."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest
from pydantic import BaseModel, ValidationError

from bench import bare_ceiling_app as bare
from bench.harness import ROOT
from intake.domain import contact_models as real


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """Field names (as clients write them), nested models by their own fields."""
    found: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        nested = [
            arg
            for arg in getattr(info.annotation, "__args__", (info.annotation,))
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        inner = getattr(info.annotation, "__args__", ())
        nested += [
            a
            for t in inner
            for a in getattr(t, "__args__", ())
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        found[info.alias or name] = _fields(nested[0]) if nested else None
    return found


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        (bare.PhoneContact, real.PhoneContact),
        (bare.EmailContact, real.EmailContact),
        (bare.ChatContact, real.ChatContact),
        (bare.SocialContact, real.SocialContact),
    ],
)
def test_the_bare_model_has_intakes_fields(mine: type[BaseModel], theirs: type[BaseModel]) -> None:
    assert _fields(mine) == _fields(theirs)


def _benchmark_bodies() -> list[bytes]:
    script = (ROOT / "bench" / "contacts.lua").read_text()
    templates = re.findall(r"^  '(\{.*\})',$", script, re.MULTILINE)
    assert len(templates) == 4
    return [t.replace("%s", "1").encode() for t in templates]


def test_the_bare_model_takes_every_benchmark_body() -> None:
    bodies = _benchmark_bodies()
    for body in bodies:
        contact = bare.BARE_CONTACT.validate_json(body)
        assert contact.channel == orjson.loads(body)["channel"]


def test_the_bare_model_does_not_validate_addresses_or_numbers() -> None:
    body = {
        "channel": "phone",
        "external_id": "x",
        "received_at": "2026-11-25T01:02:03Z",
        "customer": {"email": "not an address", "phone": "12"},
        "phone": {"caller": "12", "call_id": "c", "direction": "inbound"},
    }

    assert bare.BARE_CONTACT.validate_python(body).phone.caller == "12"  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        real.parse_contact(body)


def test_the_bare_model_still_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        bare.BARE_CONTACT.validate_python({"channel": "chat", "emial": "x"})


async def test_the_bare_endpoint_answers_202_for_a_benchmark_body() -> None:
    app = bare.create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bare.test"
    ) as client:
        response = await client.post(
            "/v1/contacts",
            content=_benchmark_bodies()[1],
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 202
    assert response.json()["channel"] == "email"
