"""The image's Dockerfile, linted by our own rules (no container engine builds it here: see
deploy/README.md, "Images"): reproducible from the runtime lock file, nothing fetched but its
packages (no test, lint or benchmark tool), non-root with the uid the manifests run as,
bytecode compiled for the read-only root filesystem, a small build context, and a command that
starts any of the five services."""

from __future__ import annotations

import importlib
import re
import shlex
from dataclasses import dataclass

from tests.unit.deploy.locks import canonical, pins
from tests.unit.deploy.manifests import ROOT, SERVICES, container, named, render
from tests.unit.deploy.test_runtime_lock import DEVELOPMENT

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


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


def stages() -> list[list[Instruction]]:
    """The build stages, each from its FROM on (the ARGs before the first are global)."""
    found: list[list[Instruction]] = []
    for instruction in parse(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def _args(keyword: str) -> list[str]:
    return [i.arguments for s in stages() for i in s if i.keyword == keyword]


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
    assert kept == {"requirements-runtime.lock", "shared", "services"}  # ... but what COPY takes
    copied = {
        i.split()[0] for s in stages() for i in (x.arguments for x in s if x.keyword == "COPY")
    }
    assert copied - {"--from=build"} == kept
