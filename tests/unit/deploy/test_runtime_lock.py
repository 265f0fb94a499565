"""requirements-runtime.lock, the image's packages: everything the services import at run time
(every third-party module under services/*/ and shared/), at the versions CI tests
(requirements.lock's), and none of the development tools."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from functools import cache
from pathlib import Path, PurePosixPath

from tests.unit.deploy.locks import (
    RUNTIME_IN,
    RUNTIME_LOCK,
    WHOLE_IN,
    WHOLE_LOCK,
    canonical,
    listed,
    pins,
)
from tests.unit.deploy.manifests import ROOT, SERVICES

FIRST_PARTY = {"ccshared", *SERVICES}
# Modules of ours that no service imports and the image does not run, each with why. Their
# imports may come from the development packages.
DEVELOPMENT_MODULES = {
    # fits the classifier with scikit-learn; the services serve the model with numpy alone
    "router.classifier.train": ROOT / "services/router/router/classifier/train.py",
}
# Development packages the image must never hold (requirements.in names each).
DEVELOPMENT = {
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "hypothesis",
    "schemathesis",
    "ruff",
    "mypy",
    "import-linter",
    "uv",
    "matplotlib",
    "kubernetes-validate",
    "aiosmtpd",
    "scikit-learn",
}


def _sources() -> list[Path]:
    return [
        path
        for root in (ROOT / "shared", *sorted((ROOT / "services").iterdir()))
        for path in sorted(root.rglob("*.py"))
    ]


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (anywhere, a function's lazy import included): for
    `from a import b` both `a.b` and `a` (b may be a module or a name in a)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in FIRST_PARTY and top not in sys.stdlib_module_names and top != "__future__"


@cache
def _module_owners() -> dict[str, str]:
    """Module (dotted) → the installed distribution whose files hold it."""
    owners: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = canonical(dist.metadata["Name"])
        for file in dist.files or ():
            parts = PurePosixPath(str(file)).parts
            if (
                not parts
                or ".." in parts
                or any(p.endswith((".dist-info", ".data")) for p in parts)
            ):
                continue
            stem, dot, suffix = parts[-1].partition(".")
            if not dot or not suffix.endswith(("py", "so", "pyd")):
                continue
            module = ".".join((*parts[:-1], *(() if stem == "__init__" else (stem,))))
            owners.setdefault(module, name)
    return owners


def _owner(module: str) -> str | None:
    """The distribution of `module`, or of its closest parent package that has one."""
    owners = _module_owners()
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        found = owners.get(".".join(parts[:n]))
        if found is not None:
            return found
    return None


def _namespace(module: str) -> bool:
    return any(m.startswith(module + ".") for m in _module_owners())


def runtime_imports() -> dict[str, set[str]]:
    """Distribution → the service and shared modules that import it (development modules
    left out)."""
    development = set(DEVELOPMENT_MODULES.values())
    needed: dict[str, set[str]] = {}
    for path in _sources():
        if path in development:
            continue
        for module in _imports(path):
            if not _third_party(module):
                continue
            owner = _owner(module)
            if owner is None and ("." in module or _namespace(module)):
                # `from a import name`: a name in `a`, whose own entry counts; a namespace
                # package (opentelemetry): its parts' entries count
                continue
            assert owner is not None, f"{path.relative_to(ROOT)}: no distribution has {module}"
            needed.setdefault(owner, set()).add(str(path.relative_to(ROOT)))
    return needed


def test_every_third_party_module_the_services_import_is_in_the_runtime_lock() -> None:
    needed = runtime_imports()
    # the scan sees what it must: a lazy import, a namespace package's part, a C extension
    assert {"opentelemetry-exporter-otlp-proto-http", "opentelemetry-sdk", "google-re2"} <= set(
        needed
    )
    missing = {
        dist: sorted(files)[:3] for dist, files in needed.items() if dist not in pins(RUNTIME_LOCK)
    }
    assert not missing, f"imported by the services but not in requirements-runtime.lock: {missing}"
    # uvicorn serves every service (the image's command), imported by none of them
    assert "uvicorn" in pins(RUNTIME_LOCK)
    assert "uvloop" in pins(RUNTIME_LOCK)  # uvicorn[standard]'s event loop


def test_development_modules_are_imported_by_no_service_module() -> None:
    development = set(DEVELOPMENT_MODULES.values())
    for path in _sources():
        if path in development:
            continue
        for module in _imports(path):
            assert module not in DEVELOPMENT_MODULES, f"{path.relative_to(ROOT)} imports {module}"
    assert all(path.exists() for path in development)


def test_the_runtime_lock_holds_no_development_package() -> None:
    runtime = pins(RUNTIME_LOCK)
    development_in = listed(WHOLE_IN)  # requirements.in names only the development packages
    assert development_in >= DEVELOPMENT
    assert not development_in & listed(RUNTIME_IN)
    assert not DEVELOPMENT & set(runtime), DEVELOPMENT & set(runtime)
    assert not development_in & set(runtime), development_in & set(runtime)


def test_the_runtime_lock_pins_the_versions_ci_tests_and_the_whole_lock_takes_it_in() -> None:
    whole, runtime = pins(WHOLE_LOCK), pins(RUNTIME_LOCK)
    assert set(runtime) <= set(whole)
    assert {n: v for n, v in runtime.items() if whole[n] != v} == {}
    assert "-r requirements-runtime.in" in WHOLE_IN.read_text().splitlines()
    # compiled from the runtime .in with `make lock`'s command, constrained to the whole lock
    header = RUNTIME_LOCK.read_text().splitlines()[1]
    assert "uv pip compile requirements-runtime.in -o requirements-runtime.lock" in header
    assert "--python-version 3.11" in header
    assert "-c requirements.lock" in header
    assert len(runtime) < len(whole) * 0.7  # the image's is much the smaller
