"""The Kubernetes manifests agree with the code: every variable they set is a setting of that
service, every secret and config key they read exists, the example secret passes the settings'
own validation, the probes hit real routes and the ports line up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback.settings import FeedbackSettings
from intake.settings import IntakeSettings
from router.settings import RouterSettings
from sla.settings import SLASettings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SETTINGS = {
    "intake": IntakeSettings,
    "router": RouterSettings,
    "sla": SLASettings,
    "feedback": FeedbackSettings,
}
IMAGE_VARIABLES = {"SERVICE", "WORKERS", "PORT"}  # read by the image's command (Dockerfile)


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _one(name: str, kind: str) -> dict[str, Any]:
    [doc] = [d for d in _docs(name) if d["kind"] == kind]
    return doc


def _container(service: str) -> dict[str, Any]:
    [container] = _one(f"{service}.yaml", "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_kustomization_lists_files_that_exist() -> None:
    for resource in _one("kustomization.yaml", "Kustomization")["resources"]:
        assert (K8S / resource).is_file(), resource


@pytest.mark.parametrize("service", list(SETTINGS))
def test_every_variable_is_a_setting_and_every_reference_resolves(service: str) -> None:
    prefix = f"{service.upper()}_"
    fields = set(SETTINGS[service].model_fields)
    config = _one("config.yaml", "ConfigMap")["data"]
    secret = _one("secret.example.yaml", "Secret")["stringData"]
    env = _container(service)["env"]
    for var in env:
        name = var["name"]
        if name in IMAGE_VARIABLES:
            continue
        assert name.startswith(prefix), name
        assert name.removeprefix(prefix).lower() in fields, f"{name} is not a {service} setting"
        source = var.get("valueFrom", {})
        if "configMapKeyRef" in source:
            assert source["configMapKeyRef"]["key"] in config, name
        if "secretKeyRef" in source:
            assert source["secretKeyRef"]["key"] in secret, name
    names = {v["name"] for v in env}
    assert f"{prefix}DATABASE_URL" in names
    assert f"{prefix}KAFKA_BOOTSTRAP" in names


@pytest.mark.parametrize("service", list(SETTINGS))
def test_the_example_values_pass_the_services_validation(service: str) -> None:
    config = _one("config.yaml", "ConfigMap")["data"]
    secret = _one("secret.example.yaml", "Secret")["stringData"]
    values: dict[str, Any] = {}
    for var in _container(service)["env"]:
        if var["name"] in IMAGE_VARIABLES:
            continue
        field = var["name"].removeprefix(f"{service.upper()}_").lower()
        source = var.get("valueFrom", {})
        if "configMapKeyRef" in source:
            values[field] = config[source["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in source:
            values[field] = secret[source["secretKeyRef"]["key"]]
        else:
            values[field] = var["value"]
    settings = SETTINGS[service](**values)
    assert settings.database_url.get_secret_value().endswith(f"/{service}")


@pytest.mark.parametrize("service", list(SETTINGS))
def test_probes_hit_real_routes_and_ports_line_up(service: str) -> None:
    module = __import__(f"{service}.app", fromlist=["create_app"])
    app = module.create_app(SETTINGS[service]())
    paths = set(app.openapi()["paths"])
    container = _container(service)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"/healthz", "/readyz"} <= paths
    [port] = container["ports"]
    assert port["containerPort"] == 8000  # the image's PORT
    [service_port] = _one(f"{service}.yaml", "Service")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    deployment = _one(f"{service}.yaml", "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert _one(f"{service}.yaml", "Service")["spec"]["selector"] == selector
    assert _one(f"{service}.yaml", "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == (
        selector
    )
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    shutdown = next(v for v in container["env"] if v["name"].endswith("_SHUTDOWN_GRACE_S"))
    assert float(shutdown["value"]) < grace  # the service finishes before the kubelet kills it
