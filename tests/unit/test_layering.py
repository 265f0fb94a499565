"""The layering rules of pyproject.toml's [tool.importlinter] hold for this checkout, and each of
them catches the violation it is written against: the same contracts, read from pyproject.toml,
are run over a small package tree with the services' names that breaks one rule at a time.

lint-imports runs as a subprocess because it finds packages by import name: in this process
`intake`, `router`, ... are already the real ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = [
    "shared",
    *(f"services/{s}" for s in ("intake", "router", "sla", "feedback", "console")),
]
CONTRACT_IDS = {"services-independent", "shared-imports-no-service", "domain-is-pure", "no-cycles"}


def _config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        config: dict[str, Any] = tomllib.load(f)["tool"]["importlinter"]
    return config


def _lint_imports(
    config: Path, pythonpath: list[Path], cwd: Path
) -> tuple[int, dict[str, str], str]:
    """lint-imports' exit code, each contract's verdict (KEPT or BROKEN) by name, its report."""
    done = subprocess.run(  # noqa: S603 - our own venv's lint-imports on our own files
        [Path(sys.executable).parent / "lint-imports", "--no-logo", "--no-cache", str(config)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": ":".join(map(str, pythonpath))},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    verdicts = dict(
        re.findall(r"^(.+) (KEPT|BROKEN)(?: \(\d+ ignored imports?\))?$", done.stdout, re.M)
    )
    assert verdicts, done.stdout + done.stderr
    return done.returncode, verdicts, done.stdout


def test_this_checkout_keeps_every_layering_contract() -> None:
    contracts = _config()["contracts"]
    assert {c["id"] for c in contracts} == CONTRACT_IDS

    code, verdicts, report = _lint_imports(
        ROOT / "pyproject.toml", [ROOT / d for d in PACKAGE_DIRS], cwd=ROOT
    )

    assert verdicts == {c["name"]: "KEPT" for c in contracts}, report
    assert code == 0


# The toy tree: each package with a pure domain module, an api/ layer over it and the libraries
# the rules name in that layer, and ccshared with a FastAPI module (as ccshared.problems is).
_LIBRARIES = "import aiokafka, asyncpg, fastapi, httpx, sqlalchemy, starlette\n"
_CLEAN_TREE = {
    "ccshared/__init__.py": "",
    "ccshared/problems.py": "import fastapi\n",
    **{
        path.format(s=service): text.format(s=service)
        for service in ("intake", "router", "sla", "feedback")
        for path, text in {
            "{s}/__init__.py": "",
            "{s}/domain/__init__.py": "",
            "{s}/domain/model.py": "import dataclasses\n",
            "{s}/api/__init__.py": "",
            "{s}/api/routes.py": _LIBRARIES + "from ccshared import problems\n"
            "from {s}.domain import model\n",
        }.items()
    },
}

VIOLATIONS = {
    "clean": ({}, set()),
    "domain imports sqlalchemy": (
        {"router/domain/rules.py": "import sqlalchemy\n"},
        {"domain-is-pure"},
    ),
    "domain imports fastapi through its api and ccshared (intake's case today)": (
        {
            "intake/domain/contacts.py": "from intake.api import schemas\n",
            "intake/api/schemas.py": "from ccshared import problems\n",
        },
        {"domain-is-pure", "no-cycles"},
    ),
    "domain imports httpx through a db module": (
        {
            "feedback/domain/hooks.py": "from feedback.db import client\n",
            "feedback/db/__init__.py": "",
            "feedback/db/client.py": "import httpx\n",
        },
        {"domain-is-pure"},
    ),
    "a service imports another": (
        {"sla/api/tickets.py": "from router.domain import model\n"},
        {"services-independent"},
    ),
    "ccshared imports a service": (
        {"ccshared/outbox.py": "import feedback.domain.model\n"},
        {"shared-imports-no-service"},
    ),
    "two domain modules import each other": (
        {
            "sla/domain/clock.py": "from sla.domain import timers\n",
            "sla/domain/timers.py": "from sla.domain import clock\n",
        },
        {"no-cycles"},
    ),
}


@pytest.mark.parametrize(("extra", "broken"), VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_each_contract_breaks_on_its_violation_and_only_then(
    tmp_path: Path, extra: dict[str, str], broken: set[str]
) -> None:
    config = _config()
    src = tmp_path / "src"
    for path, text in {**_CLEAN_TREE, **extra}.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text)
    # The same contracts less their ignore_imports (known violations of the real tree's modules),
    # written as TOML: JSON's strings, lists and booleans are TOML's too.
    toml = ["[tool.importlinter]"]
    toml += [f"{key} = {json.dumps(value)}" for key, value in config.items() if key != "contracts"]
    for contract in config["contracts"]:
        toml.append("[[tool.importlinter.contracts]]")
        toml += [f"{k} = {json.dumps(v)}" for k, v in contract.items() if k != "ignore_imports"]
    (tmp_path / "pyproject.toml").write_text("\n".join(toml) + "\n")

    code, verdicts, report = _lint_imports(tmp_path / "pyproject.toml", [src], cwd=tmp_path)

    names = {c["id"]: c["name"] for c in config["contracts"]}
    assert verdicts == {
        name: "BROKEN" if id_ in broken else "KEPT" for id_, name in names.items()
    }, report
    assert code == (1 if broken else 0)
