from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from sla.domain.policy import (
    DEFAULT_ESCALATION,
    DEFAULT_POLICIES,
    EscalationAction,
    EscalationLevel,
    InvalidPolicy,
    SlaPolicy,
    TicketAttributes,
    match_policy,
    raised_priority,
)

H = timedelta(hours=1)
TICKET = TicketAttributes(
    priority="normal", channel="email", category="billing", queue="q-billing", segment="vip"
)


def policy(id: str = "p", rank: int = 10, version: int = 1, **kwargs: Any) -> SlaPolicy:
    kwargs.setdefault("targets", {"first_response": H})
    return SlaPolicy(id=id, version=version, name=id, rank=rank, **kwargs)


# --- matching -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "allowed", "other"),
    [
        ("priority", "normal", "urgent"),
        ("channel", "email", "phone"),
        ("category", "billing", "shipping"),
        ("queue", "q-billing", "q-tech"),
        ("segment", "vip", "standard"),
    ],
)
def test_each_condition_field_restricts_the_match(field: str, allowed: str, other: str) -> None:
    matching = policy(conditions={field: frozenset({allowed})})
    excluding = policy(conditions={field: frozenset({other})})
    assert match_policy([matching], TICKET) is matching
    assert match_policy([excluding], TICKET) is None


def test_empty_conditions_match_any_ticket() -> None:
    anything = policy(conditions={"category": frozenset()})
    assert match_policy([anything], TICKET) is anything
    assert match_policy([policy()], TicketAttributes("low", "chat", "x")) is not None


def test_ticket_without_a_segment_does_not_match_a_segment_condition() -> None:
    vip_only = policy(conditions={"segment": frozenset({"vip"})})
    assert match_policy([vip_only], TicketAttributes("normal", "email", "billing")) is None


def test_all_conditions_must_match() -> None:
    both = policy(conditions={"priority": frozenset({"normal"}), "channel": frozenset({"chat"})})
    assert match_policy([both], TICKET) is None


def test_lower_rank_wins_over_higher_specificity() -> None:
    general = policy("general", rank=1)
    specific = policy("specific", rank=2, conditions={"category": frozenset({"billing"})})
    assert match_policy([specific, general], TICKET) is general


def test_more_specific_policy_wins_within_the_same_rank() -> None:
    general = policy("a-general", rank=5, conditions={"priority": frozenset({"normal"})})
    specific = policy(
        "z-specific",
        rank=5,
        conditions={"priority": frozenset({"normal"}), "segment": frozenset({"vip"})},
    )
    assert match_policy([general, specific], TICKET) is specific


def test_id_breaks_a_full_tie_so_the_choice_is_deterministic() -> None:
    b, a = policy("b"), policy("a")
    assert match_policy([b, a], TICKET) is a
    assert match_policy([a, b], TICKET) is a


def test_inactive_policies_are_skipped() -> None:
    off = policy("off", rank=1, active=False)
    on = policy("on", rank=2)
    assert match_policy([off, on], TICKET) is on


def test_only_the_latest_version_of_a_policy_counts() -> None:
    v1 = policy("p", version=1, rank=1)
    v2 = policy("p", version=2, rank=1, conditions={"channel": frozenset({"phone"})})
    fallback = policy("fallback", rank=9)
    assert match_policy([v2, v1, fallback], TICKET) is fallback
    v3 = replace(v1, version=3)
    assert match_policy([v2, v3, v1, fallback], TICKET) is v3


def test_deactivating_the_latest_version_disables_the_policy() -> None:
    v1 = policy("p", version=1)
    v2 = replace(v1, version=2, active=False)
    assert match_policy([v1, v2], TICKET) is None


# --- defaults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "first", "next_", "resolution"),
    [
        ("urgent", H, H / 2, 4 * H),
        ("high", H, H / 2, 8 * H),
        ("normal", 2 * H, H, 24 * H),
        ("low", 8 * H, 4 * H, 72 * H),
    ],
)
def test_default_policy_targets_by_priority(
    priority: str, first: timedelta, next_: timedelta, resolution: timedelta
) -> None:
    chosen = match_policy(DEFAULT_POLICIES, TicketAttributes(priority, "chat", "any"))  # type: ignore[arg-type]
    assert chosen is not None
    assert chosen.id == f"default-{priority}"
    assert dict(chosen.targets) == {
        "first_response": first,
        "next_response": next_,
        "resolution": resolution,
    }
    assert chosen.calendar_id == "24x7"
    assert chosen.escalation == DEFAULT_ESCALATION


def test_default_ladder_notifies_the_supervisor_at_breach_and_the_manager_an_hour_later() -> None:
    first, second = DEFAULT_ESCALATION
    assert (first.level, first.offset, first.actions) == (
        1,
        timedelta(0),
        frozenset({"notify_supervisor", "raise_priority"}),
    )
    assert (second.level, second.offset, second.actions) == (
        2,
        H,
        frozenset({"move_to_escalation_queue", "notify_manager"}),
    )


def test_raise_priority_goes_one_step_up_or_to_the_named_priority_and_never_down() -> None:
    one_step = EscalationLevel(1, timedelta(0), frozenset({"raise_priority"}))
    to_urgent = EscalationLevel(1, timedelta(0), frozenset({"raise_priority"}), "urgent")
    to_high = EscalationLevel(1, timedelta(0), frozenset({"raise_priority"}), "high")
    assert raised_priority("low", one_step) == "normal"
    assert raised_priority("urgent", one_step) == "urgent"
    assert raised_priority("low", to_urgent) == "urgent"
    assert raised_priority("urgent", to_high) == "urgent"


# --- validation ---------------------------------------------------------------------------------

NOTIFY: frozenset[EscalationAction] = frozenset({"notify_supervisor"})


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"targets": {"first_response": timedelta(0)}}, "targets.first_response", "positive"),
        ({"targets": {"resolution": -H}}, "targets.resolution", "positive"),
        ({"targets": {"time_to_coffee": H}}, "targets.time_to_coffee", "unknown metric"),
        ({"warn_at_share": 0.0}, "warn_at_share", "between 0 and 1"),
        ({"warn_at_share": 1.0}, "warn_at_share", "between 0 and 1"),
        ({"version": 0}, "version", "starts at 1"),
        ({"conditions": {"colour": frozenset({"red"})}}, "conditions.colour", "unknown field"),
        (
            {"conditions": {"priority": frozenset({"critical"})}},
            "conditions.priority",
            "unknown value(s) critical",
        ),
        (
            {"conditions": {"channel": frozenset({"fax"})}},
            "conditions.channel",
            "unknown value(s) fax",
        ),
        (
            {"escalation": (EscalationLevel(0, timedelta(0), NOTIFY),)},
            "escalation[0].level",
            "start at 1",
        ),
        (
            {"escalation": (EscalationLevel(1, timedelta(0), frozenset()),)},
            "escalation[0].actions",
            "at least one action",
        ),
        (
            {"escalation": (EscalationLevel(1, timedelta(0), frozenset({"page_ceo"})),)},  # type: ignore[arg-type]
            "escalation[0].actions",
            "unknown action(s) page_ceo",
        ),
        (
            {"escalation": (EscalationLevel(1, timedelta(0), NOTIFY, "urgent"),)},
            "escalation[0].raise_priority_to",
            "only a raise_priority action",
        ),
        (
            {
                "escalation": (
                    EscalationLevel(2, timedelta(0), NOTIFY),
                    EscalationLevel(2, H, NOTIFY),
                )
            },
            "escalation[1].level",
            "strictly increase",
        ),
        (
            {
                "escalation": (
                    EscalationLevel(1, H, NOTIFY),
                    EscalationLevel(2, timedelta(0), NOTIFY),
                )
            },
            "escalation[1].offset",
            "must not decrease",
        ),
    ],
)
def test_invalid_policy_names_the_field_at_fault(
    kwargs: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidPolicy) as caught:
        policy(**kwargs)
    assert caught.value.field == field
    assert message in caught.value.message


def test_policy_without_any_target_is_valid_and_tracks_nothing() -> None:
    quiet = policy(targets={})
    assert quiet.target("first_response") is None


def test_escalation_may_start_before_the_breach() -> None:
    early = policy(
        escalation=(
            EscalationLevel(1, -H / 2, NOTIFY),
            EscalationLevel(2, timedelta(0), frozenset({"raise_priority"})),
        )
    )
    assert early.escalation[0].offset == -H / 2
    assert early.escalation[0].notifies
    assert not early.escalation[1].notifies


def test_a_new_tickets_segment_is_the_registrys_and_key_account_only_by_its_word() -> None:
    from sla.domain.policy import ticket_segment

    assert ticket_segment(None, "key_account") == "key_account"
    assert ticket_segment("gold", "key_account") == "key_account"
    assert ticket_segment("key_account", None) is None  # the router's copy was behind
    assert ticket_segment("gold", None) == "gold"
    assert ticket_segment(None, None) is None
