"""Urgency signals and who decides between the rules and the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from router.domain.classification import (
    DEFAULT_RULES,
    ModelVerdicts,
    TicketFacts,
    Verdict,
    classify,
    rules_from_documents,
)
from router.domain.opening import with_history
from router.domain.urgency import EarlierTicket, repeated_from_history, signals

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("充电器在冒烟，有烧焦味", "safety"),
        ("電熱毯有燒焦味", "safety"),
        ("got a shock off the washing machine", "safety"),
        ("there's a smell of gas from the hob", "safety"),
        ("全部门店的收银都登不上了", "scope"),
        ("整層樓的門禁都刷不過", "scope"),
        ("none of our tills can take cards, all down", "scope"),
        ("再不处理我就去12315投诉", "legal"),
        ("我已經問過律師了", "legal"),
        ("my solicitor will be in touch", "legal"),
        ("这是我第三次打电话了", "repeated"),
        ("third time I'm asking about this", "repeated"),
    ],
)
def test_each_signal_is_found_with_its_reason(text: str, kind: str) -> None:
    found = {s.kind: s for s in signals(text)}
    assert kind in found
    assert found[kind].reason.startswith(("safety", "scope", "legal", "repeated"))


@pytest.mark.parametrize(
    "text",
    [
        "我想问一下所有门店的营业时间",
        "how do I download all invoices",
        "thanks, all sorted",
        "fire tv remote",
    ],
)
def test_ordinary_messages_show_no_signal(text: str) -> None:
    assert signals(text) == ()


class FakeModel:
    version = "v9"

    def __init__(self, category: str, p: float, priority: str = "normal", pp: float = 0.9):
        self.verdicts = ModelVerdicts(
            "v9", Verdict(category, p, ("a", "b")), Verdict(priority, pp, ("c",))
        )

    def predict(self, text: str) -> ModelVerdicts:
        return self.verdicts


def facts(text: str, segment: str | None = None) -> TicketFacts:
    return TicketFacts(channel="chat", text=text, segment=segment)


def test_a_sure_model_decides_over_a_keyword_rule_and_says_why() -> None:
    result = classify(facts("app扣了我两次钱"), DEFAULT_RULES, FakeModel("billing", 0.8))
    assert result.category == "billing"
    assert result.category_rule is None
    assert result.category_source == "model:v9"
    assert result.priority_reasons[0] == "model v9: normal (p=0.90; 'c')"


def test_an_unsure_model_gives_way_to_a_matching_keyword_rule() -> None:
    result = classify(facts("app登录报错"), DEFAULT_RULES, FakeModel("inquiry", 0.2))
    assert (result.category, result.category_source) == ("technical", "rule:technical")


def test_an_unsure_model_still_decides_when_no_rule_matches() -> None:
    result = classify(facts("东西收到了"), DEFAULT_RULES, FakeModel("praise", 0.2))
    assert (result.category, result.category_source) == ("praise", "model:v9")


def test_a_supervisors_rule_and_a_condition_rule_decide_over_the_model() -> None:
    rules = rules_from_documents(
        [
            {"id": "recall", "keywords": [["KT-200"]], "category": "inquiry"},
            {"id": "vip", "condition": 'customer.segment == "vip"', "priority": "high"},
        ]
    )
    model = FakeModel("technical", 0.99, "low", 0.99)
    result = classify(facts("my KT-200 kettle", segment="vip"), rules, model)
    assert (result.category, result.category_source) == ("inquiry", "rule:recall")
    assert (result.priority, result.priority_source) == ("high", "rule:vip")


def test_signals_raise_the_models_priority_each_a_reason() -> None:
    text = "第三次来问了，充电器冒烟"
    result = classify(facts(text), DEFAULT_RULES, FakeModel("technical", 0.9, "normal", 0.9))
    assert result.priority == "urgent"
    assert result.priority_source == "signal:safety"
    assert [s.kind for s in result.signals] == ["safety", "repeated"]
    assert any(r.startswith("safety") for r in result.priority_reasons)
    assert any(r.startswith("repeated") for r in result.priority_reasons)


def test_without_a_model_the_rules_decide_as_before() -> None:
    result = classify(facts("我要投诉，客服太差了"), DEFAULT_RULES)
    assert (result.category, result.priority) == ("complaint", "high")
    assert result.category_source == "rule:complaint"
    assert result.model is None


# Repeated contacts from the customer's history, not the text.
_NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _earlier(
    category: str, status: str, days_ago: float, resolved_days_ago: float | None = None
) -> EarlierTicket:
    resolved = _NOW - timedelta(days=resolved_days_ago) if resolved_days_ago is not None else None
    return EarlierTicket(
        "0191f0aa-0000-7000-8000-000000000001", category, status,
        _NOW - timedelta(days=days_ago), resolved,
    )  # fmt: skip


def test_an_open_ticket_of_the_same_category_makes_a_new_contact_a_repeated_one() -> None:
    found = repeated_from_history("billing", [_earlier("billing", "assigned", 2)], _NOW)
    assert found is not None
    assert (found.kind, found.floor) == ("repeated", "high")
    assert "0191f0aa" in found.reason
    assert "still open" in found.reason


def test_a_recently_resolved_one_counts_and_an_old_or_other_category_one_does_not() -> None:
    recent = _earlier("technical", "resolved", 9, resolved_days_ago=3)
    assert repeated_from_history("technical", [recent], _NOW) is not None
    assert "resolved 3 days ago" in str(repeated_from_history("technical", [recent], _NOW))
    old = _earlier("technical", "closed", 30, resolved_days_ago=8)
    assert repeated_from_history("technical", [old], _NOW) is None  # outside the 7 days
    assert repeated_from_history("billing", [recent], _NOW) is None  # another problem
    assert repeated_from_history("billing", [], _NOW) is None


def test_a_repeated_contact_from_history_raises_the_priority_with_its_reason() -> None:
    result = classify(TicketFacts(channel="chat", text="hello, a question"), DEFAULT_RULES)
    assert result.priority == "normal"
    earlier = [_earlier(result.category, "queued", 1)]
    raised = with_history(result, earlier, _NOW)
    assert raised.priority == "high"
    assert raised.priority_source == "signal:repeated"
    assert raised.priority_reasons[-1].startswith("repeated contact: ticket 0191f0aa")
    assert [s.kind for s in raised.signals] == ["repeated"]
    assert with_history(result, [_earlier("praise", "queued", 1)], _NOW) == result
