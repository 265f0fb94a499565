"""The router's request dependencies run on the event loop: FastAPI runs a plain `def`
dependency in its thread pool, a thread hop on every request for an attribute lookup."""

from __future__ import annotations

import inspect

from fastapi.params import Depends

from router.api import deps


def test_every_dependency_the_router_declares_is_a_coroutine_function() -> None:
    declared = [value for value in vars(deps).values() if isinstance(value, Depends)]

    assert len(declared) >= 7
    for dependency in declared:
        assert inspect.iscoroutinefunction(dependency.dependency), dependency.dependency
