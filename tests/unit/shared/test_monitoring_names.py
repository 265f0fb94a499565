"""The alerts (deploy/monitoring/prometheus-rule.yaml) and the dashboard
(deploy/monitoring/grafana-dashboard.json) name only metrics the code registers, and event
types the catalog has; and every metric the code registers is on the dashboard. A renamed
metric fails here rather than silently emptying a panel or never firing an alert."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import ccshared.metrics
import feedback.metrics
import intake.metrics
import router.metrics
from ccshared.events.catalog import EVENT_TYPES

MONITORING = Path(__file__).resolve().parents[3] / "deploy" / "monitoring"
_METRIC = re.compile(r"\bcc_[a-z0-9_]+")
_EVENT_TYPE = re.compile(r'event_type=~?"([^"]+)"')
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}

# The modules that register their metrics when imported.
SERVICE_METRICS = (ccshared.metrics, feedback.metrics, intake.metrics, router.metrics)


def registered() -> dict[str, str]:
    """Every series name of our families (cc_...), to the family it belongs to."""
    names: dict[str, str] = {}
    for family in REGISTRY.collect():
        if family.name.startswith("cc_"):
            for suffix in _SUFFIXES[family.type]:
                names[family.name + suffix] = family.name
    return names


def rule_expressions() -> Iterator[str]:
    rule = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            yield alert["expr"]


def dashboard_expressions() -> Iterator[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["definition"]


def test_every_metric_in_the_alerts_and_the_dashboard_is_registered_by_the_code() -> None:
    known = registered()
    for source, expressions in (
        ("prometheus-rule.yaml", list(rule_expressions())),
        ("grafana-dashboard.json", list(dashboard_expressions())),
    ):
        named = {m for e in expressions for m in _METRIC.findall(e)}
        assert named, source
        assert named <= known.keys(), f"{source} names unknown metrics: {named - known.keys()}"


def test_every_event_type_they_filter_on_is_in_the_catalog() -> None:
    for expression in [*rule_expressions(), *dashboard_expressions()]:
        for value in _EVENT_TYPE.findall(expression):
            for event_type in value.split("|"):
                assert event_type in EVENT_TYPES, f"{event_type!r} in {expression!r}"


def test_every_registered_metric_is_on_the_dashboard() -> None:
    shown = {registered().get(m) for e in dashboard_expressions() for m in _METRIC.findall(e)}
    families = set(registered().values())
    assert families <= shown, f"not on the dashboard: {sorted(families - shown)}"


def test_the_alerts_the_operations_need_are_there() -> None:
    rule = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    alerts = {a["alert"] for g in rule["spec"]["groups"] for a in g["rules"]}
    assert {
        "OutboxStuck",
        "DeadLettersWaiting",
        "ConsumerLagGrowing",
        "SlaBreachRateHigh",
        "Http5xxRate",
    } <= alerts
