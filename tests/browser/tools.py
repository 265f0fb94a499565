"""Where the browser tests find axe-core's axe.min.js: the npm package pinned by
tests/browser/node/package-lock.json, installed by `make console-test-tools` (part of `make
install`) into .local/node (CC_NODE_TOOLS elsewhere). Chromium is Debian's (conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE_TOOLS = Path(os.environ.get("CC_NODE_TOOLS", ROOT / ".local" / "node"))
AXE_JS = NODE_TOOLS / "axe-core" / "axe.min.js"
INSTALL_AXE = "make console-test-tools (tests/browser/node/install-tools.sh; make install runs it)"


class MissingTool(FileNotFoundError):
    """A tool the browser tests need is not installed; the message says how to install it."""


def axe_js() -> Path:
    """The path of axe.min.js, to inject into a page (page.add_script_tag(path=...))."""
    if not AXE_JS.is_file():
        raise MissingTool(f"axe-core is not installed at {AXE_JS}: run {INSTALL_AXE}")
    return AXE_JS
