"""The image's Dockerfile, linted by our own rules (no container engine builds it here: see
deploy/README.md, "Images"): reproducible from the runtime lock file, nothing fetched but its
packages (no test, lint or benchmark tool), non-root with the uid the manifests run as,
bytecode compiled for the read-only root filesystem, a small build context, and a command that
starts any of the five services."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.unit.deploy.locks import canonical, pins
from tests.unit.deploy.manifests import ROOT, SERVICES, container, named, render
from tests.unit.deploy.test_runtime_lock import DEVELOPMENT

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
TRAIN_DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile.train"


@dataclass
class Instruction:
    keyword: str
    arguments: str


def parse(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def stages(dockerfile: Path = DOCKERFILE) -> list[list[Instruction]]:
    """The build stages, each from its FROM on (the ARGs before the first are global)."""
    found: list[list[Instruction]] = []
    for instruction in parse(dockerfile.read_text()):
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def _args(keyword: str, dockerfile: Path = DOCKERFILE) -> list[str]:
    return [i.arguments for s in stages(dockerfile) for i in s if i.keyword == keyword]


def test_the_parser_joins_continuations_and_drops_comments() -> None:
    parsed = parse("# c\nFROM a AS b\nRUN x \\\n  && y\n\nUSER 1\n")
    assert [(i.keyword, i.arguments) for i in parsed] == [
        ("FROM", "a AS b"),
        ("RUN", "x    && y"),
        ("USER", "1"),
    ]


def test_the_base_image_is_a_pinned_python_of_the_projects_version() -> None:
    # The one build argument: the base image.
    [default] = [i.arguments for i in parse(DOCKERFILE.read_text()) if i.keyword == "ARG"]
    name, _, image = default.partition("=")
    assert name == "PYTHON_IMAGE"
    assert re.fullmatch(r"python:3\.11-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
    for origin in _args("FROM"):
        assert origin.split()[0] == "${PYTHON_IMAGE}", origin  # never an unpinned other image


def test_python_packages_come_from_the_lock_file_only() -> None:
    runs = " ".join(_args("RUN"))
    installs = re.findall(r"pip install ([^&]*)", runs)
    assert installs, runs
    for install in installs:
        assert "--no-deps" in install.split(), install  # resolves nothing beyond the lock
    # the image's lock, never the whole workspace's
    locks = {p for i in installs for p in shlex.split(i) if p.endswith(".lock")}
    assert locks == {"requirements-runtime.lock"}, locks
    ours = {p for i in installs for p in shlex.split(i) if p.startswith("./")}
    assert ours == {"./shared", *(f"./services/{s}" for s in SERVICES)}
    for fetcher in ("curl", "wget", "git clone", "apt-get install", "--index-url"):
        assert fetcher not in runs
    assert _args("ADD") == []  # COPY only: no remote URLs, no archive unpacking


def test_the_image_installs_no_test_lint_or_benchmark_package() -> None:
    installs = [
        shlex.split(i) for run in _args("RUN") for i in re.findall(r"pip install ([^&]*)", run)
    ]
    named_packages = {
        canonical(p) for i in installs for p in i if not p.startswith(("-", "./")) and p != "-r"
    } - {canonical("requirements-runtime.lock")}
    assert named_packages == set(), named_packages  # only the lock and our own packages
    [lock] = {p for i in installs for p in i if p.endswith(".lock")}
    installed = set(pins(ROOT / lock))
    for tool in DEVELOPMENT:
        assert tool not in installed, tool
    # our own packages bring in nothing of them either (built with --no-deps)
    assert all("--no-deps" in i for i in installs)


def test_the_final_stage_runs_as_the_non_root_user_the_manifests_run_as() -> None:
    final = stages()[-1]
    [user] = [i.arguments for i in final if i.keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert int(uid) > 0
    assert int(gid) > 0
    for overlay in ("dev", "prod"):
        for service in SERVICES:
            pod = named(render(overlay), "Deployment", service)["spec"]["template"]["spec"]
            security = pod["securityContext"]
            assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))


def test_the_final_stage_holds_the_built_environment_and_nothing_of_the_sources() -> None:
    final = stages()[-1]
    copies = [i.arguments for i in final if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    env = " ".join(i.arguments for i in final if i.keyword == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env  # `python -m <service>.migrate` finds the venv
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root filesystem is read-only ...
    assert "compileall" in " ".join(_args("RUN"))  # ... so the bytecode is built in


def test_the_command_starts_any_service_on_the_port_the_manifests_use() -> None:
    final = stages()[-1]
    [expose] = [i.arguments for i in final if i.keyword == "EXPOSE"]
    env = " ".join(i.arguments for i in final if i.keyword == "ENV")
    assert f"PORT={expose}" in env
    [command] = [i.arguments for i in final if i.keyword == "CMD"]
    assert command.startswith('["sh", "-c", "exec uvicorn --factory')  # uvicorn is PID 1
    assert '\\"$SERVICE.app:create_app\\"' in command
    for service in SERVICES:
        assert callable(importlib.import_module(f"{service}.app").create_app)
        [port] = container(render("prod"), "Deployment", service)["ports"]
        assert port["containerPort"] == int(expose)


def test_the_build_context_is_only_the_lock_and_the_packages() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything out (.venv, .local, .git, tests, bench) ...
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    # ... but what COPY takes: the service image's, and the training image's lock of pins
    assert kept == {"requirements-runtime.lock", "requirements.lock", "shared", "services"}
    assert _copied(DOCKERFILE) | _copied(TRAIN_DOCKERFILE) == kept
    assert "requirements.lock" not in _copied(DOCKERFILE)  # the services': the runtime lock


def _copied(dockerfile: Path) -> set[str]:
    """What the build context gives the COPY instructions (not copies between stages)."""
    return {
        path
        for copy in _args("COPY", dockerfile)
        if not copy.startswith("--from=")
        for path in copy.split()[:-1]
    }


# -- The training image (Dockerfile.train), for the router-train CronJob ------------------


def _training_packages() -> set[str]:
    """scikit-learn and what it requires that the runtime lock does not already hold."""
    requires = importlib.metadata.requires("scikit-learn") or []
    needed = {canonical(re.split(r"[\[<>=!~; ]", r)[0]) for r in requires if "extra ==" not in r}
    return {"scikit-learn"} | (needed - set(pins(ROOT / "requirements-runtime.lock")))


def test_the_training_image_adds_scikit_learn_at_the_locks_versions_and_nothing_else() -> None:
    runs = " && ".join(_args("RUN", TRAIN_DOCKERFILE))
    installs = [shlex.split(i) for i in re.findall(r"pip install ([^&]*)", runs)]
    assert all("--no-deps" in i for i in installs)  # resolves nothing
    runtime, training, ours = installs
    assert runtime[-2:] == ["-r", "requirements-runtime.lock"]  # the services' packages ...
    assert training[training.index("-c") + 1] == "requirements.lock"  # ... + these, pinned
    named_packages = {canonical(p) for p in training if not p.startswith("-")}
    assert named_packages - {canonical("requirements.lock")} == _training_packages()
    assert {p for p in ours if p.startswith("./")} == {"./shared", "./services/router"}
    whole = pins(ROOT / "requirements.lock")
    assert all(p in whole for p in _training_packages())  # a version for each in the lock
    for tool in DEVELOPMENT - {"scikit-learn"}:
        assert canonical(tool) not in named_packages, tool
    for fetcher in ("curl", "wget", "git clone", "apt-get install", "--index-url"):
        assert fetcher not in runs
    assert _args("ADD", TRAIN_DOCKERFILE) == []


def test_the_training_image_is_built_like_the_services_and_runs_the_training_job() -> None:
    assert [i.split()[0] for i in _args("FROM", TRAIN_DOCKERFILE)] == ["${PYTHON_IMAGE}"] * 2
    final = stages(TRAIN_DOCKERFILE)[-1]
    assert [i.arguments for i in final if i.keyword == "USER"] == [
        i.arguments for i in stages()[-1] if i.keyword == "USER"
    ]
    assert [i.arguments for i in final if i.keyword == "COPY"] == [
        "--from=build /opt/venv /opt/venv"
    ]
    assert "compileall" in " ".join(_args("RUN", TRAIN_DOCKERFILE))
    [command] = [i.arguments for i in final if i.keyword == "CMD"]
    job = named(render("prod"), "CronJob", "router-train")
    [train] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert train["command"] == json.loads(command)
    assert importlib.util.find_spec("router.classifier.train") is not None


def test_the_router_wheel_ships_its_model_versions_and_corpus(tmp_path: Path) -> None:
    """The images install the router as a wheel (no source tree): its model files must be in
    it, or the image's router would run without its model (rules alone) and the training job
    without its corpus."""
    source = tmp_path / "router"
    shutil.copytree(
        ROOT / "services" / "router",
        source,
        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"),
    )
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(  # noqa: S603 - this interpreter's pip on a copy of our package
        [*pip, str(source), "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    classifier = source / "router" / "classifier"
    needed = {
        str(p.relative_to(source))
        for p in [*(classifier / "models").iterdir(), classifier / "corpus" / "messages.jsonl"]
    }
    assert "router/classifier/models/current" in needed
    assert needed <= packed, sorted(needed - packed)
