"""Which region a phone number written without its country code is read in, and what is refused.

The hints, first one wins: `phone.region`, the country of the call's other number, the API
key's region, the service's default region. A national number that is not valid in the chosen
region is refused (422 naming the field), never read in another region.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import phonenumbers
import pytest
from pydantic import ValidationError

from intake.domain.contact_models import PhoneContact, parse_contact
from intake.domain.normalize import (
    InvalidPhoneNumber,
    RegionHint,
    UnknownPhoneRegion,
    choose_phone_region,
    normalize_phone,
)

NOW = datetime(2026, 11, 25, 9, tzinfo=UTC)
# 24 regions on every continent, with different national prefixes and number lengths.
REGIONS = [
    "US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "CH", "RU", "CN", "HK", "TW", "JP",
    "KR", "IN", "SG", "AU", "BR", "MX", "AR", "ZA", "NG", "EG", "AE",
]  # fmt: skip
NATIONAL = phonenumbers.PhoneNumberFormat.NATIONAL
INTERNATIONAL = phonenumbers.PhoneNumberFormat.INTERNATIONAL
E164 = phonenumbers.PhoneNumberFormat.E164


def _mobile(region: str) -> phonenumbers.PhoneNumber:
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert number is not None
    assert phonenumbers.is_valid_number(number)
    return number


def _fixed(region: str) -> phonenumbers.PhoneNumber:
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.FIXED_LINE)
    assert number is not None
    assert phonenumbers.is_valid_number(number)
    return number


def _national(region: str) -> tuple[str, str]:
    """A valid mobile number of the region in its national format, and its E.164 form."""
    number = _mobile(region)
    return phonenumbers.format_number(number, NATIONAL), phonenumbers.format_number(number, E164)


def _invalid_national(region: str) -> str:
    """Digits that are not a valid number in `region` (the library's own invalid example)."""
    number = phonenumbers.invalid_example_number(region)
    assert number is not None
    return str(number.national_number)


def _other_region(region: str) -> str:
    """A region in which the region's national mobile number is not valid."""
    national, _ = _national(region)
    for other in REGIONS:
        if other == region:
            continue
        try:
            normalize_phone(national, other)
        except InvalidPhoneNumber:
            return other
    raise AssertionError(f"{national} is valid everywhere")


def _call(
    caller: str,
    *,
    called: str | None = None,
    region: str | None = None,
    customer_phone: str | None = None,
    direction: str = "inbound",
) -> dict[str, Any]:
    phone: dict[str, Any] = {"caller": caller, "call_id": "c-1", "direction": direction}
    if called is not None:
        phone["called"] = called
    if region is not None:
        phone["region"] = region
    body: dict[str, Any] = {
        "channel": "phone",
        "external_id": "call-1",
        "received_at": "2026-11-25T08:00:00Z",
        "phone": phone,
    }
    if customer_phone is not None:
        body["customer"] = {"phone": customer_phone}
    return body


def _parse(
    body: dict[str, Any], *, key_region: str | None = None, default: str = "CN"
) -> PhoneContact:
    context = {"now": NOW, "default_region": default, "integration_region": key_region}
    contact = parse_contact(body, context=context)
    assert isinstance(contact, PhoneContact)
    return contact


def _refusal(body: dict[str, Any], **options: Any) -> dict[str, tuple[str, str]]:
    """loc -> (type, message) of each error."""
    with pytest.raises(ValidationError) as raised:
        _parse(body, **options)
    return {".".join(map(str, e["loc"])): (e["type"], e["msg"]) for e in raised.value.errors()}


# --- the example ---------------------------------------------------------------------


def test_us_national_number_is_stored_under_china_only_without_any_hint() -> None:
    assert _parse(_call("(201) 555-0123")).phone.caller == "+862015550123"


def test_us_national_number_is_read_in_the_us_with_the_keys_region() -> None:
    assert _parse(_call("(201) 555-0123"), key_region="US").phone.caller == "+12015550123"


def test_us_national_number_is_read_in_the_country_of_the_called_number() -> None:
    body = _call("(201) 555-0123", called="+1 800 555 0100")
    assert _parse(body).phone.caller == "+12015550123"


def test_us_national_number_is_read_in_the_region_the_body_names() -> None:
    assert _parse(_call("(201) 555-0123", region="us")).phone.caller == "+12015550123"


# --- every region, international format: no hint changes it ----------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_international_numbers_ignore_every_hint(region: str) -> None:
    for number in (_mobile(region), _fixed(region)):
        expected = phonenumbers.format_number(number, E164)
        international = phonenumbers.format_number(number, INTERNATIONAL)
        other = _other_region(region)
        for body, key_region in [
            (_call(international), None),
            (_call(expected, region=other), other),
            (_call(international, called="+1 800 555 0100"), "JP"),
        ]:
            assert _parse(body, key_region=key_region).phone.caller == expected


@pytest.mark.parametrize("region", REGIONS)
def test_invalid_international_numbers_are_refused_whatever_the_hints(region: str) -> None:
    invalid = phonenumbers.invalid_example_number(region)
    assert invalid is not None
    text = "+" + str(invalid.country_code) + " " + str(invalid.national_number)
    errors = _refusal(_call(text, region=region), key_region=region)
    assert errors["phone.caller"][0] == "phone_number_invalid"


# --- every region, national format: each hint on its own -------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_national_number_is_read_in_the_body_region(region: str) -> None:
    national, expected = _national(region)
    other = _other_region(region)
    body = _call(national, region=region, called="+1 800 555 0100")
    assert _parse(body, key_region=other, default=other).phone.caller == expected


@pytest.mark.parametrize("region", REGIONS)
def test_national_number_is_read_in_the_called_numbers_country(region: str) -> None:
    national, expected = _national(region)
    called = phonenumbers.format_number(_fixed(region), INTERNATIONAL)
    other = _other_region(region)
    body = _call(national, called=called)
    assert _parse(body, key_region=other, default=other).phone.caller == expected


@pytest.mark.parametrize("region", REGIONS)
def test_national_called_number_is_read_in_the_callers_country(region: str) -> None:
    national, expected = _national(region)
    caller = phonenumbers.format_number(_fixed(region), E164)
    other = _other_region(region)
    body = _call(caller, called=national, direction="outbound")
    contact = _parse(body, key_region=other, default=other)
    assert contact.phone.called == expected
    assert contact.customer.phone is None  # the customer of an outbound call is the called
    assert contact.phone.caller == caller


@pytest.mark.parametrize("region", REGIONS)
def test_national_number_is_read_in_the_keys_region(region: str) -> None:
    national, expected = _national(region)
    other = _other_region(region)
    assert _parse(_call(national), key_region=region, default=other).phone.caller == expected


@pytest.mark.parametrize("region", REGIONS)
def test_national_number_is_read_in_the_default_region_without_any_hint(region: str) -> None:
    national, expected = _national(region)
    assert _parse(_call(national), default=region).phone.caller == expected


@pytest.mark.parametrize("region", REGIONS)
def test_national_customer_phone_is_read_in_the_callers_country_first(region: str) -> None:
    national, expected = _national(region)
    caller = phonenumbers.format_number(_fixed(region), INTERNATIONAL)
    other = _other_region(region)
    called = phonenumbers.format_number(_fixed(other), INTERNATIONAL)
    body = _call(caller, called=called, customer_phone=national)
    assert _parse(body, key_region=other, default=other).customer.phone == expected


# --- every region, national format: not valid where the first hint says -> refused ----------


@pytest.mark.parametrize("region", REGIONS)
def test_invalid_national_number_is_refused_naming_the_field_and_the_hint(region: str) -> None:
    invalid = _invalid_national(region)
    called = phonenumbers.format_number(_fixed(region), E164)
    cases = [
        (_call(invalid, region=region), {}, "phone.region"),
        (_call(invalid, called=called), {}, "the called number"),
        (_call(invalid), {"key_region": region}, "the API key's region"),
        (_call(invalid), {"default": region}, "the default region"),
    ]
    for body, options, source in cases:
        errors = _refusal(body, **options)
        kind, message = errors["phone.caller"]
        assert kind == "phone_number_invalid"
        assert region in message
        assert source in message


@pytest.mark.parametrize("region", REGIONS)
def test_national_number_of_another_country_is_refused_not_guessed(region: str) -> None:
    national, _ = _national(region)
    other = _other_region(region)
    called = phonenumbers.format_number(_fixed(other), E164)
    for body, options in [
        (_call(national, region=other), {"key_region": region, "default": region}),
        (_call(national, called=called), {"key_region": region, "default": region}),
        (_call(national), {"key_region": other, "default": region}),
        (_call(national), {"default": other}),
    ]:
        assert "phone.caller" in _refusal(body, **options)


def test_first_hint_wins_even_when_a_later_one_would_have_fit() -> None:
    body = _call("(201) 555-0123", region="FR", called="+1 800 555 0100")
    kind, message = _refusal(body, key_region="US", default="US")["phone.caller"]
    assert kind == "phone_number_invalid"
    assert "FR" in message


def test_non_geographic_called_number_is_no_hint() -> None:
    body = _call("(201) 555-0123", called="+800 1234 5678")
    assert _parse(body, key_region="US").phone.caller == "+12015550123"


# --- the region field and the hints themselves -------------------------------------------------


@pytest.mark.parametrize("region", ["XX", "ZZ", "USA", "1", "", "u"])
def test_unknown_body_region_is_refused_naming_the_field(region: str) -> None:
    errors = _refusal(_call("+1 201 555 0123", region=region)) if region else {}
    if region:
        assert errors["phone.region"][0] in ("phone_region_invalid", "string_too_long",
                                             "string_too_short")  # fmt: skip
    else:  # an empty form field counts as absent
        assert _parse(_call("+1 201 555 0123", region=region)).phone.region is None


def test_body_region_is_kept_upper_case() -> None:
    assert _parse(_call("(201) 555-0123", region=" us ")).phone.region == "US"


def test_choose_phone_region_takes_the_first_hint_there_is() -> None:
    called = [("the called number", "+44 20 7946 0000")]
    assert choose_phone_region(
        explicit="fr", call_numbers=called, integration="US", default="CN"
    ) == RegionHint("FR", "phone.region")
    assert choose_phone_region(call_numbers=called, integration="US") == RegionHint(
        "GB", "the called number"
    )
    assert choose_phone_region(
        call_numbers=[("the called number", "020 7946 0000")], integration="US"
    ) == RegionHint("US", "the API key's region")
    assert choose_phone_region(default="CN") == RegionHint("CN", "the default region")
    with pytest.raises(UnknownPhoneRegion):
        choose_phone_region(explicit="XX")


# --- junk is refused, not normalised -------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    [
        "++8613800138000",
        "+ +86 138 0013 8000",
        "+86+138 0013 8000",
        "+86 138 0013 8000 +1",
        "+86 138 0013 8000 or +1 415 555 0132",
        "1-800-FLOWERS",
        "138OO138OOO",
        "tel:+8613800138000",
        "phone: 13800138000",
        "13800138000!",
        "+",
        "()",
        "+86 (138) 0013 8000 ext",
        "<13800138000>",
    ],
)
def test_junk_is_refused_not_normalised(junk: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(junk, "CN")
    assert _refusal(_call(junk))["phone.caller"][0] == "phone_number_invalid"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+86 138 0013 8000", "+8613800138000"),
        ("+86-138-0013-8000", "+8613800138000"),
        ("(0)138 0013 8000", "+8613800138000"),
        ("１３８ ００１３ ８０００", "+8613800138000"),  # full-width digits
        ("+1 415 555 0132 ext. 12", "+14155550132"),
        ("+1 415.555.0132 x12", "+14155550132"),
        ("+1 (415) 555-0132;ext=7", "+14155550132"),
    ],
)
def test_common_ways_of_writing_a_number_are_still_accepted(raw: str, expected: str) -> None:
    assert normalize_phone(raw, "CN") == expected


def test_customer_phone_of_a_non_phone_contact_is_read_in_the_keys_region() -> None:
    body = {
        "channel": "chat",
        "external_id": "chat-1",
        "received_at": "2026-11-25T08:00:00Z",
        "customer": {"phone": "(201) 555-0123"},
        "chat": {"session_id": "s-1"},
    }
    context = {"now": NOW, "default_region": "CN"}
    in_us = parse_contact(body, context={**context, "integration_region": "US"})
    by_default = parse_contact(body, context=context)
    assert in_us.customer.phone == "+12015550123"
    assert by_default.customer.phone == "+862015550123"
    with pytest.raises(ValidationError) as raised:
        parse_contact(body, context={**context, "integration_region": "FR"})
    assert [e["loc"] for e in raised.value.errors()] == [("customer", "phone")]
