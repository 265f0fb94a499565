"""SLA policies: which tickets a policy applies to, its targets per metric, its business
calendar and its escalation ladder; and the choice of the policy for a ticket."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final, Literal, get_args

from ccshared.events.payloads import Channel, Priority, SlaMetric
from sla.domain.calendar import DEFAULT_CALENDAR_ID

EscalationAction = Literal[
    "raise_priority", "move_to_escalation_queue", "notify_supervisor", "notify_manager"
]
ConditionField = Literal["priority", "channel", "category", "queue", "segment"]

METRICS: Final[tuple[SlaMetric, ...]] = get_args(SlaMetric)
PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)  # most urgent first
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)
ESCALATION_ACTIONS: Final[tuple[EscalationAction, ...]] = get_args(EscalationAction)
NOTIFY_ACTIONS: Final[frozenset[EscalationAction]] = frozenset(
    {"notify_supervisor", "notify_manager"}
)
CONDITION_FIELDS: Final[tuple[ConditionField, ...]] = get_args(ConditionField)
# Segments only their owner's registry grants (feedback's key accounts): a ticket claiming one
# that the registry does not confirm is matched without it.
REGISTRY_SEGMENTS: Final = frozenset({"key_account"})


def ticket_segment(stated: str | None, registered: str | None) -> str | None:
    """The segment a new ticket's policy is matched with: the customer's in the registry when
    it names one; else the one the router stated, unless that is a registry-only segment the
    registry does not confirm (the key account was removed, or the router's copy is behind)."""
    if registered:
        return registered
    return None if stated in REGISTRY_SEGMENTS else stated


class InvalidPolicy(ValueError):
    """A policy definition that cannot be used; `field` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class EscalationLevel:
    """What to do `offset` after the breach (negative: before it).

    `raise_priority` without `raise_priority_to` raises the priority by one step."""

    level: int
    offset: timedelta
    actions: frozenset[EscalationAction]
    raise_priority_to: Priority | None = None

    @property
    def notifies(self) -> bool:
        return not self.actions.isdisjoint(NOTIFY_ACTIONS)


@dataclass(frozen=True, slots=True)
class TicketAttributes:
    """What a policy's conditions look at."""

    priority: Priority
    channel: Channel
    category: str
    queue: str | None = None
    segment: str | None = None

    def value(self, name: ConditionField) -> str | None:
        value: str | None = getattr(self, name)
        return value


@dataclass(frozen=True)
class SlaPolicy:
    """One version of a policy. `conditions` maps a ticket field to its allowed values (a
    missing or empty set allows any); a lower `rank` is tried first."""

    id: str
    version: int
    name: str
    rank: int
    targets: Mapping[SlaMetric, timedelta]
    conditions: Mapping[ConditionField, frozenset[str]] = field(default_factory=dict)
    active: bool = True
    warn_at_share: float = 0.75
    calendar_id: str = DEFAULT_CALENDAR_ID
    escalation: tuple[EscalationLevel, ...] = ()

    def __post_init__(self) -> None:
        if self.version < 1:
            raise InvalidPolicy("version", f"version starts at 1, got {self.version}")
        conditions = {k: frozenset(v) for k, v in self.conditions.items()}
        object.__setattr__(self, "conditions", conditions)
        object.__setattr__(self, "targets", dict(self.targets))
        object.__setattr__(self, "escalation", tuple(self.escalation))
        _validate_targets(self.targets)
        _validate_conditions(conditions)
        if not 0 < self.warn_at_share < 1:
            raise InvalidPolicy(
                "warn_at_share", f"must be between 0 and 1 (exclusive), got {self.warn_at_share}"
            )
        _validate_ladder(self.escalation)

    @property
    def specificity(self) -> int:
        """How many fields the policy constrains; more is more specific."""
        return sum(1 for allowed in self.conditions.values() if allowed)

    def matches(self, ticket: TicketAttributes) -> bool:
        return all(
            not allowed or ticket.value(name) in allowed
            for name, allowed in self.conditions.items()
        )

    def target(self, metric: SlaMetric) -> timedelta | None:
        return self.targets.get(metric)


def _validate_targets(targets: Mapping[SlaMetric, timedelta]) -> None:
    for metric, target in targets.items():
        if metric not in METRICS:
            raise InvalidPolicy(
                f"targets.{metric}", f"unknown metric; use one of {', '.join(METRICS)}"
            )
        if target <= timedelta(0):
            raise InvalidPolicy(f"targets.{metric}", f"target must be positive, got {target}")


def _validate_conditions(conditions: Mapping[ConditionField, frozenset[str]]) -> None:
    known: Mapping[str, tuple[str, ...]] = {"priority": PRIORITIES, "channel": CHANNELS}
    for name, allowed in conditions.items():
        if name not in CONDITION_FIELDS:
            raise InvalidPolicy(
                f"conditions.{name}",
                f"unknown field; use one of {', '.join(CONDITION_FIELDS)}",
            )
        choices = known.get(name)
        unknown = sorted(allowed - set(choices)) if choices else []
        if unknown:
            raise InvalidPolicy(
                f"conditions.{name}",
                f"unknown value(s) {', '.join(unknown)}; use {', '.join(choices or ())}",
            )


def _validate_ladder(ladder: tuple[EscalationLevel, ...]) -> None:
    previous: EscalationLevel | None = None
    for i, level in enumerate(ladder):
        where = f"escalation[{i}]"
        if level.level < 1:
            raise InvalidPolicy(f"{where}.level", f"levels start at 1, got {level.level}")
        if not level.actions:
            raise InvalidPolicy(f"{where}.actions", "a level needs at least one action")
        unknown = sorted(set(level.actions) - set(ESCALATION_ACTIONS))
        if unknown:
            raise InvalidPolicy(
                f"{where}.actions",
                f"unknown action(s) {', '.join(unknown)}; use {', '.join(ESCALATION_ACTIONS)}",
            )
        if level.raise_priority_to is not None:
            if "raise_priority" not in level.actions:
                raise InvalidPolicy(
                    f"{where}.raise_priority_to", "only a raise_priority action takes a target"
                )
            if level.raise_priority_to not in PRIORITIES:
                raise InvalidPolicy(
                    f"{where}.raise_priority_to",
                    f"unknown priority; use {', '.join(PRIORITIES)}",
                )
        if previous is not None:
            if level.level <= previous.level:
                raise InvalidPolicy(
                    f"{where}.level",
                    f"levels must strictly increase: {level.level} follows {previous.level}",
                )
            if level.offset < previous.offset:
                raise InvalidPolicy(
                    f"{where}.offset",
                    f"offsets must not decrease: level {level.level} at {level.offset} "
                    f"comes before level {previous.level} at {previous.offset}",
                )
        previous = level


def latest_versions(policies: Iterable[SlaPolicy]) -> list[SlaPolicy]:
    """The highest version of each policy id; older versions are history."""
    latest: dict[str, SlaPolicy] = {}
    for policy in policies:
        seen = latest.get(policy.id)
        if seen is None or policy.version > seen.version:
            latest[policy.id] = policy
    return list(latest.values())


def match_policy(policies: Iterable[SlaPolicy], ticket: TicketAttributes) -> SlaPolicy | None:
    """The policy for `ticket`: among the latest version of each policy, the active ones whose
    conditions all match, ordered by rank (lower first), then by specificity (more constrained
    fields first), then by id so the choice is deterministic. None if nothing matches."""
    candidates = [p for p in latest_versions(policies) if p.active and p.matches(ticket)]
    if not candidates:
        return None
    return min(candidates, key=lambda p: (p.rank, -p.specificity, p.id))


def raised_priority(current: Priority, level: EscalationLevel) -> Priority:
    """The priority after `level`'s raise_priority action (one step up unless it names one;
    never lowers it)."""
    if level.raise_priority_to is not None:
        target = level.raise_priority_to
    else:
        target = PRIORITIES[max(PRIORITIES.index(current) - 1, 0)]
    return min(current, target, key=PRIORITIES.index)


# --- defaults ---------------------------------------------------------------------------------

DEFAULT_ESCALATION: Final = (
    EscalationLevel(1, timedelta(0), frozenset({"notify_supervisor", "raise_priority"})),
    EscalationLevel(
        2, timedelta(hours=1), frozenset({"move_to_escalation_queue", "notify_manager"})
    ),
)

# (first response, next response, resolution, warn share): first response as common help-desk
# practice has it; next response half of it; resolution in business hours of the calendar.
_DEFAULT_TARGETS: Final[Mapping[Priority, tuple[timedelta, timedelta, timedelta, float]]] = {
    "urgent": (timedelta(hours=1), timedelta(minutes=30), timedelta(hours=4), 0.5),
    "high": (timedelta(hours=1), timedelta(minutes=30), timedelta(hours=8), 0.75),
    "normal": (timedelta(hours=2), timedelta(hours=1), timedelta(hours=24), 0.75),
    "low": (timedelta(hours=8), timedelta(hours=4), timedelta(hours=72), 0.75),
}

DEFAULT_RANK: Final = 1000  # after any policy an administrator adds with a smaller rank

DEFAULT_POLICIES: Final[tuple[SlaPolicy, ...]] = tuple(
    SlaPolicy(
        id=f"default-{priority}",
        version=1,
        name=f"Default {priority}",
        rank=DEFAULT_RANK,
        conditions={"priority": frozenset({priority})},
        targets={"first_response": first, "next_response": next_, "resolution": resolution},
        warn_at_share=warn,
        calendar_id=DEFAULT_CALENDAR_ID,
        escalation=DEFAULT_ESCALATION,
    )
    for priority, (first, next_, resolution, warn) in _DEFAULT_TARGETS.items()
)
