"""tests/browser/tools.py: the browser tests find axe-core where `make console-test-tools` puts
it, at the version the lock file pins, and say which command installs it when it is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser import tools

NODE = Path(__file__).resolve().parents[2] / "browser" / "node"


def test_axe_core_is_pinned_exactly_and_locked_with_its_integrity() -> None:
    pinned = json.loads((NODE / "package.json").read_text())["dependencies"]["axe-core"]
    lock = json.loads((NODE / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/axe-core"]
    assert pinned == locked["version"]  # an exact version, not a range
    assert locked["integrity"].startswith("sha512-")
    assert lock["packages"][""]["dependencies"] == {"axe-core": pinned}


def test_the_installed_axe_is_the_locked_version() -> None:
    pinned = json.loads((NODE / "package.json").read_text())["dependencies"]["axe-core"]
    head = tools.axe_js().read_text(encoding="utf-8")[:40]
    assert f"axe v{pinned}" in head


def test_a_missing_axe_names_the_make_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools, "AXE_JS", tmp_path / "axe-core" / "axe.min.js")
    with pytest.raises(tools.MissingTool, match="make console-test-tools"):
        tools.axe_js()
