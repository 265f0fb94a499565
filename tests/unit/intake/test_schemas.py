from __future__ import annotations

import json
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from intake.api.schemas import BatchItemResult, ContactAccepted, ContactBatch, ContactBatchResult
from intake.domain.contact_models import (
    CONTACT_ADAPTER,
    MAX_SUBJECT_CHARS,
    MAX_TEXT_CHARS,
    ChatContact,
    EmailContact,
    PhoneContact,
    SocialContact,
    derive_customer_hints,
    parse_contact,
    parse_contact_json,
)

FIXTURES = Path(__file__).parents[2] / "fixtures"
NOW = datetime(2026, 11, 25, 9, tzinfo=UTC)
CONTEXT = {"now": NOW}

GOOD = [json.loads(line) for line in (FIXTURES / "contacts.jsonl").read_text().splitlines()]
BAD = [json.loads(line) for line in (FIXTURES / "bad_contacts.jsonl").read_text().splitlines()]

# The field each bad sample gets wrong; a new bad sample must say which field it is about.
BAD_FIELD = {
    "unknown channel": ("channel",),
    "malformed phone number": ("customer", "phone"),
    "malformed email address": ("customer", "email"),
    "received far in the future": ("received_at",),
    "missing channel id": ("external_id",),
    "text not a string": ("text",),
    "timestamp without zone or garbage": ("received_at",),
}


def _sample(channel: str, index: int = 0) -> dict[str, Any]:
    """A fresh copy of the index-th good sample of a channel, free to modify."""
    sample: dict[str, Any] = json.loads(
        json.dumps([s for s in GOOD if s["channel"] == channel][index])
    )
    return sample


def _locs(body: Any, context: dict[str, Any] | None = None) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as raised:
        parse_contact(body, context=CONTEXT if context is None else context)
    return [error["loc"] for error in raised.value.errors()]


def _error(body: Any, loc: tuple[str | int, ...]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as raised:
        parse_contact(body, context=CONTEXT)
    matching = [e for e in raised.value.errors() if e["loc"] == loc]
    assert matching, f"no error at {loc}: {raised.value.errors()}"
    return dict(matching[0])


# --- the samples --------------------------------------------------------------------------


@pytest.mark.parametrize("body", GOOD, ids=[s["external_id"] for s in GOOD])
def test_every_good_sample_parses(body: dict[str, Any]) -> None:
    contact = parse_contact(body, context=CONTEXT)
    assert contact.channel == body["channel"]
    assert contact.external_id == body["external_id"]
    assert derive_customer_hints(contact).model_dump(exclude_none=True)


@pytest.mark.parametrize("sample", BAD, ids=[s["why"] for s in BAD])
def test_every_bad_sample_is_refused_naming_the_field_at_fault(sample: dict[str, Any]) -> None:
    assert BAD_FIELD[sample["why"]] in _locs(sample["body"])


def test_bad_samples_fail_the_same_way_from_json_text() -> None:
    for sample in BAD:
        with pytest.raises(ValidationError) as raised:
            parse_contact_json(json.dumps(sample["body"]), context=CONTEXT)
        assert BAD_FIELD[sample["why"]] in [e["loc"] for e in raised.value.errors()]


def test_unknown_channel_error_lists_the_known_channels() -> None:
    error = _error(BAD[0]["body"], ("channel",))
    assert error["input"] == "fax"
    assert "'phone', 'email', 'chat', 'social'" in error["msg"]


def test_malformed_phone_is_reported_on_both_customer_and_caller() -> None:
    locs = _locs(next(s for s in BAD if s["why"] == "malformed phone number")["body"])
    assert ("customer", "phone") in locs
    assert ("phone", "caller") in locs


def test_email_contact_without_email_part_names_the_missing_part() -> None:
    body = next(s for s in BAD if s["why"] == "malformed email address")["body"]
    assert _error(body, ("email",))["type"] == "missing"


def test_missing_channel_is_reported_as_missing_channel() -> None:
    body = _sample("chat")
    del body["channel"]
    error = _error(body, ("channel",))
    assert error["type"] == "missing"


def test_body_that_is_not_an_object_is_refused() -> None:
    assert _locs(["not", "an", "object"]) == [()]


def test_samples_are_dated_so_now_matters() -> None:
    early = {"now": datetime(2026, 11, 25, tzinfo=UTC)}
    assert ("received_at",) in _locs(_sample("email"), context=early)


# --- channel parts ------------------------------------------------------------------------


def test_phone_numbers_are_normalized_to_e164() -> None:
    contact = parse_contact(_sample("phone"), context=CONTEXT)
    assert isinstance(contact, PhoneContact)
    assert contact.phone.caller == "+8613800138000"
    assert contact.phone.called == "+864008208820"
    assert contact.customer.phone == "+8613800138000"
    assert contact.text == "我上周买的洗衣机一直漏水，已经打了三次电话了，我要投诉！"


def test_national_customer_phone_is_read_in_the_callers_country() -> None:
    contact = parse_contact(_sample("phone", 1), context=CONTEXT)
    assert contact.customer.phone == "+14155550132"
    assert contact.customer.account_id == "ACME-0042"


def test_default_region_comes_from_validation_context() -> None:
    body = _sample("phone", 1)
    body["phone"]["caller"] = body["customer"]["phone"] = "(415) 555-0132"
    del body["phone"]["called"]  # the called number's country would be a stronger hint
    in_us = parse_contact(body, context={**CONTEXT, "default_region": "US"})
    assert isinstance(in_us, PhoneContact)
    assert in_us.phone.caller == "+14155550132"
    in_china = parse_contact(body, context=CONTEXT)
    assert isinstance(in_china, PhoneContact)
    assert in_china.phone.caller.startswith("+86")


def test_unknown_default_region_is_a_server_error_not_a_validation_error() -> None:
    body = _sample("phone")
    body["phone"]["called"] = "400 820 8820"
    body["phone"]["caller"] = body["customer"]["phone"] = "138 0013 8000"  # no other hint
    with pytest.raises(LookupError):
        parse_contact(body, context={**CONTEXT, "default_region": "XX"})


@pytest.mark.parametrize("field", ["caller", "call_id", "direction"])
def test_phone_part_requires_caller_call_id_and_direction(field: str) -> None:
    body = _sample("phone")
    del body["phone"][field]
    assert _error(body, ("phone", field))["type"] == "missing"


def test_negative_call_duration_is_refused() -> None:
    body = _sample("phone")
    body["phone"]["duration_s"] = -1
    assert ("phone", "duration_s") in _locs(body)


def test_email_from_display_name_is_split_and_address_lower_cased() -> None:
    body = _sample("email")
    body["email"]["from"] = "Maria Lopez <Maria.Lopez@Example.COM>"
    body["email"]["cc"] = ["李雷 <LI.Lei@Example.cn>"]
    contact = parse_contact(body, context=CONTEXT)
    assert isinstance(contact, EmailContact)
    assert (contact.email.from_.name, contact.email.from_.address) == (
        "Maria Lopez",
        "maria.lopez@example.com",
    )
    assert contact.email.cc[0].address == "li.lei@example.cn"
    assert contact.email.cc[0].name == "李雷"


def test_customer_email_hint_is_lower_cased() -> None:
    contact = parse_contact(_sample("email", 1), context=CONTEXT)
    assert contact.customer.email == "maria.lopez@example.com"


def test_email_part_with_two_from_addresses_is_refused() -> None:
    body = _sample("email")
    body["email"]["from"] = "a@example.com, b@example.com"
    assert ("email", "from") in _locs(body)


@pytest.mark.parametrize("field", ["message_id", "from"])
def test_email_part_requires_message_id_and_from(field: str) -> None:
    body = _sample("email")
    del body["email"][field]
    assert _error(body, ("email", field))["type"] == "missing"


def test_email_html_is_sanitized_and_gives_the_text_when_text_is_missing() -> None:
    body = _sample("email")
    del body["text"]
    body["email"]["html"] = "<p>退款 <b>88231</b></p><script>alert(1)</script><p>Thanks</p>"
    contact = parse_contact(body, context=CONTEXT)
    assert isinstance(contact, EmailContact)
    assert contact.email.html == "<p>退款 <b>88231</b></p><p>Thanks</p>"
    assert contact.text == "退款 88231\nThanks"


def test_email_html_that_is_only_script_becomes_none() -> None:
    body = _sample("email")
    body["email"]["html"] = "<script>alert(1)</script>"
    contact = parse_contact(body, context=CONTEXT)
    assert isinstance(contact, EmailContact)
    assert contact.email.html is None
    assert contact.text == body["text"]


def test_attachment_metadata_is_normalized_and_content_refused() -> None:
    body = _sample("email")
    body["email"]["attachments"] = [
        {"filename": "发票.pdf", "content_type": "Application/PDF; name=x", "size_bytes": 5}
    ]
    contact = parse_contact(body, context=CONTEXT)
    assert isinstance(contact, EmailContact)
    assert contact.email.attachments[0].content_type == "application/pdf"
    body["email"]["attachments"][0]["content"] = "JVBERi0x"
    assert ("email", "attachments", 0, "content") in _locs(body)


def test_chat_requires_session_id_and_http_page_url() -> None:
    body = _sample("chat")
    del body["chat"]["session_id"]
    body["chat"]["page_url"] = "javascript:alert(1)"
    locs = _locs(body)
    assert ("chat", "session_id") in locs
    assert ("chat", "page_url") in locs


def test_chat_message_sender_must_be_visitor_agent_or_bot() -> None:
    body = _sample("chat")
    body["chat"]["messages"][0]["from"] = "customer"
    assert ("chat", "messages", 0, "from") in _locs(body)


def test_social_platform_and_author_are_case_folded() -> None:
    body = _sample("social", 1)
    body["social"]["platform"] = " X "
    body["social"]["author"] = "@Dan_K"
    body["customer"]["social_handle"] = " @DAN_k"
    contact = parse_contact(body, context=CONTEXT)
    assert isinstance(contact, SocialContact)
    assert contact.social.platform == "x"
    assert contact.social.author == contact.customer.social_handle == "@dan_k"


@pytest.mark.parametrize("field", ["platform", "post_id"])
def test_social_part_requires_platform_and_post_id(field: str) -> None:
    body = _sample("social")
    del body["social"][field]
    assert _error(body, ("social", field))["type"] == "missing"


@pytest.mark.parametrize(
    ("path", "typo"),
    [((), "txt"), (("customer",), "emial"), (("phone",), "calller")],
)
def test_unknown_keys_are_refused(path: tuple[str, ...], typo: str) -> None:
    body = _sample("phone")
    target = body
    for key in path:
        target = target[key]
    target[typo] = "x"
    assert _error(body, (*path, typo))["type"] == "extra_forbidden"


def test_dump_uses_from_and_round_trips() -> None:
    contact = parse_contact(_sample("email"), context=CONTEXT)
    dumped = contact.model_dump(mode="json")
    assert dumped["email"]["from"]["address"] == "maria.lopez@example.com"
    assert parse_contact(dumped, context=CONTEXT) == contact


# --- common fields ------------------------------------------------------------------------


def test_received_at_is_converted_to_utc() -> None:
    body = _sample("chat")
    body["received_at"] = "2026-11-25T11:00:00+08:00"
    contact = parse_contact(body, context=CONTEXT)
    assert contact.received_at == datetime(2026, 11, 25, 3, tzinfo=UTC)
    assert contact.received_at.tzinfo is UTC


@pytest.mark.parametrize(
    "value", ["2026-11-25T01:00:00", "2026-11-25", 1764032400, "yesterday", ""]
)
def test_received_at_needs_an_iso_timestamp_with_zone(value: object) -> None:
    body = _sample("chat")
    body["received_at"] = value
    assert _error(body, ("received_at",))["type"] in ("timezone_aware", "timestamp_invalid")


def test_future_skew_is_five_minutes_unless_the_context_says_otherwise() -> None:
    body = _sample("chat")
    body["received_at"] = (NOW + timedelta(minutes=4)).isoformat()
    parse_contact(body, context=CONTEXT)
    body["received_at"] = (NOW + timedelta(minutes=6)).isoformat()
    assert _error(body, ("received_at",))["type"] == "timestamp_in_future"
    parse_contact(body, context={**CONTEXT, "max_future_skew_s": 3600})


def test_channel_timestamps_are_checked_for_the_future_too() -> None:
    later = (NOW + timedelta(hours=1)).isoformat()
    phone, chat = _sample("phone"), _sample("chat")
    phone["phone"]["started_at"] = later
    chat["chat"]["messages"][0]["at"] = later
    assert ("phone", "started_at") in _locs(phone)
    assert ("chat", "messages", 0, "at") in _locs(chat)


def test_text_and_subject_limits() -> None:
    body = _sample("email")
    body["text"] = "漏" * MAX_TEXT_CHARS
    body["subject"] = "s" * MAX_SUBJECT_CHARS
    parse_contact(body, context=CONTEXT)
    body["text"] += "漏"
    body["subject"] += "s"
    assert _error(body, ("text",))["type"] == "string_too_long"
    assert _error(body, ("subject",))["type"] == "string_too_long"


@pytest.mark.parametrize(
    "path",
    [
        ("text",),
        ("subject",),
        ("customer", "name"),
        ("external_id",),
        ("chat", "messages", 0, "text"),
    ],
)
def test_nul_characters_are_refused(path: tuple[str | int, ...]) -> None:
    body = _sample("chat")
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "bad\x00text"
    assert _error(body, path)["type"] == "text_forbidden_character"


def test_text_is_stripped_and_nfc_normalized() -> None:
    body = _sample("chat")
    body["text"] = "\u3000 Cafe\u0301，你好 \n"
    body["subject"] = "   "
    contact = parse_contact(body, context=CONTEXT)
    assert contact.text == "Caf\u00e9，你好"
    assert contact.subject is None


_NOT_SPACE_IN_PYTHON_ONLY = "\x1c\x1d\x1e\x1f"  # str.strip() strips these, Unicode does not


@given(st.text(alphabet=st.characters(exclude_characters=_NOT_SPACE_IN_PYTHON_ONLY), max_size=60))
def test_any_text_is_kept_stripped_and_composed_or_refused_for_nul(text: str) -> None:
    body = _sample("chat")
    body["text"] = text
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        assert _locs(body) == [("text",)]
    else:
        expected = unicodedata.normalize("NFC", text.strip()) or None
        assert parse_contact(body, context=CONTEXT).text == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("zh", "zh"),
        ("EN", "en"),
        ("zh_hans_cn", "zh-Hans-CN"),
        ("en-us", "en-US"),
        ("es-419", "es-419"),
    ],
)
def test_language_tags_are_canonicalized(raw: str, expected: str) -> None:
    body = _sample("chat")
    body["language"] = raw
    assert parse_contact(body, context=CONTEXT).language == expected


@pytest.mark.parametrize("raw", ["chinese", "z", "zh-", "中文", "en us"])
def test_malformed_language_tags_are_refused(raw: str) -> None:
    body = _sample("chat")
    body["language"] = raw
    assert _error(body, ("language",))["type"] == "language_tag_invalid"


def test_metadata_takes_free_json_within_bounds() -> None:
    body = _sample("chat")
    body["metadata"] = {
        "crm": {"tier": "gold", "tags": ["vip", 1, None, 2.5, True]},
        "来源": "小程序",
    }
    assert parse_contact(body, context=CONTEXT).metadata == body["metadata"]
    body["metadata"] = {"blob": "x" * 20_000}
    assert _error(body, ("metadata",))["type"] == "metadata_too_large"
    body["metadata"] = {"nested": ["ok", {"k": "bad\x00"}]}
    assert _error(body, ("metadata",))["type"] == "text_forbidden_character"


def test_blank_optional_hints_count_as_absent() -> None:
    body = _sample("chat")
    body["customer"] = {"name": "Li Wei", "email": "", "phone": "  "}
    contact = parse_contact(body, context=CONTEXT)
    assert (contact.customer.email, contact.customer.phone) == (None, None)


# --- customer identification --------------------------------------------------------------


def test_contact_naming_no_customer_at_all_is_refused() -> None:
    body = _sample("chat")
    body["customer"] = {}
    del body["chat"]["visitor_id"]
    error = _error(body, ("customer",))
    assert error["type"] == "customer_unidentifiable"


def test_chat_visitor_alone_identifies_the_customer() -> None:
    body = _sample("chat")
    del body["customer"]
    contact = parse_contact(body, context=CONTEXT)
    assert derive_customer_hints(contact).model_dump(exclude_none=True) == {"visitor_id": "v-1203"}


def test_inbound_call_customer_is_the_caller_outbound_the_called() -> None:
    body = _sample("phone")
    del body["customer"]
    inbound = parse_contact(body, context=CONTEXT)
    assert derive_customer_hints(inbound).phone == "+8613800138000"
    body["phone"].update(
        direction="outbound", caller="+86 400 820 8820", called="+86 138 0013 8000"
    )
    outbound = parse_contact(body, context=CONTEXT)
    assert derive_customer_hints(outbound).phone == "+8613800138000"


def test_outbound_call_without_called_number_does_not_identify_anyone() -> None:
    body = _sample("phone")
    del body["customer"]
    body["phone"].update(direction="outbound")
    del body["phone"]["called"]
    assert ("customer",) in _locs(body)


def test_email_sender_fills_in_missing_hints_but_explicit_hints_win() -> None:
    body = _sample("email")
    body["customer"] = {"email": "billing@corp.example"}
    contact = parse_contact(body, context=CONTEXT)
    hints = derive_customer_hints(contact)
    assert hints.email == "billing@corp.example"
    assert hints.name == "Maria Lopez"


def test_social_author_becomes_the_handle_hint() -> None:
    body = _sample("social")
    del body["customer"]
    contact = parse_contact(body, context=CONTEXT)
    assert derive_customer_hints(contact).social_handle == "@晨曦小鹿"


# --- responses and batches ----------------------------------------------------------------


def test_accepted_response_status_is_accepted_or_duplicate() -> None:
    ids = {"id": uuid.uuid4(), "customer_id": uuid.uuid4(), "channel": "chat", "external_id": "c"}
    assert ContactAccepted(**ids, status="duplicate").status == "duplicate"
    with pytest.raises(ValidationError):
        ContactAccepted(**ids, status="invalid")


def test_batch_reports_each_item_on_its_own() -> None:
    batch = ContactBatch.model_validate({"items": [GOOD[0], BAD[0]["body"]]})
    results = []
    for index, item in enumerate(batch.items):
        try:
            contact = parse_contact(item, context=CONTEXT)
        except ValidationError as exc:
            results.append(BatchItemResult.invalid(index, exc))
            continue
        accepted = ContactAccepted(
            id=uuid.uuid4(),
            customer_id=uuid.uuid4(),
            status="accepted",
            channel=contact.channel,
            external_id=contact.external_id,
        )
        results.append(BatchItemResult.taken(index, accepted))
    dumped = ContactBatchResult(items=results).model_dump(mode="json")
    assert [item["status"] for item in dumped["items"]] == ["accepted", "invalid"]
    assert dumped["items"][1]["errors"][0]["field"] == "channel"
    assert "input" not in dumped["items"][1]["errors"][0]


@pytest.mark.parametrize("items", [[], [{}] * 501])
def test_batch_size_is_bounded(items: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        ContactBatch.model_validate({"items": items})


def test_contact_schema_documents_the_four_channels() -> None:
    schema = CONTACT_ADAPTER.json_schema()
    assert set(schema["discriminator"]["mapping"]) == {"phone", "email", "chat", "social"}
    assert isinstance(parse_contact(_sample("chat"), context=CONTEXT), ChatContact)
