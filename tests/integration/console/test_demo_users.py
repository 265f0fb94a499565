"""`make demo`'s console users (`deploy/local/demo.py`) and `make user`, against a console with a
scratch database: the passwords they print sign in, with the right role and router agent, and a
second `make demo` sets new passwords (the old ones stop working)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import pg_url
from tests.integration.console.conftest import Console
from tests.unit.test_demo import load_demo

ROOT = Path(__file__).resolve().parents[3]


async def _session_of(console: Console, user: str, password: str) -> dict[str, object] | None:
    """What /session says after signing in with that password; None when refused."""
    async with console.client() as browser:
        answer = await console.sign_in(browser, user, password)
        if answer.status_code != 303:
            assert answer.status_code == 401, answer.text
            return None
        session = await browser.get("/session")
        assert session.status_code == 200
        return dict(session.json())


async def test_demo_gives_each_member_a_console_user_and_a_second_run_new_passwords(
    console_factory: Callable[..., Awaitable[Console]], monkeypatch: pytest.MonkeyPatch
) -> None:
    console = await console_factory()
    monkeypatch.setenv("CONSOLE_DATABASE_URL", console.settings.database_url.get_secret_value())
    demo = load_demo()
    team = [demo.SUPERVISOR, *demo.AGENTS]

    first = {m.id: demo.console_user(m) for m in team}

    for m in team:
        session = await _session_of(console, m.id, first[m.id])
        assert session is not None, m.id
        assert session["role"] == m.role
        assert session["display_name"] == m.name
        # An agent's user works as the router agent the demo puts (the tokens' subject).
        assert session["agent_id"] == (m.id if m.role == "agent" else None)

    second = {m.id: demo.console_user(m) for m in team}

    for m in team:
        assert second[m.id] != first[m.id]
        assert await _session_of(console, m.id, first[m.id]) is None
        session = await _session_of(console, m.id, second[m.id])
        assert session is not None
        assert session["role"] == m.role


async def test_demo_says_why_when_the_agents_id_belongs_to_another_user(
    console_factory: Callable[..., Awaitable[Console]], monkeypatch: pytest.MonkeyPatch
) -> None:
    console = await console_factory()
    monkeypatch.setenv("CONSOLE_DATABASE_URL", console.settings.database_url.get_secret_value())
    await console.add_user("amy.chen", "agent", agent_id="amy")  # amy's agent has a user
    demo = load_demo()

    with pytest.raises(RuntimeError, match=r"exists already.*no user amy"):
        demo.console_user(demo.AGENTS[0])


def make_user(database_url: str, *variables: str) -> subprocess.CompletedProcess[str]:
    """`make user VARIABLES...` with the console's database at that URL."""
    make = shutil.which("make")
    assert make is not None
    return subprocess.run(  # noqa: S603 - make on the repo's own Makefile
        # -o: the venv counts as installed (this interpreter's); make builds nothing.
        [make, "-s", "-o", ".venv/.installed", f"PY={sys.executable}", "user", *variables],
        cwd=ROOT,
        env={**os.environ, "CONSOLE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_make_user_creates_a_user_whose_printed_password_signs_in(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    url = console.settings.database_url.get_secret_value()

    done = await asyncio.to_thread(make_user, url, "NAME=dana", "ROLE=agent", "AGENT=cara")

    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["user"] == "dana"
    session = await _session_of(console, "dana", lines["password"])
    assert session is not None
    assert (session["role"], session["agent_id"]) == ("agent", "cara")

    usage = await asyncio.to_thread(make_user, url, "NAME=erin")
    assert usage.returncode == 2
    assert "usage: make user" in usage.stdout


def test_demo_says_what_went_wrong_when_the_console_database_is_not_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = pg_url(f"t_missing_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("CONSOLE_DATABASE_URL", missing)
    demo = load_demo()

    with pytest.raises(RuntimeError) as failed:
        demo.console_user(demo.SUPERVISOR)

    message = str(failed.value)
    assert "does not exist" in message
    assert "Traceback" not in message
    assert "make run" in message
