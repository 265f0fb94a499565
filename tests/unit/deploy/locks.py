"""The lock files (requirements.lock, the whole workspace's; requirements-runtime.lock, the
image's) and the .in files they are compiled from, read as package names."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.deploy.manifests import ROOT

WHOLE_LOCK = ROOT / "requirements.lock"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
RUNTIME_IN = ROOT / "requirements-runtime.in"
WHOLE_IN = ROOT / "requirements.in"


def canonical(name: str) -> str:
    """A distribution's name as packaging compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> dict[str, str]:
    """Package → pinned version, from a `uv pip compile` output."""
    found = {}
    for line in lock.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#") and "==" in line:
            name, _, version = line.partition("==")
            found[canonical(name.split("[")[0])] = version.strip()
    return found


def listed(requirements_in: Path) -> set[str]:
    """The packages a .in file names itself (not those of the files it includes with -r)."""
    names = set()
    for line in requirements_in.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(canonical(re.split(r"[\[<>=!~; ]", line)[0]))
    return names
