"""Customers' pure parts (`router.domain.customers`): what contacts add to a customer's view,
what a search query means, and whether and how two customers merge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ccshared.events.payloads import ContactReceived, CustomerHints, ThreadRefs
from router.domain.customers import (
    CustomerQuery,
    CustomerState,
    InvalidQuery,
    MergeRefused,
    contact_identities,
    customer_query,
    like_pattern,
    plan_merge,
    sightings,
)

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _contact(customer: uuid.UUID, at: datetime, **hints: str | None) -> ContactReceived:
    platform = hints.pop("platform", None)
    return ContactReceived(
        contact_id=uuid.uuid4(),
        customer_id=customer,
        channel="social" if platform else "chat",
        external_id=str(uuid.uuid4()),
        received_at=at,
        customer=CustomerHints(**hints),
        thread=ThreadRefs(social_platform=platform),
    )


@pytest.mark.parametrize(
    "typed",
    [
        "+86 138 0013 8000",
        "+86-138-0013-8000",
        "13800138000",
        "138 0013 8000",
        "(138) 0013-8000",
        "0086 13800138000",
        "86 13800138000",
        "＋８６ １３８ ００１３ ８０００",
    ],
)
def test_a_phone_number_typed_any_common_way_is_searched_as_e164(typed: str) -> None:
    assert customer_query(typed, "CN") == CustomerQuery("phone", "+8613800138000")


def test_a_national_number_is_read_in_the_configured_region() -> None:
    assert customer_query("(201) 555-0123", "US") == CustomerQuery("phone", "+12015550123")
    assert customer_query("+1 201 555 0123", "CN") == CustomerQuery("phone", "+12015550123")


def test_an_email_query_is_exact_and_lower_cased() -> None:
    assert customer_query("  Maria.Lopez@Example.COM ", "CN") == CustomerQuery(
        "email", "maria.lopez@example.com"
    )


def test_anything_else_is_a_name_with_whitespace_collapsed() -> None:
    assert customer_query(" 张三丰 ", "CN") == CustomerQuery("name", "张三丰")
    assert customer_query("Maria   LÓPEZ", "CN") == CustomerQuery("name", "maria lópez")
    assert customer_query("Room 2024", "CN").kind == "name"  # letters: not a phone


@pytest.mark.parametrize("bad", ["", "   ", "x" * 201, "+999 1234 5678"])
def test_empty_overlong_or_impossible_phone_queries_are_refused(bad: str) -> None:
    with pytest.raises(InvalidQuery):
        customer_query(bad, "CN")


def test_short_names_are_prefixes_and_wildcards_are_escaped() -> None:
    assert like_pattern(CustomerQuery("name", "张三")) == "张三%"
    assert like_pattern(CustomerQuery("name", "张三丰")) == "%张三丰%"
    assert like_pattern(CustomerQuery("name", "100%_a\\")) == "%100\\%\\_a\\\\%"


def test_a_contacts_identities_are_normalised_as_intake_keys_them() -> None:
    contact = _contact(
        uuid.uuid4(),
        T0,
        email=" Zhang@Example.COM",
        phone="+8613800138000",
        social_handle="zsf",
        platform="weibo",
    )
    assert contact_identities(contact) == [
        ("email", "zhang@example.com"),
        ("phone", "+8613800138000"),
        ("handle", "weibo:zsf"),
    ]
    assert contact_identities(_contact(uuid.uuid4(), T0, email=" ")) == []


def test_a_batch_keeps_the_latest_name_given_and_counts_every_contact() -> None:
    a, b = sorted([uuid.uuid4(), uuid.uuid4()])
    batch = [
        _contact(b, T0 + timedelta(minutes=5), name="Later Name"),
        _contact(b, T0, name="Earlier Name", email="x@example.com"),
        _contact(b, T0 + timedelta(minutes=9), name="  "),
        _contact(a, T0, phone="+8613800138000"),
    ]
    seen = sightings(batch)
    assert [s.customer_id for s in seen] == [a, b]  # id order: the order rows are locked in
    assert seen[1].name == "Later Name"
    assert seen[1].name_at == T0 + timedelta(minutes=5)
    assert seen[1].contacts == 3
    assert seen[1].first_contact_at == T0
    assert seen[1].last_contact_at == T0 + timedelta(minutes=9)
    assert seen[1].identities == {("email", "x@example.com"): T0}
    assert seen[0].name is None
    assert seen[0].contacts == 1


def _state(name: str | None = None, at: datetime = T0, **changes: object) -> CustomerState:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "display_name": name,
        "name_at": at if name else None,
        "first_contact_at": at,
        "last_contact_at": at,
        "contact_count": 1,
        "merged_into": None,
    }
    values.update(changes)
    return CustomerState(**values)  # type: ignore[arg-type]


def test_a_merge_unites_both_views_and_keeps_the_latest_name() -> None:
    source = _state("Zhang San", T0 + timedelta(days=1), contact_count=3)
    target = _state("张三", T0)
    plan = plan_merge(source, target)
    assert (plan.source, plan.target) == (source.id, target.id)
    assert plan.display_name == "Zhang San"
    assert plan.contact_count == 4
    assert plan.first_contact_at == T0
    assert plan.last_contact_at == T0 + timedelta(days=1)
    assert plan_merge(_state(None), target).display_name == "张三"
    assert plan_merge(_state("Only Source"), _state(None)).display_name == "Only Source"


def test_a_merge_into_itself_or_with_a_merged_customer_is_refused() -> None:
    one, merged = _state(), _state(merged_into=uuid.uuid4())
    with pytest.raises(MergeRefused) as itself:
        plan_merge(one, one)
    assert (itself.value.status, itself.value.field) == (422, "body.into")
    with pytest.raises(MergeRefused) as into_merged:
        plan_merge(one, merged)
    assert into_merged.value.status == 409
    assert str(merged.merged_into) in into_merged.value.reason
    with pytest.raises(MergeRefused) as already:
        plan_merge(merged, one)
    assert already.value.status == 409
