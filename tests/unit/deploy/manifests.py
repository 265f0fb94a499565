"""The Kubernetes manifests as kustomize renders them (deploy/k8s/overlays/*), and the tools
that render and validate them: kustomize and the CRD schemas that `make install` puts under
.local/k8s-tools/ (deploy/k8s/tests/install-tools.sh). Rendering runs once per overlay."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["dev", "prod"]
SERVICES = ["intake", "router", "sla", "feedback", "console"]
# The services that consume with consumer groups (the console reads without one).
CONSUMERS = ["intake", "router", "sla", "feedback"]
TOOLS = Path(os.environ.get("CC_K8S_TOOLS", ROOT / ".local" / "k8s-tools"))
INSTALL = "deploy/k8s/tests/install-tools.sh (make install)"

Object = dict[str, Any]


def kustomize() -> str:
    found = TOOLS / "bin" / "kustomize"
    if not found.is_file():
        pytest.fail(f"kustomize is not installed at {found}: run {INSTALL}")
    return str(found)


def crd_schemas() -> Path:
    found = TOOLS / "crd-schemas" / "node_modules"
    if not found.is_dir():
        pytest.fail(f"the CRD schemas are not installed at {found}: run {INSTALL}")
    return found


@functools.cache
def _rendered(directory: str) -> tuple[Object, ...]:
    done = subprocess.run(  # noqa: S603 - our own kustomize, on the repo's files
        [kustomize(), "build", str(K8S / directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode:
        pytest.fail(f"kustomize build {directory}: {done.stderr}")
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def render(overlay: str) -> list[Object]:
    """Every object of the overlay (a deep copy: tests may change theirs)."""
    return json.loads(json.dumps(_rendered(f"overlays/{overlay}")))


def of_kind(objects: list[Object], kind: str) -> list[Object]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Object], kind: str, name: str) -> Object:
    [found] = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def container(objects: list[Object], kind: str, name: str) -> Object:
    [found] = named(objects, kind, name)["spec"]["template"]["spec"]["containers"]
    return found


def example_secrets() -> dict[str, dict[str, str]]:
    """deploy/k8s/base/secret.example.yaml: the Secrets an operator makes, by name."""
    docs = yaml.safe_load_all((K8S / "base" / "secret.example.yaml").read_text())
    return {d["metadata"]["name"]: d["stringData"] for d in docs if d}


def validate_custom_resources(objects: list[Object]) -> list[Object]:
    """[{kind, name, error}] for each object, by the CRD schemas (deploy/k8s/tests)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Debian: nodejs)")
    done = subprocess.run(  # noqa: S603 - node on our validate-crds.mjs
        [node, str(K8S / "tests" / "validate-crds.mjs")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CRD_SCHEMAS_NODE_MODULES": str(crd_schemas())},
    )
    if done.returncode:
        pytest.fail(f"validate-crds.mjs: {done.stderr}")
    results: list[Object] = json.loads(done.stdout)
    return results


def env_of(c: Object) -> dict[str, Object]:
    return {v["name"]: v for v in c.get("env", [])}


def pod_template(workload: Object) -> Object:
    """The pod template of a Deployment, a Job or a CronJob (its Jobs')."""
    if workload["kind"] == "CronJob":
        template: Object = workload["spec"]["jobTemplate"]["spec"]["template"]
        return template
    template = workload["spec"]["template"]
    return template


def pod_specs(objects: list[Object]) -> Iterator[tuple[Object, Object]]:
    """(workload, pod spec) of every Deployment, Job and CronJob."""
    for o in objects:
        if o["kind"] in ("Deployment", "Job", "CronJob"):
            yield o, pod_template(o)["spec"]
