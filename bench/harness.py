"""What the benchmarks share: servers started as subprocesses, wrk runs, process stats, results."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccshared.auth import Role

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = "postgresql://{u}:{p}@127.0.0.1:{port}/postgres".format(
    u=os.environ.get("CC_PG_USER", "contactcenter"),
    p=os.environ.get("CC_PG_PASSWORD", "contactcenter"),
    port=os.environ.get("CC_PG_PORT", "55432"),
)
KAFKA = os.environ.get(
    "CC_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('CC_KAFKA_PORT', '19092')}"
)
# Benchmarks publish and consume under this prefix on the shared broker (every service they
# start gets it as <SERVICE>_KAFKA_TOPIC_PREFIX): their contacts and events never reach the
# services of `make run`, which would otherwise work through every benchmark's backlog.
TOPIC_PREFIX = os.environ.get("BENCH_TOPIC_PREFIX", "bench.")


def topic(name: str) -> str:
    """A catalog topic's name on Kafka, as the benchmark's services use it."""
    return TOPIC_PREFIX + name


def database_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name


def socket_database_url(name: str) -> str:
    """The same database through the local stack's Unix socket, as a service running on the
    database's machine would connect (TCP over loopback costs both sides more CPU per byte);
    TCP when the stack does not say where its socket is."""
    socket_dir = os.environ.get("CC_PG_SOCKET_DIR") or _stack_env().get("CC_PG_SOCKET_DIR")
    if not socket_dir or not Path(socket_dir).is_dir():
        return database_url(name)
    return "postgresql+asyncpg://{u}:{p}@/{name}?host={d}&port={port}".format(
        u=os.environ.get("CC_PG_USER", "contactcenter"),
        p=os.environ.get("CC_PG_PASSWORD", "contactcenter"),
        name=name,
        d=socket_dir,
        port=os.environ.get("CC_PG_PORT", "55432"),
    )


def consumer_groups() -> dict[str, dict[str, list[str]]]:
    """Each service's consumer groups (ConsumerSpec names) and the topics they read, from the
    services' own specs."""
    from feedback.app import consumers as feedback_consumers
    from feedback.settings import FeedbackSettings
    from intake.app import consumers as intake_consumers
    from intake.settings import IntakeSettings
    from router.consumers import CONSUMERS
    from sla.app import consumers as sla_consumers
    from sla.settings import SLASettings

    specs = {
        "intake": intake_consumers(IntakeSettings()),
        "router": CONSUMERS,
        "sla": sla_consumers(SLASettings()),
        "feedback": feedback_consumers(FeedbackSettings()),
    }
    return {svc: {s.name: list(s.topics) for s in found} for svc, found in specs.items()}


async def start_groups_at_end(suffix: str) -> None:
    """Give every service's consumer groups (with this suffix) committed offsets at the end of
    their topics: services started with CONSUMER_GROUP_SUFFIX=suffix read only what is published
    from now on (not the topics' history), and a restarted one resumes where it stopped."""
    from ccshared.kafka import commit_group_at_end, ensure_topics

    await ensure_topics(KAFKA, prefix=TOPIC_PREFIX)
    for service, groups in consumer_groups().items():
        for name, topics in groups.items():
            await commit_group_at_end(
                KAFKA, f"{service}.{name}{suffix}", [topic(t) for t in topics]
            )


def user_headers(subject: str, role: Role) -> dict[str, str]:
    """A UI user's token, signed with the issuer's key from the environment
    (CC_TOKEN_PRIVATE_KEY_FILE), else the development key the benchmarks' services accept."""
    from datetime import timedelta

    from ccshared.auth import issue_token
    from router.tokens import signing_key_from_environment

    key = signing_key_from_environment()
    token = issue_token(key, subject, role, ttl=timedelta(hours=2))
    return {"Authorization": f"Bearer {token}"}


async def create_bench_key(database: str, name: str = "bench") -> str:
    """An intake API key for every channel with no practical rate limit, in that database."""
    import asyncpg

    from intake.db.api_keys import create_key

    conn = await asyncpg.connect(database_url(database).replace("+asyncpg", ""))
    try:
        _, key = await create_key(
            conn,
            name=name,
            channels=["phone", "email", "chat", "social"],
            rate_per_s=1e9,
            burst=10**9,
        )
        return key
    finally:
        await conn.close()


def supervisor_headers() -> dict[str, str]:
    return user_headers("bench", "supervisor")


def _stack_env() -> dict[str, str]:
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / "stack.sh"), "env"],
        capture_output=True,
        text=True,
        check=False,
    )
    found = {}
    for line in result.stdout.splitlines():
        for word in line.removeprefix("export ").split():
            key, _, value = word.partition("=")
            if key.startswith("CC_"):
                found[key] = value
    return found


async def recreate_database_async(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def recreate_database(name: str) -> None:
    import asyncio

    asyncio.run(recreate_database_async(name))


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def pids(self) -> list[int]:
        """The uvicorn supervisor and its workers."""
        found = [self.process.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid in found:
                    found.append(int(entry.name))
        return found

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            if match:
                total += int(match.group(1))
        return total / 1024

    def cpu_seconds(self) -> float:
        return sum(_process_cpu_seconds(pid) for pid in self.pids())


def _process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_part(servers: dict[str, Server]) -> dict[str, float]:
    """CPU seconds used so far by each part of the machine: the named servers, the Kafka
    broker, PostgreSQL (every backend alive now: take it around a window in which the pools
    keep their connections), this benchmark process (the load generator) and the rest."""
    parts: dict[str, float] = dict.fromkeys([*servers, "kafka", "postgres", "load generator"], 0.0)
    owned = {pid: name for name, server in servers.items() for pid in server.pids()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if pid in owned:
            part = owned[pid]
        elif pid == os.getpid():
            part = "load generator"
        elif b"kafka.Kafka" in cmdline:
            part = "kafka"
        elif cmdline.startswith(b"postgres") or b"/postgres" in cmdline.split(b"\0")[0]:
            part = "postgres"
        else:
            part = "other"
        parts[part] = parts.get(part, 0.0) + _process_cpu_seconds(pid)
    return parts


def _with_topic_prefix(env: dict[str, str]) -> dict[str, str]:
    """`env` plus the benchmark's topic prefix for each service it configures (by its
    <SERVICE>_KAFKA_BOOTSTRAP), unless it sets one itself."""
    extra = {}
    for key in env:
        if key.endswith("_KAFKA_BOOTSTRAP"):
            extra[key.removesuffix("BOOTSTRAP") + "TOPIC_PREFIX"] = TOPIC_PREFIX
    return extra | env


def start_uvicorn(
    name: str, factory: str, port: int, workers: int, env: dict[str, str], ready_path: str
) -> Server:
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is taken (a server left from an earlier run?)")
    log = RESULTS / f"{name}.log"
    RESULTS.mkdir(parents=True, exist_ok=True)
    # BENCH_PROFILE=<server name>: run that server under cProfile (one worker: the profile is
    # of the process uvicorn serves in), written to bench/results/<name>.prof when it stops.
    profile = os.environ.get("BENCH_PROFILE") == name
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            *(["bench.profiled", str(RESULTS / f"{name}.prof")] if profile else ["uvicorn"]),
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={**os.environ, **_with_topic_prefix(env)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(name, port, process, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=2) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"{name} not ready in 90 s: {log.read_text()[-2000:]}")


def wrk(
    url: str, script: Path, *, seconds: int, connections: int, threads: int, env: dict[str, str]
) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is missing: apt-get install wrk (make bench installs it)")
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        env={**os.environ, **_with_topic_prefix(env)},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("WRK_JSON "))
    stats: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    seconds_run = stats["duration_us"] / 1e6
    stats["ok"] = stats["requests"] - stats["non_2xx"]
    stats["ok_per_s"] = stats["ok"] / seconds_run
    return stats


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "commit": git_commit(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path
