"""Model versions in a directory: `v<N>.npz`, its `v<N>.json` (SHA-256, metrics, training
data) and `current` (the promoted version's name). The repo ships `models/` with v1 and v2;
a deployment trains into `ROUTER_CLASSIFIER_DIR` (versions kept, never overwritten) or, in a
cluster, into the router's database (`train --database`, `db.classifier_models`). The router
loads the database's promoted version if there is one, else the directory's current
version, else the shipped one."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from router.classifier.model import TrainedModel, from_bytes, load, save
from router.db.classifier_models import promoted_version, stored_model

SHIPPED_DIR: Final = Path(__file__).parent / "models"
_log = logging.getLogger(__name__)
_VERSION = re.compile(r"^v(\d+)\.npz$")


def versions(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _VERSION.match(p.name)))


def current_name(directory: Path) -> str | None:
    pointer = directory / "current"
    return pointer.read_text().strip() if pointer.is_file() else None


def info(directory: Path, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((directory / f"{name}.json").read_text())
    return doc


def load_current(directory: Path) -> TrainedModel | None:
    name = current_name(directory)
    if name is None or not re.fullmatch(r"v\d+", name):
        return None
    return load(directory / f"{name}.npz", info(directory, name).get("sha256"))


def load_for_router(directory: Path | None) -> TrainedModel | None:
    """The deployment's promoted model if it has one, else the shipped one."""
    if directory is not None and (model := load_current(directory)) is not None:
        return model
    return load_current(SHIPPED_DIR)


def add_version(
    directory: Path, model: TrainedModel, metadata: dict[str, Any], *, promote: bool
) -> str:
    """Store `model` as the next version (its `version` set to it); `current` moves to it
    only if `promote`."""
    directory.mkdir(parents=True, exist_ok=True)
    # Numbered after the shipped versions too, so a deployment's v2 is never the repo's v2.
    name = f"v{max([*versions(directory), last_shipped()]) + 1}"
    model.version = name
    sha = save(model, directory / f"{name}.npz")
    doc = {"version": name, "sha256": sha, "promoted": promote, **metadata}
    (directory / f"{name}.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if promote:
        (directory / "current").write_text(name + "\n")
    return name


def last_shipped() -> int:
    """The number of the repo's last version: a deployment's are numbered after it."""
    return max(versions(SHIPPED_DIR), default=0)


class ModelSource:
    """The router's model: the version promoted in the router's database (the cluster's
    training job), else the directory's promoted version, else the shipped one; loaded again
    when the database's promoted version or the directory's `current` changes, so a version
    the job or `make train` promotes applies on every replica within the rules cache's
    refresh (`ROUTER_POLICY_CACHE_S`), no restart. A version that fails to load is logged
    and the one in use kept."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._seen = self._pointer_mtime()
        self.model = load_for_router(directory)
        self._stored: TrainedModel | None = None  # the database's, once it has one
        self._stored_seen: str | None = None

    async def current_in(self, conn: AsyncConnection) -> TrainedModel | None:
        """The model in force, the database's promoted version first (one small query; its
        bytes are read only when that version changes)."""
        found = await promoted_version(conn)
        if found is None:
            return self.current()
        version, sha256 = found
        if version != self._stored_seen:
            self._stored_seen = version
            stored = await stored_model(conn, version)
            try:
                if stored is None:
                    raise ValueError("its row is gone")
                self._stored = from_bytes(stored.data, sha256, f"classifier_models {version}")
                _log.info("classifier model %s loaded from the database", version)
            except (ValueError, KeyError, OSError) as exc:
                _log.warning("classifier model %s in the database not loaded: %s", version, exc)
        return self._stored or self.current()

    def _pointer_mtime(self) -> int | None:
        if self.directory is None:
            return None
        try:
            return (self.directory / "current").stat().st_mtime_ns
        except OSError:
            return None

    def current(self) -> TrainedModel | None:
        seen = self._pointer_mtime()
        if seen is None or seen == self._seen or self.directory is None:
            return self.model
        self._seen = seen
        try:
            self.model = load_current(self.directory) or self.model
            _log.info("classifier model %s loaded", self.model.version if self.model else None)
        except (OSError, ValueError, KeyError) as exc:
            _log.warning("classifier model in %s not loaded: %s", self.directory, exc)
        return self.model
