from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.domain.normalize import (
    DEFAULT_PHONE_REGION,
    InvalidEmailAddress,
    InvalidHandle,
    InvalidPhoneNumber,
    html_to_text,
    normalize_email,
    normalize_handle,
    normalize_phone,
    phone_region,
    sanitize_html,
)

E164 = re.compile(r"\+[1-9]\d{1,14}")


# --- phone --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+86 138 0013 8000", "CN", "+8613800138000"),
        ("+86 138 0013 8000", "US", "+8613800138000"),
        ("(415) 555-0132", "US", "+14155550132"),
        ("(415) 555-0132", "us", "+14155550132"),
        ("  +1 415 555 0132  ", "CN", "+14155550132"),
        ("138-0013-8000", "CN", "+8613800138000"),
        ("+34 612 345 678", "CN", "+34612345678"),
        ("+86 400 820 8820", "CN", "+864008208820"),
    ],
)
def test_phone_numbers_become_e164(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


def test_national_number_is_read_in_china_by_default() -> None:
    assert DEFAULT_PHONE_REGION == "CN"
    assert normalize_phone("13800138000") == "+8613800138000"


@pytest.mark.parametrize(
    "raw", ["12", "", "   ", "call me", "+86 123", "+1 415 555 013", "+999 1234567", "1" * 65]
)
def test_impossible_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw, "CN")


def test_invalid_phone_number_is_a_value_error() -> None:
    assert issubclass(InvalidPhoneNumber, ValueError)


def test_unknown_default_region_is_a_configuration_error_not_bad_input() -> None:
    with pytest.raises(LookupError) as raised:
        normalize_phone("13800138000", "XX")
    assert not isinstance(raised.value, ValueError)


def test_phone_region_is_known_only_for_valid_international_numbers() -> None:
    assert phone_region("+1 415 555 0132") == "US"
    assert phone_region("+86 138 0013 8000") == "CN"
    assert phone_region("(415) 555-0132") is None
    assert phone_region("+1 12") is None


REGIONS_WITH_EXAMPLES = sorted(
    region
    for region in phonenumbers.SUPPORTED_REGIONS
    if phonenumbers.example_number(region) is not None
)


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[phonenumbers.PhoneNumber, str]:
    region = draw(st.sampled_from(REGIONS_WITH_EXAMPLES))
    number = phonenumbers.example_number(region)
    assert number is not None
    return number, region


@given(valid_numbers(), st.sampled_from(["CN", "US", "DE", "JP"]))
def test_normalize_phone_is_idempotent_on_its_own_output(
    example: tuple[phonenumbers.PhoneNumber, str], other_region: str
) -> None:
    number, region = example
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    e164 = normalize_phone(national, region)
    assert normalize_phone(international, other_region) == e164
    assert normalize_phone(e164, other_region) == e164
    assert E164.fullmatch(e164)


@given(st.text(max_size=80), st.sampled_from(["CN", "US", "GB"]))
def test_normalize_phone_returns_e164_or_raises_invalid_phone_number(raw: str, region: str) -> None:
    try:
        normalized = normalize_phone(raw, region)
    except InvalidPhoneNumber:
        return
    assert E164.fullmatch(normalized)


# --- email --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Maria.Lopez@Example.com", "maria.lopez@example.com"),
        ("  ap@corp.example ", "ap@corp.example"),
        ("LI.WEI@EXAMPLE.CN", "li.wei@example.cn"),
        ("李雷@例子.中国", "李雷@例子.中国"),
        ("user@XN--FSQU00A.XN--FIQS8S", "user@例子.中国"),
    ],
)
def test_email_addresses_are_validated_and_lower_cased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "not-an-address",
        "a@b",
        "maria@localhost",
        "Maria Lopez <maria.lopez@example.com>",
        "two@@example.com",
        "",
    ],
)
def test_malformed_email_addresses_are_refused(raw: str) -> None:
    with pytest.raises(InvalidEmailAddress):
        normalize_email(raw)


# --- social handle ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  @Dan_K ", "@dan_k"),
        ("dan_k", "dan_k"),
        ("@晨曦小鹿", "@晨曦小鹿"),
        ("@Cafe\u0301", "@caf\u00e9"),  # decomposed é composes (NFC)
        ("@Straße", "@strasse"),
        ("Maria   Lopez", "maria lopez"),
    ],
)
def test_handles_are_trimmed_composed_and_case_folded(raw: str, expected: str) -> None:
    assert normalize_handle(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "@", "@dan\x00k", "@dan\x07k", "@" + "x" * 300])
def test_empty_or_control_character_handles_are_refused(raw: str) -> None:
    with pytest.raises(InvalidHandle):
        normalize_handle(raw)


@given(st.text(min_size=1, max_size=40))
def test_normalize_handle_is_idempotent(raw: str) -> None:
    try:
        handle = normalize_handle(raw)
    except InvalidHandle:
        return
    assert normalize_handle(handle) == handle


# --- html ---------------------------------------------------------------------------------


def test_sanitize_html_drops_scripts_styles_and_handlers_keeping_text() -> None:
    html = (
        '<p onclick="steal()">您好 <b>Maria</b></p><script>alert(1)</script>'
        '<style>p {color: red}</style><a href="javascript:alert(2)">link</a>'
    )
    cleaned = sanitize_html(html)
    for gone in ("<script", "alert", "color: red", "onclick", "javascript"):
        assert gone not in cleaned
    assert "<p>您好 <b>Maria</b></p>" in cleaned
    assert ">link</a>" in cleaned


def test_html_to_text_puts_blocks_on_lines_and_unescapes_entities() -> None:
    html = (
        "<div><p>你好，</p><p>Refund   for&nbsp;order &amp; invoice</p>"
        "<ul><li>one</li><li>two</li></ul></div>"
    )
    assert html_to_text(html) == "你好，\nRefund for order & invoice\none\ntwo"


def test_html_to_text_skips_script_and_style_content() -> None:
    assert html_to_text("<style>p{}</style><p>hi</p><script>alert(1)</script>") == "hi"
