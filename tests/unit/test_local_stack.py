"""`make run` (deploy/local/stack.sh and services.sh) knows every service under services/: each
gets its database, bootstrapped on every start (so a stack made before a service existed gets
the new one's database at the next `make run`), and each is started, stopped and shown."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"
SERVICES = {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")}


def _bash_array(script: Path, name: str) -> set[str]:
    match = re.search(rf"^{name}=\(([^)]*)\)", script.read_text(), re.M)
    assert match, f"{script.name} has no {name}=(...)"
    return set(match.group(1).split())


def test_every_service_has_a_database_in_the_local_stack() -> None:
    assert "console" in SERVICES
    assert _bash_array(LOCAL / "stack.sh", "SERVICES") == SERVICES


def test_the_databases_are_bootstrapped_on_every_start_even_of_a_running_cluster() -> None:
    script = (LOCAL / "stack.sh").read_text()
    ready = script[script.index("pg_check_ready() {") :]
    ready = ready[: ready.index("\n}\n")]
    assert "pg_bootstrap" in ready  # creates what is missing: CREATE DATABASE ... WHERE NOT EXISTS
    start = script[script.index("start_pg() {") :]
    start = start[: start.index("\n}\n")]
    # After the "already running" branch as after a fresh start.
    assert start.index("already running") < start.index("pg_check_ready")


def test_every_service_is_started_stopped_and_shown_by_make_run() -> None:
    script = LOCAL / "services.sh"
    assert _bash_array(script, "ALL") == SERVICES | {"mailbox"}
    ports = dict(re.findall(r"^\s+(\w+)\) echo \"\$\{\w+:-(\d+)\}\"", script.read_text(), re.M))
    assert set(ports) == SERVICES | {"mailbox"}
    assert ports["console"] == "8005"
    assert len(set(ports.values())) == len(ports)


def test_a_port_another_process_holds_is_refused_before_the_service_starts(
    tmp_path: Path,
) -> None:
    """An old run's server (or any other program) on a service's port used to answer the new
    start's readiness check, so `make run` reported the service ready while it had failed to
    bind. Now the start stops at once, naming the port, before it starts any service (intake,
    listed first, is not left running half-started), and leaves no pid file behind."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        intake_port = free.getsockname()[1]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        done = subprocess.run(  # noqa: S603 - the repository's own script
            ["/bin/bash", str(LOCAL / "services.sh"), "start", "intake", "console"],
            env={
                **os.environ,
                "CONSOLE_PORT": str(port),
                "INTAKE_PORT": str(intake_port),
                "CC_LOCAL_DIR": str(tmp_path),
                "CC_PYTHON": sys.executable,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {port} is already in use" in done.stderr
    assert "ready" not in done.stdout
    assert not (tmp_path / "run" / "console.pid").exists()
    assert not (tmp_path / "run" / "intake.pid").exists()
