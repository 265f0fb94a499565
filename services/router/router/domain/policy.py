"""The routing policy: ordered steps, each a condition and the queue it sends a ticket to;
the first matching step places a ticket, and a step's timeout overflows it to the next."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ccshared.events.payloads import Priority
from router.domain.classification import ATTRIBUTE_NAMES, Classification, TicketFacts
from router.domain.expressions import CompiledExpression, ExpressionError, compile_expression

QUEUE_IDS: Final = ("frontline", "complaints", "technical", "billing", "vip", "escalations")


class InvalidPolicy(ValueError):
    """The policy cannot be used; `step_id` and `position` point at the fault when known."""

    def __init__(
        self, message: str, step_id: str | None = None, position: int | None = None
    ) -> None:
        super().__init__(message if step_id is None else f"step {step_id!r}: {message}")
        self.message = message
        self.step_id = step_id
        self.position = position


class NoMatchingStep(LookupError):
    """No step's condition holds for the ticket (the policy lacks a catch-all step)."""


class UnknownStep(LookupError):
    """The step a ticket waits in is not in this policy (e.g. it was replaced meanwhile)."""


@dataclass(frozen=True, slots=True)
class PolicyStep:
    """Sends tickets for which `condition` holds to `queue_id`. `priority` overrides the
    ticket's priority while in this queue; `timeout_s` is how long a ticket may wait here
    before overflowing; an `overflow_only` step never places a new ticket."""

    id: str
    condition: CompiledExpression
    queue_id: str
    priority: Priority | None = None
    timeout_s: int | None = None
    overflow_only: bool = False


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    version: int
    steps: tuple[PolicyStep, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise InvalidPolicy("a policy needs at least one step")
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise InvalidPolicy("step id is used twice", step.id)
            seen.add(step.id)
            if step.timeout_s is not None and step.timeout_s <= 0:
                raise InvalidPolicy("timeout_s must be positive", step.id)
        if all(step.overflow_only for step in self.steps):
            raise InvalidPolicy("every step is overflow-only, so no ticket could be placed")


@dataclass(frozen=True, slots=True)
class StepMatch:
    """Where the policy puts a ticket, and why (for the TicketRouted event and the UI)."""

    policy_version: int
    step_id: str
    queue_id: str
    priority_override: Priority | None
    timeout_s: int | None
    reason: str


def compile_step(
    id: str,
    condition: str,
    queue_id: str,
    *,
    priority: Priority | None = None,
    timeout_s: int | None = None,
    overflow_only: bool = False,
) -> PolicyStep:
    """A step from its condition's source; a bad condition raises `InvalidPolicy` naming the
    step and the position in the condition (the API answers 422 with both)."""
    try:
        compiled = compile_expression(condition, names=ATTRIBUTE_NAMES)
    except ExpressionError as exc:
        raise InvalidPolicy(str(exc), id, exc.position) from exc
    return PolicyStep(id, compiled, queue_id, priority, timeout_s, overflow_only)


def routing_attributes(facts: TicketFacts, classification: Classification) -> dict[str, Any]:
    """The attributes policy conditions see: the facts plus the classification."""
    return facts.attributes(
        category=classification.category,
        priority=classification.priority,
        language=classification.language,
        queue_hint=classification.queue_hint,
    )


def first_matching_step(policy: RoutingPolicy, attrs: Mapping[str, Any]) -> StepMatch:
    for step in policy.steps:
        if not step.overflow_only and step.condition.evaluate(attrs):
            return _match(policy, step, f"step {step.id!r} matched: {step.condition.source}")
    raise NoMatchingStep(f"no step of routing policy v{policy.version} matches the ticket")


def next_step_after_timeout(
    policy: RoutingPolicy, current_step_id: str, attrs: Mapping[str, Any]
) -> StepMatch | None:
    """Where a ticket goes after waiting `timeout_s` in the step it was placed by: the next
    matching step after it that leads to another queue. None when the current step has no
    timeout or nothing after it matches (the ticket stays where it is)."""
    found = overflow_target(policy, current_step_id, attrs)
    if found is None:
        return None
    current, step = found
    reason = (
        f"waited {current.timeout_s}s in {current.queue_id!r} (step {current.id!r}); "
        f"step {step.id!r} matched: {step.condition.source}"
    )
    return _match(policy, step, reason)


def early_overflow(
    policy: RoutingPolicy, current_step_id: str, attrs: Mapping[str, Any], why: str
) -> StepMatch | None:
    """Where a ticket predicted to breach its SLA goes before its step's timeout: the same
    overflow target as `next_step_after_timeout`; `why` is the forecast, put first in the
    reason ("predicted to breach first response at 10:42 UTC; queue wait 14 min")."""
    found = overflow_target(policy, current_step_id, attrs)
    if found is None:
        return None
    current, step = found
    reason = (
        f"{why}; overflowed early from {current.queue_id!r} (step {current.id!r}); "
        f"step {step.id!r} matched: {step.condition.source}"
    )
    return _match(policy, step, reason)


def overflow_target(
    policy: RoutingPolicy, current_step_id: str, attrs: Mapping[str, Any]
) -> tuple[PolicyStep, PolicyStep] | None:
    """The step a ticket is in and the one it overflows to: the next matching step after it
    that leads to another queue. None when the current step has no timeout (it does not
    overflow) or nothing after it matches."""
    index = next((i for i, s in enumerate(policy.steps) if s.id == current_step_id), None)
    if index is None:
        raise UnknownStep(
            f"routing policy v{policy.version} has no step {current_step_id!r}; "
            "route the ticket afresh with first_matching_step"
        )
    current = policy.steps[index]
    if current.timeout_s is None:
        return None
    for step in policy.steps[index + 1 :]:
        if step.queue_id != current.queue_id and step.condition.evaluate(attrs):
            return current, step
    return None


def _match(policy: RoutingPolicy, step: PolicyStep, reason: str) -> StepMatch:
    return StepMatch(policy.version, step.id, step.queue_id, step.priority, step.timeout_s, reason)


_SPECIALIST_TIMEOUT_S: Final = 600
_KEY_ACCOUNT: Final = 'customer.segment in ["vip", "key_account"] || ticket.queue_hint == "vip"'

DEFAULT_POLICY: Final = RoutingPolicy(
    1,
    (
        compile_step("vip-care", _KEY_ACCOUNT, "vip", timeout_s=300),
        # Right after VIP care, so a VIP ticket nobody there took goes to escalations rather
        # than to the back of a specialist queue.
        compile_step("vip-overflow", _KEY_ACCOUNT, "escalations", overflow_only=True),
        compile_step(
            "complaints",
            'ticket.category == "complaint"',
            "complaints",
            timeout_s=_SPECIALIST_TIMEOUT_S,
        ),
        compile_step(
            "technical",
            'ticket.category == "technical"',
            "technical",
            timeout_s=_SPECIALIST_TIMEOUT_S,
        ),
        compile_step(
            "billing", 'ticket.category == "billing"', "billing", timeout_s=_SPECIALIST_TIMEOUT_S
        ),
        compile_step(
            "specialist-overflow",
            'ticket.category in ["complaint", "technical", "billing"]',
            "frontline",
            overflow_only=True,
        ),
        compile_step("frontline", "true", "frontline"),
    ),
)
"""VIP care first; then complaints, technical and billing to their specialists; everything
else to frontline. Unanswered after 10 minutes in a specialist queue, a ticket overflows to
frontline; after 5 minutes in VIP care, to escalations."""
