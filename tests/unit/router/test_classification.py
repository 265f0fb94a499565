from __future__ import annotations

import pytest

from ccshared.events.payloads import Channel, Priority
from router.domain.classification import (
    DEFAULT_RULES,
    AllOf,
    ClassificationRule,
    Expression,
    Keywords,
    ModelVerdicts,
    TicketFacts,
    Verdict,
    classify,
    detect_language,
    predicted,
)
from router.domain.expressions import ExpressionError


@pytest.mark.parametrize(
    ("text", "channel", "segment", "category", "priority", "language", "category_rule"),
    [
        (
            "我上周买的洗衣机一直漏水，已经打了三次电话了，我要投诉！",
            "phone",
            None,
            "complaint",
            "high",
            "zh",
            "complaint",
        ),
        ("Refund for order 88231", "email", None, "billing", "normal", "en", "refund"),
        (
            "your app has been down for an hour, cannot pay at checkout",
            "chat",
            None,
            "technical",
            "urgent",
            "en",
            "outage-blocks-payment",
        ),
        ("客服太给力了…点赞", "social", None, "praise", "low", "zh", "praise"),
        (
            "payment terminals in all 40 stores are offline. Urgent.",
            "email",
            "key_account",
            "technical",
            "urgent",
            "en",
            "outage-blocks-payment",
        ),
        ("发票开错了", "chat", None, "billing", "normal", "zh", "invoice"),
    ],
)
def test_default_rules_classify_the_issue_samples(
    text: str,
    channel: Channel,
    segment: str | None,
    category: str,
    priority: Priority,
    language: str,
    category_rule: str,
) -> None:
    result = classify(TicketFacts(channel=channel, text=text, segment=segment), DEFAULT_RULES)
    assert (result.category, result.priority, result.language) == (category, priority, language)
    assert result.category_rule == category_rule


def test_every_decision_names_the_matching_rule_and_the_keyword_found() -> None:
    result = classify(TicketFacts(channel="phone", text="我要投诉你们"), DEFAULT_RULES)
    assert [(m.rule_id, m.reason) for m in result.matched_rules] == [
        ("complaint", "text contains '投诉'")
    ]
    assert result.priority_rule == "complaint"


def test_vip_praise_is_raised_to_high_and_hinted_to_vip_care() -> None:
    result = classify(
        TicketFacts(channel="email", text="Thanks, great service!", segment="vip"), DEFAULT_RULES
    )
    assert (result.category, result.priority, result.queue_hint) == ("praise", "high", "vip")
    assert result.priority_rule == "key-account"
    assert [m.rule_id for m in result.matched_rules] == ["key-account", "praise"]


def test_explicit_urgency_raises_any_category_to_urgent() -> None:
    result = classify(TicketFacts(channel="email", text="发票开错了，紧急！"), DEFAULT_RULES)
    assert (result.category, result.priority) == ("billing", "urgent")
    assert result.priority_rule == "says-urgent"


def test_english_keywords_match_whole_words_only() -> None:
    result = classify(
        TicketFacts(channel="email", text="How do I download my data?"), DEFAULT_RULES
    )
    assert result.category == "inquiry"
    assert result.matched_rules == ()


def test_subject_is_classified_together_with_the_body() -> None:
    facts = TicketFacts(channel="email", subject="Invoice 2024-113", text="see attachment")
    assert classify(facts, DEFAULT_RULES).category == "billing"


def test_unmatched_ticket_gets_defaults_and_no_deciding_rule() -> None:
    result = classify(
        TicketFacts(channel="chat", text="What are your opening hours?"), DEFAULT_RULES
    )
    assert (result.category, result.priority) == ("inquiry", "normal")
    assert result.category_rule is None
    assert result.priority_rule is None


def test_complaint_wins_over_praise_words_inside_it() -> None:
    result = classify(TicketFacts(channel="chat", text="我对你们的服务很不满意"), DEFAULT_RULES)
    assert (result.category, result.priority) == ("complaint", "high")


def test_auto_reply_stops_evaluation_so_nothing_raises_its_priority() -> None:
    facts = TicketFacts(
        channel="email", text="Out of office: urgent matters to my colleague", segment="vip"
    )
    result = classify(facts, DEFAULT_RULES)
    assert (result.category, result.priority) == ("auto_reply", "low")
    assert [m.rule_id for m in result.matched_rules] == ["auto-reply"]


def test_given_language_is_kept_and_detection_is_only_a_fallback() -> None:
    facts = TicketFacts(channel="email", text="你好", language="en")
    assert classify(facts, DEFAULT_RULES).language == "en"
    assert classify(TicketFacts(channel="email", text="你好"), DEFAULT_RULES).language == "zh"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我要退款", "zh"),
        ("Refund please", "en"),
        ("我要refund", "zh"),
        ("Refund for 王伟", "en"),
        ("", "en"),
        ("12345", "en"),
    ],
)
def test_language_detection_counts_chinese_characters_against_latin_words(
    text: str, language: str
) -> None:
    assert detect_language(text) == language


def test_first_rule_to_set_the_category_wins_and_most_urgent_priority_wins() -> None:
    rules = [
        ClassificationRule("a", "", Keywords.of("order"), category="sales", priority="low"),
        ClassificationRule("b", "", Keywords.of("order"), category="billing", priority="high"),
        ClassificationRule("c", "", Keywords.of("order"), priority="normal"),
    ]
    result = classify(TicketFacts(channel="email", text="my order"), rules)
    assert (result.category, result.category_rule) == ("sales", "a")
    assert (result.priority, result.priority_rule) == ("high", "b")


def test_stop_flag_skips_the_rules_after_it() -> None:
    rules = [
        ClassificationRule("first", "", Keywords.of("x"), category="one", stop=True),
        ClassificationRule("second", "", Keywords.of("x"), priority="urgent"),
    ]
    result = classify(TicketFacts(channel="chat", text="x"), rules)
    assert result.priority == "normal"
    assert [m.rule_id for m in result.matched_rules] == ["first"]


def test_rules_may_use_channel_segment_and_metadata_expressions() -> None:
    rule = ClassificationRule(
        "phone-gold",
        "Gold customers calling about large orders",
        AllOf(
            (
                Expression.of('ticket.channel == "phone" && customer.segment == "gold"'),
                Expression.of("metadata.order_total >= 1000"),
            )
        ),
        priority="high",
        queue_hint="vip",
    )
    facts = TicketFacts(channel="phone", text="", segment="gold", metadata={"order_total": 1500})
    result = classify(facts, [rule])
    assert (result.priority, result.queue_hint) == ("high", "vip")
    assert result.matched_rules[0].reason == (
        'ticket.channel == "phone" && customer.segment == "gold" holds and '
        "metadata.order_total >= 1000 holds"
    )
    assert classify(TicketFacts(channel="chat", segment="gold"), [rule]).matched_rules == ()


def test_rule_expressions_reject_unknown_names() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'segment'"):
        Expression.of('segment == "vip"')


def test_default_rule_ids_are_unique() -> None:
    ids = [rule.id for rule in DEFAULT_RULES]
    assert len(ids) == len(set(ids))


# --- rules as documents -------------------------------------------------------------------

SAMPLE_TEXTS = [
    ("phone", "我要投诉！洗衣机漏水", None),
    ("email", "Refund for order 88231 please", None),
    ("social", "your app is down, cannot pay at checkout", None),
    ("chat", "site is down again", "vip"),
    ("email", "Out of office: auto-reply", None),
    ("chat", "谢谢，服务很给力", None),
    ("email", "发票开错了，紧急！", None),
    ("chat", "What are your opening hours?", None),
]


def test_the_default_rules_survive_the_trip_through_documents() -> None:
    from router.domain.classification import rule_document, rules_from_documents

    documents = [rule_document(r) for r in DEFAULT_RULES]
    again = rules_from_documents(documents)
    assert [rule_document(r) for r in again] == documents
    for channel, text, segment in SAMPLE_TEXTS:
        facts = TicketFacts(channel=channel, text=text, segment=segment)  # type: ignore[arg-type]
        assert classify(facts, again) == classify(facts, DEFAULT_RULES), text


def test_a_rule_document_needs_every_keyword_group_and_its_condition() -> None:
    from router.domain.classification import rules_from_documents

    rules = rules_from_documents(
        [
            {
                "id": "vip-warranty",
                "keywords": [["保修", "warranty"], ["洗衣机", "washer"]],
                "condition": 'customer.segment == "vip"',
                "category": "warranty",
                "priority": "high",
            }
        ]
    )
    hit = classify(TicketFacts(channel="phone", text="洗衣机还在保修期吗", segment="vip"), rules)
    assert (hit.category, hit.priority, hit.category_rule) == ("warranty", "high", "vip-warranty")
    for text, segment in [("洗衣机还在保修期吗", None), ("还在保修期吗", "vip")]:
        miss = classify(TicketFacts(channel="phone", text=text, segment=segment), rules)
        assert miss.category == "inquiry"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"id": "a", "keywords": [[" "]], "category": "x"}, "keywords"),
        ({"id": "a", "category": "x"}, "keywords"),
        ({"id": "a", "condition": "ticket.channel ==", "category": "x"}, "condition"),
        ({"id": "a", "condition": "tikcet.channel == 'phone'", "category": "x"}, "condition"),
        ({"id": "a", "keywords": [["退款"]]}, "category"),
        ({"id": "a", "keywords": [["退款"]], "priority": "critical"}, "priority"),
    ],
)
def test_an_invalid_rule_document_names_its_field(document: dict, field: str) -> None:
    from router.domain.classification import InvalidRule, rules_from_documents

    good = {"id": "ok", "keywords": [["hello"]], "category": "inquiry"}
    with pytest.raises(InvalidRule) as caught:
        rules_from_documents([good, document])
    assert (caught.value.index, caught.value.field) == (1, field)


def test_rule_ids_are_unique() -> None:
    from router.domain.classification import InvalidRule, rules_from_documents

    rule = {"id": "same", "keywords": [["a"]], "category": "x"}
    with pytest.raises(InvalidRule, match="used twice"):
        rules_from_documents([rule, rule])


class _CountingModel:
    """Says "billing" for every text; counts how it was asked."""

    version = "v7"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.alone: list[str] = []

    def _verdicts(self, text: str) -> ModelVerdicts:
        return ModelVerdicts("v7", Verdict("billing", 0.9, (text[:3],)), Verdict("low", 0.9))

    def predict(self, text: str) -> ModelVerdicts:
        self.alone.append(text)
        return self._verdicts(text)

    def predict_many(self, texts: list[str]) -> list[ModelVerdicts]:
        self.batches.append(list(texts))
        return [self._verdicts(t) for t in texts]


def test_a_batch_is_predicted_at_once_and_classifies_as_one_by_one() -> None:
    """The consumer's batch asks the model once for all its texts; a text outside the batch
    is still predicted, alone; the classification is the same."""
    model = _CountingModel()
    texts = ["发票开错了", "refund please", "发票开错了"]
    batch = predicted(model, texts)
    assert model.batches == [texts]
    for text in [*texts, "another one"]:
        facts = TicketFacts(channel="chat", text=text)
        assert classify(facts, DEFAULT_RULES, batch) == classify(facts, DEFAULT_RULES, model)
    assert model.alone == [*texts, "another one", "another one"]  # the direct calls, and the miss
    assert batch.version == "v7"
