"""The Kubernetes manifests agree with the code: every variable they set is a setting of that
service, every secret and config key they read exists, the example values pass the settings' own
validation (but for the example Secret's placeholders, which are refused), the probes hit real
routes and the ports line up, and each service's migrate Job runs a command that exists on the
Deployment's image and database."""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from ccshared.migrate import migration_settings
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
# Read by the image's command (Dockerfile), or by uvicorn itself (FORWARDED_ALLOW_IPS).
IMAGE_VARIABLES = {"SERVICE", "WORKERS", "PORT", "FORWARDED_ALLOW_IPS"}


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _one(name: str, kind: str) -> dict[str, Any]:
    [doc] = [d for d in _docs(name) if d["kind"] == kind]
    return doc


def _container(service: str, kind: str = "Deployment") -> dict[str, Any]:
    [container] = _one(f"{service}.yaml", kind)["spec"]["template"]["spec"]["containers"]
    return container


KINDS = ["Deployment", "Job"]  # the service, and its migrate Job


def test_kustomization_lists_files_that_exist() -> None:
    for resource in _one("kustomization.yaml", "Kustomization")["resources"]:
        assert (K8S / resource).is_file(), resource


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("service", list(SETTINGS))
def test_every_variable_is_a_setting_and_every_reference_resolves(service: str, kind: str) -> None:
    prefix = f"{service.upper()}_"
    fields = set(SETTINGS[service].model_fields)
    config = _one("config.yaml", "ConfigMap")["data"]
    secret = _one("secret.example.yaml", "Secret")["stringData"]
    env = _container(service, kind)["env"]
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
    if kind == "Deployment":
        assert f"{prefix}KAFKA_BOOTSTRAP" in names


def _real_secret() -> dict[str, str]:
    """The example Secret with values of the right shape in place of its placeholders (which
    the services refuse: see the test below)."""
    public_key = Ed25519PrivateKey.generate().public_key()
    pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    stand_ins = {"auth-public-key": pem, "survey-token-secret": secrets.token_urlsafe(48)}
    example: dict[str, str] = _one("secret.example.yaml", "Secret")["stringData"]
    password = secrets.token_urlsafe(24)
    urls = {k: v.replace(":change-me@", f":{password}@") for k, v in example.items() if "://" in v}
    return {**example, **urls, **{k: v for k, v in stand_ins.items() if k in example}}


def _settings_of(service: str, kind: str, secret: dict[str, str] | None = None) -> Any:
    """The service's settings as the container's environment makes them."""
    config = _one("config.yaml", "ConfigMap")["data"]
    secret = secret if secret is not None else _real_secret()
    values: dict[str, Any] = {}
    for var in _container(service, kind)["env"]:
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
    if kind == "Job":  # python -m <service>.migrate reads the shared settings only
        return migration_settings(SETTINGS[service])(**values)
    return SETTINGS[service](**values)


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a deployment: not a development machine."""
    monkeypatch.delenv("CC_DEVELOPMENT", raising=False)


@pytest.mark.usefixtures("deployed")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("service", list(SETTINGS))
def test_the_example_values_pass_the_services_validation(service: str, kind: str) -> None:
    settings = _settings_of(service, kind)
    assert settings.database_url.get_secret_value().endswith(f"/{service}")


@pytest.mark.usefixtures("deployed")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("service", list(SETTINGS))
def test_the_example_secrets_placeholders_are_refused(service: str, kind: str) -> None:
    """Every value of the example Secret, the database URLs' change-me passwords too."""
    example = _one("secret.example.yaml", "Secret")["stringData"]
    with pytest.raises(ValidationError) as refused:
        _settings_of(service, kind, example)
    fields = {str(e["loc"][0]) for e in refused.value.errors()}
    assert fields <= {"auth_public_key", "token_secret", "database_url"}
    assert "database_url" in fields
    if service != "intake" and kind == "Deployment":
        assert "auth_public_key" in fields


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


@pytest.mark.parametrize("service", list(SETTINGS))
def test_a_migrate_job_migrates_the_services_database_and_the_service_waits_for_it(
    service: str,
) -> None:
    job = _one(f"{service}.yaml", "Job")
    container = _container(service, "Job")
    deployment = _container(service)
    assert container["command"] == ["python", "-m", f"{service}.migrate"]
    assert importlib.util.find_spec(f"{service}.migrate") is not None
    assert container["image"] == deployment["image"]

    def database(c: dict[str, Any]) -> Any:
        [var] = [v for v in c["env"] if v["name"] == f"{service.upper()}_DATABASE_URL"]
        return var["valueFrom"]

    assert database(container) == database(deployment)
    assert _settings_of(service, "Job").migrate_on_start  # the Job itself migrates ...
    assert not _settings_of(service, "Deployment").migrate_on_start  # ... the service does not
    pod = job["spec"]["template"]
    assert pod["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"]["backoffLimit"] >= 1  # a lock timeout is tried again later
    # A statement may run its full timeout, retries and all, within the Job's deadline.
    settings = _settings_of(service, "Job")
    assert job["spec"]["activeDeadlineSeconds"] > settings.migration_statement_timeout_s
    # The Job's pod is never taken for one of the service's (Service, PDB, HPA selectors).
    selector = _one(f"{service}.yaml", "Deployment")["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()


def test_intake_trusts_forwarded_for_only_from_its_proxies() -> None:
    # Failed key attempts are throttled per client address: without this, behind an ingress
    # every client is the ingress (REVIEW15 finding 2); "*" would let clients pick theirs.
    env = {v["name"]: v.get("value") for v in _container("intake")["env"]}
    assert env.get("FORWARDED_ALLOW_IPS") not in (None, "", "*")
