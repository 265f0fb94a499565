"""Classification of a new ticket (category, priority, language, queue hint): a trained text
model (`TextModel`, `router.classifier`) beside an ordered list of configurable rules, and the
urgency signals (`router.domain.urgency`). Every decision names what made it and why: the rule
and why it matched, or the model's version, probability and top features.

Who decides: a rule decides over the model (a supervisor's rule is an override), unless it is
marked `fallback` and tests only keywords (the shipped keyword rules are): the model decides
over those when it is sure (probability >= `MODEL_MIN_PROBABILITY`), and they decide when it
is not. A rule with a condition (what a model cannot know: segment, channel, metadata) always
decides. Without a
model, the rules alone decide as they always did. Priority is the most urgent of the decided
one, the overriding rules' and the urgency signals' floors."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ccshared.events.payloads import Channel, Priority
from router.domain.expressions import (
    CompiledExpression,
    ExpressionError,
    KeywordMatcher,
    compile_expression,
    seen_text,
)
from router.domain.urgency import Signal, most_urgent, signals

DEFAULT_CATEGORY: Final = "inquiry"
DEFAULT_PRIORITY: Final[Priority] = "normal"
PRIORITY_RANK: Final[Mapping[Priority, int]] = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
"""Lower is more urgent; also the order in which agents take waiting tickets."""

MODEL_MIN_PROBABILITY: Final = 0.3
"""Below this, a model's label gives way to a matching keyword rule's."""
ATTRIBUTE_NAMES: Final = ("ticket", "customer", "metadata", "text")
"""The top-level names a rule or routing condition may use (see `TicketFacts.attributes`)."""


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What is known about a ticket before it is classified."""

    channel: Channel
    text: str = ""
    subject: str | None = None
    language: str | None = None
    segment: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def full_text(self) -> str:
        return f"{self.subject}\n{self.text}" if self.subject else self.text

    def attributes(self, **ticket_fields: Any) -> dict[str, Any]:
        """The mapping conditions are evaluated on; `ticket_fields` adds to `ticket.*` (the
        routing policy adds category, priority, ... once they are known)."""
        return {
            "ticket": {"channel": self.channel, "language": self.language, **ticket_fields},
            "customer": {"segment": self.segment},
            "metadata": self.metadata,
            "text": self.full_text,
        }


class Condition(Protocol):
    """A rule's test: returns why it holds for these facts, or None when it does not."""

    def explain(self, facts: TicketFacts, attrs: Mapping[str, Any]) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Keywords:
    """Holds when the subject or text contains one of the keywords (see `KeywordMatcher`)."""

    matcher: KeywordMatcher

    @classmethod
    def of(cls, *keywords: str) -> Keywords:
        return cls(KeywordMatcher.of(keywords))

    def explain(self, facts: TicketFacts, attrs: Mapping[str, Any]) -> str | None:
        found = self.matcher.first_match(facts.full_text)
        return None if found is None else f"text contains {found!r}"


@dataclass(frozen=True, slots=True)
class Expression:
    """Holds when the condition-language expression is true."""

    expression: CompiledExpression

    @classmethod
    def of(cls, source: str) -> Expression:
        return cls(compile_expression(source, names=ATTRIBUTE_NAMES))

    def explain(self, facts: TicketFacts, attrs: Mapping[str, Any]) -> str | None:
        return f"{self.expression.source} holds" if self.expression.evaluate(attrs) else None


@dataclass(frozen=True, slots=True)
class AllOf:
    """Holds when every part holds; the reason joins theirs."""

    parts: tuple[Condition, ...]

    def explain(self, facts: TicketFacts, attrs: Mapping[str, Any]) -> str | None:
        reasons: list[str] = []
        for part in self.parts:
            reason = part.explain(facts, attrs)
            if reason is None:
                return None
            reasons.append(reason)
        return " and ".join(reasons)


@dataclass(frozen=True, slots=True)
class ClassificationRule:
    """When `condition` holds: proposes a category, priority and queue hint. `stop` ends the
    evaluation after this rule (later rules are not even tested)."""

    id: str
    description: str
    condition: Condition
    category: str | None = None
    priority: Priority | None = None
    queue_hint: str | None = None
    stop: bool = False
    fallback: bool = False

    @property
    def overrides_model(self) -> bool:
        """Not marked `fallback`, or it tests what a model cannot know (a condition)."""
        return not self.fallback or _has_expression(self.condition)


def _has_expression(condition: Condition) -> bool:
    parts = condition.parts if isinstance(condition, AllOf) else (condition,)
    return any(isinstance(p, Expression) for p in parts)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule_id: str
    reason: str
    category: str | None
    priority: Priority | None
    queue_hint: str | None
    overrides_model: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """A model's label for one question, its probability and the features that weighed most."""

    label: str
    probability: float
    features: tuple[str, ...] = ()

    def explain(self, version: str) -> str:
        top = ", ".join(repr(f) for f in self.features)
        return f"model {version}: {self.label} (p={self.probability:.2f}; {top})"


@dataclass(frozen=True, slots=True)
class ModelVerdicts:
    version: str
    category: Verdict
    priority: Verdict


class TextModel(Protocol):
    """A trained classifier of category and priority (`router.classifier.model.TrainedModel`)."""

    @property
    def version(self) -> str: ...

    def predict(self, text: str) -> ModelVerdicts: ...


@dataclass(frozen=True, slots=True)
class Predicted:
    """A model with its verdicts on a batch's texts computed beforehand (`predicted`): a text
    among them costs a look-up, any other is predicted as usual."""

    model: TextModel
    verdicts: Mapping[str, ModelVerdicts]

    @property
    def version(self) -> str:
        return self.model.version

    def predict(self, text: str) -> ModelVerdicts:
        found = self.verdicts.get(text)
        return found if found is not None else self.model.predict(text)


def predicted(model: TextModel, texts: Iterable[str]) -> Predicted:
    """The model's verdicts on `texts` at once, with its `predict_many` if it has one (the
    trained model's: numpy's cost per call paid once a batch), else one by one. A text that
    comes twice is predicted twice (no saving a real load would rarely see, where a benchmark
    sending a few texts over and over would flatter itself)."""
    batch = list(texts)
    many: Callable[[list[str]], list[ModelVerdicts]] | None = getattr(model, "predict_many", None)
    verdicts = many(batch) if many is not None else [model.predict(t) for t in batch]
    return Predicted(model, dict(zip(batch, verdicts, strict=True)))


@dataclass(frozen=True, slots=True)
class Classification:
    """The outcome. `category_rule` / `priority_rule` name the rule that decided each (None
    when the default applied); `matched_rules` lists every rule that matched, in order."""

    category: str
    priority: Priority
    language: str
    queue_hint: str | None
    matched_rules: tuple[RuleMatch, ...]
    category_rule: str | None
    priority_rule: str | None
    # What decided each: "rule:<id>", "model:<version>", "signal:<kind>" or "default".
    category_source: str = "default"
    priority_source: str = "default"
    model: ModelVerdicts | None = None
    signals: tuple[Signal, ...] = ()
    priority_reasons: tuple[str, ...] = ()


def classify(
    facts: TicketFacts, rules: Sequence[ClassificationRule], model: TextModel | None = None
) -> Classification:
    """The rules, the model if given, and the urgency signals (see the module's text)."""
    by_rules = classify_by_rules(facts, rules)
    found = signals(facts.full_text)
    verdicts = model.predict(facts.full_text) if model is not None else None
    if verdicts is None:
        return _raised(by_rules, found)
    matches = by_rules.matched_rules
    category_match = next((m for m in matches if m.category and m.overrides_model), None)
    fallback = next((m for m in matches if m.category and not m.overrides_model), None)
    sure = verdicts.category.probability >= MODEL_MIN_PROBABILITY
    if category_match is None and (sure or fallback is None):
        category, category_rule = verdicts.category.label, None
        category_source = f"model:{verdicts.version}"
    else:
        chosen = category_match or fallback
        assert chosen is not None
        assert chosen.category is not None
        category, category_rule, category_source = (
            chosen.category,
            chosen.rule_id,
            f"rule:{chosen.rule_id}",
        )
    keyword_priority = _most_urgent_match([m for m in matches if not m.overrides_model])
    if verdicts.priority.probability >= MODEL_MIN_PROBABILITY or keyword_priority is None:
        priority: Priority = _as_priority(verdicts.priority.label)
        priority_rule: str | None = None
        source = f"model:{verdicts.version}"
        reasons = [verdicts.priority.explain(verdicts.version)]
    else:
        priority, priority_rule = _priority(keyword_priority), keyword_priority.rule_id
        source, reasons = f"rule:{priority_rule}", [f"rule {priority_rule}"]
    overriding = _most_urgent_match([m for m in matches if m.overrides_model])
    if overriding is not None and PRIORITY_RANK[_priority(overriding)] < PRIORITY_RANK[priority]:
        priority, priority_rule = _priority(overriding), overriding.rule_id
        source = f"rule:{priority_rule}"
        reasons.append(f"rule {priority_rule} raises it to {priority}")
    result = dataclasses.replace(
        by_rules,
        category=category,
        category_rule=category_rule,
        priority=priority,
        priority_rule=priority_rule,
        category_source=category_source,
        priority_source=source,
        model=verdicts,
        priority_reasons=tuple(reasons),
    )
    return _raised(result, found)


def _as_priority(label: str) -> Priority:
    for p in PRIORITY_RANK:
        if p == label:
            return p
    return DEFAULT_PRIORITY


def _most_urgent_match(matches: Sequence[RuleMatch]) -> RuleMatch | None:
    with_priority = [m for m in matches if m.priority is not None]
    return min(with_priority, key=lambda m: PRIORITY_RANK[_priority(m)], default=None)


def _raised(result: Classification, found: tuple[Signal, ...]) -> Classification:
    """The priority raised to each signal's floor, every signal a reason."""
    if not found:
        return result
    priority = most_urgent([result.priority, *(s.floor for s in found)])
    source = result.priority_source
    if priority != result.priority:
        source = f"signal:{next(s.kind for s in found if s.floor == priority)}"
    return dataclasses.replace(
        result,
        priority=priority,
        priority_source=source,
        signals=found,
        priority_reasons=(*result.priority_reasons, *(s.reason for s in found)),
    )


def classify_by_rules(facts: TicketFacts, rules: Sequence[ClassificationRule]) -> Classification:
    """Apply `rules` in order. Category and queue hint come from the first matching rule that
    sets them; priority is the most urgent one any matching rule sets (so a VIP rule or an
    "urgent" keyword raises it whatever the category rule says, and order cannot lower it)."""
    attrs = facts.attributes()
    matches: list[RuleMatch] = []
    category: RuleMatch | None = None
    priority: RuleMatch | None = None
    queue_hint: RuleMatch | None = None
    for rule in rules:
        reason = rule.condition.explain(facts, attrs)
        if reason is None:
            continue
        match = RuleMatch(
            rule.id, reason, rule.category, rule.priority, rule.queue_hint, rule.overrides_model
        )
        matches.append(match)
        if category is None and match.category is not None:
            category = match
        if queue_hint is None and match.queue_hint is not None:
            queue_hint = match
        if match.priority is not None and (
            priority is None or PRIORITY_RANK[match.priority] < PRIORITY_RANK[_priority(priority)]
        ):
            priority = match
        if rule.stop:
            break
    return Classification(
        category=category.category if category and category.category else DEFAULT_CATEGORY,
        priority=_priority(priority) if priority else DEFAULT_PRIORITY,
        language=facts.language or detect_language(facts.full_text),
        queue_hint=queue_hint.queue_hint if queue_hint else None,
        matched_rules=tuple(matches),
        category_rule=category.rule_id if category else None,
        priority_rule=priority.rule_id if priority else None,
        category_source=f"rule:{category.rule_id}" if category else "default",
        priority_source=f"rule:{priority.rule_id}" if priority else "default",
        priority_reasons=(f"rule {priority.rule_id}",) if priority else (),
    )


def _priority(match: RuleMatch) -> Priority:
    assert match.priority is not None
    return match.priority


# Python's engine on purpose: a single character class and a single repeat cannot backtrack
# (linear whatever the text), and findall is faster here than RE2's Python binding.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def detect_language(text: str) -> str:
    """ "zh" when Chinese characters outnumber Latin words, else "en". Crude on purpose: it is
    only the fallback when the contact names no language, and these are the two supported.
    Counting words against characters keeps "Refund for 王伟" English and "我要refund" Chinese.
    Reads what conditions read: the first `MAX_TEXT_CHARS` characters."""
    text = seen_text(text)
    han = len(_HAN.findall(text))
    return "zh" if han > 0 and han > len(_LATIN_WORD.findall(text)) else "en"


# --- the default rules --------------------------------------------------------------------

_URGENT = Keywords.of("urgent", "asap", "emergency", "紧急", "加急", "十万火急", "马上处理")
_OUTAGE = Keywords.of(
    "down", "outage", "offline", "not working", "unavailable", "crash", "crashed", "crashes",
    "宕机", "故障", "瘫痪", "崩溃", "打不开", "用不了", "无法使用", "离线",
)  # fmt: skip
_PAYMENT = Keywords.of(
    "pay", "payment", "payments", "checkout", "card", "terminal", "terminals",
    "支付", "付款", "收银", "结账", "刷卡",
)  # fmt: skip
_COMPLAINT = Keywords.of(
    "complaint", "complain", "unacceptable", "terrible service", "worst",
    "投诉", "差评", "举报", "太差", "不满意", "欺骗", "维权", "12315",
)  # fmt: skip
_REFUND = Keywords.of(
    "refund", "refunds", "chargeback", "charged twice", "overcharged",
    "退款", "退钱", "扣费", "多扣", "乱收费",
)  # fmt: skip
_INVOICE = Keywords.of(
    "invoice", "invoices", "bill", "billing", "receipt", "vat",
    "发票", "账单", "收据", "开票", "报销",
)  # fmt: skip
_TECHNICAL = Keywords.of(
    "error", "bug", "login", "log in", "password", "cannot sign in", "app",
    "登录", "登陆", "密码", "报错", "闪退", "验证码", "卡顿",
)  # fmt: skip
_PRAISE = Keywords.of(
    "thank you", "thanks", "great service", "awesome", "well done", "kudos",
    "点赞", "给力", "感谢", "谢谢", "好评", "表扬", "满意",
)  # fmt: skip
_AUTO_REPLY = Keywords.of("out of office", "auto-reply", "automatic reply", "自动回复")
_KEY_ACCOUNT = Expression.of('customer.segment in ["vip", "key_account"]')

_Rule = ClassificationRule
DEFAULT_RULES: Final[tuple[ClassificationRule, ...]] = (
    _Rule(
        "auto-reply",
        "Out-of-office and other automatic replies: nobody is waiting for an answer",
        _AUTO_REPLY,
        category="auto_reply",
        priority="low",
        stop=True,
    ),
    _Rule(
        "outage-blocks-payment",
        "An outage that stops customers paying costs money by the minute",
        AllOf((_OUTAGE, _PAYMENT)),  # two groups at once: precise, it decides (no cost)
        category="technical",
        priority="urgent",
    ),
    _Rule(
        "key-account-outage",
        "Any outage reported by a VIP or key account",
        AllOf((_OUTAGE, _KEY_ACCOUNT)),  # keywords first, as the document form has it
        category="technical",
        priority="urgent",
    ),
    _Rule(
        "says-urgent", "The customer says it is urgent", _URGENT, priority="urgent", fallback=True
    ),
    # A customer who says complaint / 投诉 is complaining, whatever else they describe: an
    # override (it cost 0.3 points of test-split accuracy, and keeps the explicit word decisive).
    _Rule("complaint", "Complaints", _COMPLAINT, category="complaint", priority="high"),
    _Rule(
        "key-account",
        "VIP and key accounts are at least high priority and go to VIP care",
        _KEY_ACCOUNT,
        priority="high",
        queue_hint="vip",
    ),
    *(
        dataclasses.replace(rule, fallback=True)  # the trained model decides over these
        for rule in (
            _Rule("refund", "Refunds and wrong charges", _REFUND, category="billing"),
            _Rule("invoice", "Invoices, bills and receipts", _INVOICE, category="billing"),
            _Rule("outage", "Something is down or broken", _OUTAGE, "technical", "high"),
            _Rule("technical", "Errors, log-in and app problems", _TECHNICAL, "technical"),
            _Rule("praise", "Thanks and praise", _PRAISE, category="praise", priority="low"),
        )
    ),
)
"""Order matters for the category (first match wins), not for the priority (most urgent wins):
complaint before praise, so "不满意" is not praise; billing before technical, so a refund
mentioning the app is billing."""


# --- rules as documents (the API's and the database's form) -------------------------------


class InvalidRule(ValueError):
    """A rule document that cannot be compiled; names the rule's index and the field."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(f"rule {index}: {field}: {message}")
        self.index = index
        self.field = field
        self.message = message


def rule_document(rule: ClassificationRule) -> dict[str, Any]:
    """A rule as JSON: `keywords` is a list of groups (each group matches on any of its
    keywords; every group must match), `condition` an expression; both must hold."""
    parts = rule.condition.parts if isinstance(rule.condition, AllOf) else (rule.condition,)
    groups = [list(p.matcher.keywords) for p in parts if isinstance(p, Keywords)]
    expressions = [p.expression.source for p in parts if isinstance(p, Expression)]
    return {
        "id": rule.id,
        "description": rule.description,
        "keywords": groups,
        "condition": " and ".join(f"({e})" for e in expressions)
        if len(expressions) > 1
        else (expressions[0] if expressions else None),
        "category": rule.category,
        "priority": rule.priority,
        "queue_hint": rule.queue_hint,
        "stop": rule.stop,
        "fallback": rule.fallback,
    }


def rules_from_documents(documents: Sequence[Mapping[str, Any]]) -> tuple[ClassificationRule, ...]:
    """Compile rule documents (as `rule_document` writes them); raises InvalidRule."""
    rules = []
    for index, doc in enumerate(documents):
        parts: list[Condition] = []
        for group in doc.get("keywords") or []:
            words = [w for w in group if isinstance(w, str) and w.strip()]
            if not words:
                raise InvalidRule(index, "keywords", "a keyword group may not be empty")
            try:
                parts.append(Keywords(KeywordMatcher.of(words)))
            except ExpressionError as exc:
                raise InvalidRule(index, "keywords", exc.message) from None
        if doc.get("condition"):
            try:
                parts.append(Expression.of(doc["condition"]))
            except ValueError as exc:
                raise InvalidRule(index, "condition", str(exc)) from None
        if not parts:
            raise InvalidRule(index, "keywords", "a rule needs keywords or a condition")
        if not (doc.get("category") or doc.get("priority") or doc.get("queue_hint")):
            raise InvalidRule(index, "category", "a rule must set a category, priority or queue")
        if doc.get("priority") is not None and doc["priority"] not in PRIORITY_RANK:
            raise InvalidRule(index, "priority", f"one of {', '.join(PRIORITY_RANK)}")
        rules.append(
            ClassificationRule(
                doc["id"],
                doc.get("description") or "",
                parts[0] if len(parts) == 1 else AllOf(tuple(parts)),
                category=doc.get("category"),
                priority=doc.get("priority"),
                queue_hint=doc.get("queue_hint"),
                stop=bool(doc.get("stop")),
                fallback=bool(doc.get("fallback")),
            )
        )
    ids = [r.id for r in rules]
    for index, rule_id in enumerate(ids):
        if ids.index(rule_id) != index:
            raise InvalidRule(index, "id", f"{rule_id!r} is used twice")
    return tuple(rules)
