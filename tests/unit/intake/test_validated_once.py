"""Each distinct e-mail address and phone number of a body is validated once: the sender named
as customer.email and email.from, the caller named as customer.phone and phone.caller, and the
company's own address and line on every contact, were each validated again (the libraries were
most of intake's CPU per body). Invalid input is still refused every time."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from pydantic import ValidationError

import intake.domain.normalize as normalize
from intake.domain.contact_models import parse_contact


class _Counted:
    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.target(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, _Counted]:
    email = _Counted(normalize.validate_email)  # type: ignore[attr-defined]
    phone = _Counted(phonenumbers.parse)
    monkeypatch.setattr(normalize, "validate_email", email)
    monkeypatch.setattr(phonenumbers, "parse", phone)
    return {"email": email, "phone": phone}


def _email_body(address: str, n: int) -> dict[str, Any]:
    return {
        "channel": "email",
        "external_id": f"<once-{n}@mail.example.com>",
        "received_at": "2026-11-25T02:10:00Z",
        "customer": {"email": address},
        "text": "Where is my refund?",
        "email": {
            "message_id": f"<once-{n}@mail.example.com>",
            "from": f"Maria <{address}>",
            "to": ["support@once.example"],
        },
    }


def test_an_address_named_twice_in_a_body_is_validated_once(
    counted: dict[str, _Counted],
) -> None:
    contact = parse_contact(_email_body("Once.Twice@Example.com", 1))

    assert contact.customer.email == "once.twice@example.com"
    assert contact.email.from_.address == "once.twice@example.com"  # type: ignore[union-attr]
    assert counted["email"].calls == 2  # the sender once, the company's address once


def test_addresses_seen_before_are_not_validated_again(counted: dict[str, _Counted]) -> None:
    parse_contact(_email_body("returning@example.com", 2))
    before = counted["email"].calls

    again = parse_contact(_email_body("Returning@Example.com ", 3))

    assert counted["email"].calls == before + 1  # only the new spelling
    assert again.customer.email == "returning@example.com"


def test_a_number_named_twice_in_a_call_is_validated_once(counted: dict[str, _Counted]) -> None:
    contact = parse_contact(
        {
            "channel": "phone",
            "external_id": "once-call",
            "received_at": "2026-11-25T01:02:03Z",
            "customer": {"phone": "+86 138 0013 8999"},
            "phone": {
                "caller": "+86 138 0013 8999",
                "called": "+86 400 820 8821",
                "call_id": "once-call",
                "direction": "inbound",
            },
        }
    )

    assert contact.customer.phone == "+8613800138999"
    assert counted["phone"].calls == 2  # the caller once, the called line once


def test_invalid_addresses_and_numbers_are_refused_every_time(
    counted: dict[str, _Counted],
) -> None:
    for _ in range(3):
        with pytest.raises(normalize.InvalidEmailAddress):
            normalize.normalize_email("not-an-address@")
        with pytest.raises(normalize.InvalidPhoneNumber):
            normalize.normalize_phone("+86 1", "CN")
        with pytest.raises(ValidationError, match="email_address_invalid"):
            parse_contact(_email_body("twice@@example.com", 4))

    assert counted["email"].calls >= 3
    assert counted["phone"].calls == 3


def test_the_same_text_in_another_region_is_read_in_that_region() -> None:
    assert normalize.normalize_phone("(201) 555-0123", "US") == "+12015550123"
    assert normalize.normalize_phone("(201) 555-0123", "CN") == "+862015550123"
    assert normalize.normalize_phone("020 7946 0958", "GB") == "+442079460958"
    with pytest.raises(normalize.InvalidPhoneNumber, match="not a valid phone number in US"):
        normalize.normalize_phone("020 7946 0958", "US")
