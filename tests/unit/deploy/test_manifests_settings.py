"""The Kubernetes manifests agree with the code: every variable they set is a setting of that
service, every secret and config key they read exists, the example values pass the settings' own
validation (but for the example Secret's placeholders, which are refused), the probes hit real
routes and the ports line up, and each service's migrate Job runs a command that exists on the
Deployment's image and database."""

from __future__ import annotations

import importlib.util
import re
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from pydantic import ValidationError

from ccshared.migrate import migration_settings
from console.settings import ConsoleSettings
from feedback.settings import FeedbackSettings
from intake.settings import IntakeSettings
from router.settings import RouterSettings
from sla.settings import SLASettings
from tests.unit.deploy.manifests import OVERLAYS, container, example_secrets, named, render

SETTINGS = {
    "intake": IntakeSettings,
    "router": RouterSettings,
    "sla": SLASettings,
    "feedback": FeedbackSettings,
    "console": ConsoleSettings,
}
# Read by the image's command (Dockerfile), by uvicorn itself (FORWARDED_ALLOW_IPS), or only put
# into another variable by Kubernetes (DB_PASSWORD, into the DATABASE_URL).
IMAGE_VARIABLES = {"SERVICE", "WORKERS", "PORT", "FORWARDED_ALLOW_IPS", "DB_PASSWORD"}
# Secrets an operator makes, not the example file: Strimzi's, one per KafkaUser.
OPERATOR_SECRETS = {s: {"password": secrets.token_urlsafe(24)} for s in SETTINGS}


def _objects(overlay: str = "prod") -> list[dict[str, Any]]:
    return render(overlay)


def _one(kind: str, name: str, overlay: str = "prod") -> dict[str, Any]:
    return named(_objects(overlay), kind, name)


def _workload(service: str, kind: str) -> str:
    return service if kind == "Deployment" else f"{service}-migrate"


def _container(service: str, kind: str = "Deployment", overlay: str = "prod") -> dict[str, Any]:
    return container(_objects(overlay), kind, _workload(service, kind))


KINDS = ["Deployment", "Job"]  # the service, and its migrate Job


def _secret_value(ref: dict[str, str], secret: dict[str, dict[str, str]]) -> str:
    return {**secret, **OPERATOR_SECRETS}[ref["name"]][ref["key"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("service", list(SETTINGS))
def test_every_variable_is_a_setting_and_every_reference_resolves(
    service: str, kind: str, overlay: str
) -> None:
    prefix = f"{service.upper()}_"
    fields = set(SETTINGS[service].model_fields)
    config = _one("ConfigMap", "contactcenter", overlay)["data"]
    env = _container(service, kind, overlay)["env"]
    for var in env:
        name = var["name"]
        source = var.get("valueFrom", {})
        if "configMapKeyRef" in source:
            assert source["configMapKeyRef"]["key"] in config, name
        if "secretKeyRef" in source:
            assert _secret_value(source["secretKeyRef"], example_secrets()), name
        if name in IMAGE_VARIABLES:
            continue
        assert name.startswith(prefix), name
        assert name.removeprefix(prefix).lower() in fields, f"{name} is not a {service} setting"
    names = {v["name"] for v in env}
    assert f"{prefix}DATABASE_URL" in names
    if kind == "Deployment":
        assert f"{prefix}KAFKA_BOOTSTRAP" in names


def _real_secrets() -> dict[str, dict[str, str]]:
    """The example Secrets with values of the right shape in place of their placeholders
    (which the services refuse: see the test below)."""
    private_key = Ed25519PrivateKey.generate()
    public_key = private_key.public_key()
    pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    private_pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    stand_ins = {
        "auth-public-key": pem,
        "private-key": private_pem.decode(),
        "survey-token-secret": secrets.token_urlsafe(48),
    }
    real = {}
    for name, data in example_secrets().items():
        if name.endswith("-db"):
            data = {**data, "password": secrets.token_urlsafe(24)}
        real[name] = {k: stand_ins.get(k, v) for k, v in data.items()}
    return real


def _settings_of(service: str, kind: str, secret: dict[str, dict[str, str]] | None = None) -> Any:
    """The service's settings as the container's environment makes them ($(NAME) references
    replaced as Kubernetes does)."""
    config = _one("ConfigMap", "contactcenter")["data"]
    secret = secret if secret is not None else _real_secrets()
    resolved: dict[str, str] = {}
    for var in _container(service, kind)["env"]:
        source = var.get("valueFrom", {})
        if "configMapKeyRef" in source:
            value = config[source["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in source:
            value = _secret_value(source["secretKeyRef"], secret)
        else:
            value = re.sub(r"\$\((\w+)\)", lambda m: resolved[m[1]], var["value"])
        resolved[var["name"]] = value
    prefix = f"{service.upper()}_"
    values = {
        name.removeprefix(prefix).lower(): value
        for name, value in resolved.items()
        if name not in IMAGE_VARIABLES
    }
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
    """Every value of the example Secrets, the database roles' change-me passwords too."""
    with pytest.raises(ValidationError) as refused:
        _settings_of(service, kind, example_secrets())
    fields = {str(e["loc"][0]) for e in refused.value.errors()}
    assert fields <= {"auth_public_key", "token_secret", "token_private_key", "database_url"}
    assert "database_url" in fields
    if service == "console" and kind == "Deployment":
        assert "token_private_key" in fields  # the issuer's key: a placeholder is refused
    elif service != "intake" and kind == "Deployment":
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
    [service_port] = _one("Service", service)["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    deployment = _one("Deployment", service)
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert _one("Service", service)["spec"]["selector"] == selector
    assert _one("PodDisruptionBudget", service)["spec"]["selector"]["matchLabels"] == selector
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    shutdown = next(v for v in container["env"] if v["name"].endswith("_SHUTDOWN_GRACE_S"))
    assert float(shutdown["value"]) < grace  # the service finishes before the kubelet kills it


@pytest.mark.parametrize("service", list(SETTINGS))
def test_a_migrate_job_migrates_the_services_database_and_the_service_waits_for_it(
    service: str,
) -> None:
    job = _one("Job", f"{service}-migrate")
    container = _container(service, "Job")
    deployment = _container(service)
    assert container["command"] == ["python", "-m", f"{service}.migrate"]
    assert importlib.util.find_spec(f"{service}.migrate") is not None
    assert container["image"] == deployment["image"]

    def database(c: dict[str, Any]) -> Any:
        env = {v["name"]: v for v in c["env"]}
        return env[f"{service.upper()}_DATABASE_URL"]["value"], env["DB_PASSWORD"]["valueFrom"]

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
    selector = _one("Deployment", service)["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()


def test_intake_trusts_forwarded_for_only_from_its_proxies() -> None:
    # Failed key attempts are throttled per client address: without this, behind an ingress
    # every client is the ingress (REVIEW15 finding 2); "*" would let clients pick theirs.
    env = {v["name"]: v.get("value") for v in _container("intake")["env"]}
    assert env.get("FORWARDED_ALLOW_IPS") not in (None, "", "*")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_training_cronjob_runs_make_trains_entry_point_on_the_routers_database(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _one("CronJob", "router-train", overlay)
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"  # one training at a time
    template = spec["jobTemplate"]["spec"]["template"]
    assert template["spec"]["restartPolicy"] == "Never"
    [train] = template["spec"]["containers"]
    # `make train`'s module, told to store the version in the database the replicas load from.
    assert train["command"] == ["python", "-m", "router.classifier.train", "--database"]
    from router.classifier import train as train_module

    called: list[tuple[str, Any, bool]] = []

    async def recording(url: str, directory: Any, force: bool) -> None:
        called.append((url, directory, force))

    monkeypatch.setattr(train_module, "_train_into", recording)
    monkeypatch.setenv("ROUTER_DATABASE_URL", "postgresql+asyncpg://router@db/router")
    monkeypatch.delenv("ROUTER_CLASSIFIER_DIR", raising=False)
    train_module.main(train["command"][3:])
    assert called == [("postgresql+asyncpg://router@db/router", None, False)]  # never --force
    # The router's own database, as its Deployment reaches it; nothing else.
    env = {v["name"]: v for v in train["env"]}
    router = {v["name"]: v for v in _container("router", overlay=overlay)["env"]}
    assert set(env) == {"DB_PASSWORD", "ROUTER_DATABASE_URL"}
    for name in env:
        assert env[name] == router[name], name
    # The training image, not the services' (which has no scikit-learn), from the same release.
    image = train["image"]
    service_image = _container("router", overlay=overlay)["image"]
    assert image.rsplit(":", 1)[0] == service_image.rsplit(":", 1)[0] + "-trainer"
    assert image.rsplit(":", 1)[1] == service_image.rsplit(":", 1)[1]
    # Training measured at ~20 s of a core and ~300 MB: room under the limits and deadline.
    assert train["resources"]["limits"]["memory"] in ("1Gi", "1024Mi")
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] >= 600
