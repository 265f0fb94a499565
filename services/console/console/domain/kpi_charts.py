"""The KPI dashboard's charts as geometry for server-rendered inline SVG: one bar per group
(day, queue, agent, channel), the target drawn as a line across. Pure: the template draws
what this computes; no script draws anything."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Unit = Literal["share", "points", "seconds"]

WIDTH = 640
HEIGHT = 240
LEFT = 56  # room for the axis labels
RIGHT = 12
TOP = 14
BOTTOM = 56  # room for the group labels

# What the dashboard shows: the feedback API's field, its unit, its target (the issue's:
# CSAT ≥ 90 %, FCR ≥ 85 %), and whether higher is better.
KPI_CHARTS: tuple[tuple[str, Unit, float | None], ...] = (
    ("csat", "share", 0.90),
    ("nps", "points", None),
    ("fcr_answered", "share", 0.85),
    ("fcr_observed", "share", 0.85),
    ("first_response_avg_s", "seconds", None),
    ("resolution_avg_s", "seconds", None),
    ("escalation_rate", "share", None),
    ("complaint_rate", "share", None),
)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    text: str
    x: float
    y: float
    width: float
    height: float
    below_target: bool


@dataclass(frozen=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    field: str
    unit: Unit
    target: float | None
    target_text: str | None
    target_y: float | None
    zero_y: float
    bars: list[Bar]
    ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_x: int = WIDTH - RIGHT


def value_text(value: float | None, unit: Unit) -> str:
    if value is None:
        return "—"
    if unit == "share":
        return f"{value * 100:.1f} %"
    if unit == "points":
        return f"{value:+.1f}"
    minutes = value / 60
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _scale(values: Sequence[float], unit: Unit, target: float | None) -> tuple[float, float]:
    """The axis's (low, high)."""
    if unit == "share":
        return 0.0, 1.0
    if unit == "points":
        return -100.0, 100.0
    high = max([*values, target or 0.0, 60.0])  # at least a minute: readable ticks
    return 0.0, high * 1.1


def chart(
    field: str,
    unit: Unit,
    target: float | None,
    groups: Sequence[Mapping[str, Any]],
    *,
    label_key: str = "key",
) -> Chart:
    values = [float(g[field]) for g in groups if g.get(field) is not None]
    low, high = _scale(values, unit, target)
    plot_h = HEIGHT - TOP - BOTTOM
    plot_w = WIDTH - LEFT - RIGHT

    def y_of(value: float) -> float:
        return round(TOP + plot_h * (high - value) / (high - low), 1)

    zero_y = y_of(max(low, 0.0))
    slot = plot_w / max(len(groups), 1)
    width = max(min(slot * 0.7, 48.0), 2.0)
    bars = []
    for index, group in enumerate(groups):
        raw = group.get(field)
        value = None if raw is None else float(raw)
        x = round(LEFT + slot * index + (slot - width) / 2, 1)
        if value is None:
            top, height = zero_y, 0.0
        else:
            y = y_of(value)
            top, height = min(y, zero_y), round(abs(zero_y - y), 1)
        bars.append(
            Bar(
                label=str(group.get(label_key, "")),
                value=value,
                text=value_text(value, unit),
                x=x,
                y=top,
                width=round(width, 1),
                height=height,
                below_target=target is not None and value is not None and value < target,
            )
        )
    steps = 4
    ticks = [
        Tick(
            y=y_of(low + (high - low) * i / steps),
            text=value_text(low + (high - low) * i / steps, unit),
        )
        for i in range(steps + 1)
    ]
    return Chart(
        field=field,
        unit=unit,
        target=target,
        target_text=value_text(target, unit) if target is not None else None,
        target_y=y_of(target) if target is not None else None,
        zero_y=zero_y,
        bars=bars,
        ticks=ticks,
    )


def charts(groups: Sequence[Mapping[str, Any]]) -> list[Chart]:
    return [chart(field, unit, target, groups) for field, unit, target in KPI_CHARTS]
