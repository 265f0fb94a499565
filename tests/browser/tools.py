"""Where the browser tests' tools are installed (by `make install`)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AXE_JS = ROOT / ".local" / "node" / "axe-core" / "axe.min.js"


def axe_js() -> Path:
    if not AXE_JS.exists():
        raise FileNotFoundError(f"{AXE_JS} is missing: `make install` installs axe-core")
    return AXE_JS
