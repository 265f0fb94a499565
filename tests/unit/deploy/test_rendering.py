"""Every overlay renders with kustomize, and every object it renders is valid: Kubernetes'
own objects by the Kubernetes JSON schemas (kubernetes-validate, strict: an unknown field is an
error), the custom resources by their operators' CRD schemas (Strimzi, CloudNativePG, KEDA,
Prometheus Operator). No cluster needed."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.unit.deploy.manifests import (
    OVERLAYS,
    ROOT,
    Object,
    named,
    render,
    validate_custom_resources,
)

CUSTOM_GROUPS = {"kafka.strimzi.io", "postgresql.cnpg.io", "keda.sh", "monitoring.coreos.com"}
# The oldest Kubernetes the manifests are meant for, and the newest the schemas know.
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def _is_custom(o: Object) -> bool:
    return o["apiVersion"].split("/")[0] in CUSTOM_GROUPS


def _kubernetes_errors(objects: list[Object], version: str) -> list[str]:
    errors = []
    for o in objects:
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            errors.append(f"{o['kind']}/{o['metadata']['name']}: {e}")
    return errors


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kubernetes_object_passes_the_kubernetes_schema(overlay: str, version: str) -> None:
    objects = [o for o in render(overlay) if not _is_custom(o)]
    assert {o["kind"] for o in objects} >= {"Deployment", "Job", "Service", "NetworkPolicy"}
    assert _kubernetes_errors(objects, version) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_custom_resource_passes_its_crds_schema(overlay: str) -> None:
    objects = [o for o in render(overlay) if _is_custom(o)]
    assert {o["kind"] for o in objects} >= {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Cluster",
        "Database",
    }
    assert [r for r in validate_custom_resources(objects) if r["error"]] == []


def test_prod_has_the_autoscaling_and_monitoring_resources() -> None:
    kinds = {o["kind"] for o in render("prod")}
    assert {
        "ScaledObject",
        "TriggerAuthentication",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "PodDisruptionBudget",
    } <= kinds


def test_the_kubernetes_validation_refuses_a_wrong_type_and_an_unknown_field() -> None:
    objects = render("prod")
    wrong_type = copy.deepcopy(named(objects, "Deployment", "router"))
    wrong_type["spec"]["replicas"] = "two"
    unknown = copy.deepcopy(named(objects, "Service", "router"))
    unknown["spec"]["selectr"] = {"app": "router"}
    assert len(_kubernetes_errors([wrong_type, unknown], KUBERNETES_VERSIONS[0])) == 2


def test_the_crd_validation_refuses_wrong_types_and_unknown_resources() -> None:
    objects = render("prod")
    topic = copy.deepcopy(named(objects, "KafkaTopic", "router.tickets"))
    topic["spec"]["partitions"] = "twelve"
    scaled = copy.deepcopy(named(objects, "ScaledObject", "router"))
    scaled["spec"]["maxReplicaCount"] = "12"
    user = copy.deepcopy(named(objects, "KafkaUser", "router"))
    user["spec"]["authorization"]["acls"][0]["operations"] = "Write"
    cluster = copy.deepcopy(named(objects, "Cluster", "contactcenter-pg"))
    cluster["spec"]["instances"] = "3"
    monitor = copy.deepcopy(named(objects, "ServiceMonitor", "router"))
    monitor["spec"]["endpoints"] = {"port": "http"}
    stranger = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    results = validate_custom_resources([topic, scaled, user, cluster, monitor, stranger])
    assert all(r["error"] for r in results), results


def test_the_alert_rules_are_deployed_with_prod_once_they_exist() -> None:
    """deploy/monitoring/ (the PrometheusRule and the Grafana dashboard) is wired into
    components/monitoring once it exists: see that kustomization's comment."""
    rules = ROOT / "deploy" / "monitoring" / "prometheus-rule.yaml"
    kinds = {o["kind"] for o in render("prod")}
    assert ("PrometheusRule" in kinds) == rules.is_file(), (
        "add - ../../../monitoring to deploy/k8s/components/monitoring/kustomization.yaml"
    )
