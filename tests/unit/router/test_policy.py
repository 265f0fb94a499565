from __future__ import annotations

from typing import Any

import pytest

from ccshared.events.payloads import Channel
from router.domain.classification import DEFAULT_RULES, TicketFacts, classify
from router.domain.policy import (
    DEFAULT_POLICY,
    QUEUE_IDS,
    InvalidPolicy,
    NoMatchingStep,
    RoutingPolicy,
    UnknownStep,
    compile_step,
    first_matching_step,
    next_step_after_timeout,
    routing_attributes,
)


def attrs_for(text: str, channel: Channel = "email", segment: str | None = None) -> dict[str, Any]:
    facts = TicketFacts(channel=channel, text=text, segment=segment)
    return routing_attributes(facts, classify(facts, DEFAULT_RULES))


@pytest.mark.parametrize(
    ("text", "segment", "queue_id", "step_id"),
    [
        ("我要投诉", None, "complaints", "complaints"),
        ("the app shows an error", None, "technical", "technical"),
        ("发票开错了", None, "billing", "billing"),
        ("What are your opening hours?", None, "frontline", "frontline"),
        ("客服太给力了…点赞", None, "frontline", "frontline"),
        ("我要投诉", "vip", "vip", "vip-care"),
        ("What are your opening hours?", "key_account", "vip", "vip-care"),
    ],
)
def test_default_policy_places_tickets_by_segment_then_category(
    text: str, segment: str | None, queue_id: str, step_id: str
) -> None:
    match = first_matching_step(DEFAULT_POLICY, attrs_for(text, segment=segment))
    assert (match.queue_id, match.step_id, match.policy_version) == (queue_id, step_id, 1)


def test_match_explains_which_step_and_condition_matched() -> None:
    match = first_matching_step(DEFAULT_POLICY, attrs_for("发票开错了"))
    assert match.reason == "step 'billing' matched: ticket.category == \"billing\""
    assert match.timeout_s == 600


def test_specialist_ticket_overflows_to_frontline_after_its_timeout() -> None:
    attrs = attrs_for("我要投诉")
    overflow = next_step_after_timeout(DEFAULT_POLICY, "complaints", attrs)
    assert overflow is not None
    assert (overflow.step_id, overflow.queue_id) == ("specialist-overflow", "frontline")
    assert overflow.reason.startswith("waited 600s in 'complaints' (step 'complaints'); ")


def test_vip_ticket_overflows_to_escalations_not_a_specialist_queue() -> None:
    overflow = next_step_after_timeout(
        DEFAULT_POLICY, "vip-care", attrs_for("我要投诉", segment="vip")
    )
    assert overflow is not None
    assert (overflow.step_id, overflow.queue_id) == ("vip-overflow", "escalations")


def test_step_without_timeout_never_overflows() -> None:
    assert next_step_after_timeout(DEFAULT_POLICY, "frontline", attrs_for("hello")) is None


def test_overflow_only_steps_never_place_a_new_ticket() -> None:
    policy = RoutingPolicy(
        3,
        (
            compile_step("later", "true", "escalations", overflow_only=True),
            compile_step("all", "true", "frontline", timeout_s=60),
        ),
    )
    assert first_matching_step(policy, {}).step_id == "all"


def test_overflow_skips_steps_leading_to_the_same_queue() -> None:
    policy = RoutingPolicy(
        2,
        (
            compile_step("a", "true", "technical", timeout_s=60),
            compile_step("b", "true", "technical", timeout_s=60),
            compile_step("c", "true", "frontline"),
        ),
    )
    overflow = next_step_after_timeout(policy, "a", {})
    assert overflow is not None
    assert overflow.step_id == "c"


def test_overflow_with_no_later_matching_step_keeps_the_ticket_in_place() -> None:
    policy = RoutingPolicy(
        2,
        (
            compile_step("a", "true", "technical", timeout_s=60),
            compile_step("b", 'ticket.category == "billing"', "billing"),
        ),
    )
    assert next_step_after_timeout(policy, "a", {"ticket": {"category": "technical"}}) is None


def test_unknown_current_step_raises_so_the_caller_routes_afresh() -> None:
    with pytest.raises(UnknownStep, match="no step 'gone'"):
        next_step_after_timeout(DEFAULT_POLICY, "gone", attrs_for("hello"))


def test_step_priority_override_is_reported_in_the_match() -> None:
    policy = RoutingPolicy(
        5, (compile_step("vip", 'customer.segment == "vip"', "vip", priority="high"),)
    )
    assert first_matching_step(policy, {"customer": {"segment": "vip"}}).priority_override == "high"


def test_policy_without_a_matching_step_raises_no_matching_step() -> None:
    policy = RoutingPolicy(1, (compile_step("only", 'ticket.channel == "phone"', "frontline"),))
    with pytest.raises(NoMatchingStep):
        first_matching_step(policy, {"ticket": {"channel": "email"}})


def test_bad_step_condition_names_the_step_and_the_position() -> None:
    with pytest.raises(InvalidPolicy) as raised:
        compile_step("vip", 'customer.segment = "vip"', "vip")
    assert raised.value.step_id == "vip"
    assert raised.value.position == 17
    assert "use == to compare" in str(raised.value)


def test_step_condition_with_unknown_top_level_name_is_invalid() -> None:
    with pytest.raises(InvalidPolicy, match="unknown name 'segment'"):
        compile_step("vip", 'segment == "vip"', "vip")


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ((), "at least one step"),
        (
            (compile_step("a", "true", "frontline"), compile_step("a", "true", "vip")),
            "step 'a': step id is used twice",
        ),
        ((compile_step("a", "true", "frontline", timeout_s=0),), "timeout_s must be positive"),
        ((compile_step("a", "true", "frontline", overflow_only=True),), "every step is overflow"),
    ],
)
def test_inconsistent_policies_are_rejected(steps: tuple[Any, ...], message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message):
        RoutingPolicy(1, steps)


def test_default_policy_uses_only_known_queues_and_ends_with_a_catch_all() -> None:
    assert {step.queue_id for step in DEFAULT_POLICY.steps} <= set(QUEUE_IDS)
    assert DEFAULT_POLICY.steps[-1].condition.evaluate({})
