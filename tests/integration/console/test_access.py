"""Every console route states who may call it, and anyone else gets nothing: without a session
a page redirects to the sign-in form and a script gets 401; an agent on a supervisors' route
gets 403; a state-changing call without the session's CSRF token gets 403. Walks every route,
so a new one without a case fails here."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi.routing import APIRoute, iter_route_contexts

from console.api.deps import csrf_checked, signed_in, supervisor_signed_in
from tests.integration.console.conftest import Console

# Routes anyone may call: the sign-in form, choosing a language, the probes and API docs.
PUBLIC = {
    ("GET", "/sign-in"),
    ("POST", "/sign-in"),
    ("POST", "/language"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}
WHO = re.compile(r"^(Anyone|Signed-in users|Agents|Supervisors)\b")


def _dependencies(route: APIRoute) -> set[object]:
    found: set[object] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is not None:
            found.add(dependant.call)
        stack.extend(dependant.dependencies)
    return found


def _routes(console: Console) -> list[tuple[str, str, APIRoute]]:
    """Every route of the app, those of its included routers too (FastAPI keeps them as
    included-router objects in `app.routes`)."""
    found = [
        (method, str(context.path), context.original_route)
        for context in iter_route_contexts(console.app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in sorted(context.methods or ())
        if not str(context.path).startswith(("/docs", "/redoc"))
    ]
    assert len(found) > 30, "the walk misses the console's routes"
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-7000-8000-000000000000", path)


async def test_every_route_says_who_may_call_it_and_depends_on_it(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    for method, path, route in _routes(console):
        if (method, path) in PUBLIC or path in ("/openapi.json", "/docs", "/redoc"):
            continue
        if path.startswith(("/docs", "/static")):
            continue
        assert WHO.match(route.summary or ""), f"{method} {path}: summary names no caller"
        deps = _dependencies(route)
        assert deps & {signed_in, supervisor_signed_in, csrf_checked}, (
            f"{method} {path} does not depend on a signed-in user"
        )
        if route.summary and route.summary.startswith("Supervisors"):
            assert supervisor_signed_in in deps, f"{method} {path}: supervisors' but unchecked"
        if method != "GET":
            assert csrf_checked in deps, f"{method} {path} changes state without a CSRF check"


async def test_without_a_session_no_route_answers_with_data(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    async with console.client() as browser:
        for method, path, _ in _routes(console):
            if (method, path) in PUBLIC or path.startswith(("/docs", "/redoc", "/openapi")):
                continue
            url = _concrete(path)
            page = await browser.request(method, url, headers={"Accept": "text/html"})
            script = await browser.request(method, url, headers={"Accept": "application/json"})
            if method == "GET":
                assert page.status_code == 303, f"{method} {path}: {page.status_code}"
                assert page.headers["location"].startswith("/sign-in?next="), path
            else:
                assert page.status_code in (401, 403), f"{method} {path}: {page.status_code}"
            assert script.status_code in (401, 403), f"{method} {path}: {script.status_code}"


async def test_an_agent_gets_403_and_no_data_on_every_supervisors_route(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    agent = await console.signed_in_client("amy", "agent")
    try:
        for method, path, route in _routes(console):
            if supervisor_signed_in not in _dependencies(route):
                continue
            answer = await agent.request(method, _concrete(path), headers={"Accept": "text/html"})
            assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"
    finally:
        await agent.aclose()


async def test_no_state_changes_without_the_sessions_csrf_token(
    console_factory: Callable[..., Awaitable[Console]],
) -> None:
    console = await console_factory()
    supervisor = await console.signed_in_client("sam", "supervisor")
    supervisor.headers.pop("X-CSRF-Token")
    try:
        for method, path, _ in _routes(console):
            if method == "GET" or (method, path) in PUBLIC:
                continue
            answer = await supervisor.request(method, _concrete(path), data={"x": "1"})
            assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"
    finally:
        await supervisor.aclose()
