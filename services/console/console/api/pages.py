"""The console's front door: the home page by role, and the answers to a missing session, a
forbidden page, a stale form and a service that did not answer."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from console.api.deps import (
    BadCsrfToken,
    NotAllowed,
    SignedIn,
    SignInRequired,
    render,
    sign_in_url,
    signed_in,
)
from console.apis import UpstreamUnavailable

router = APIRouter(include_in_schema=False)


@router.get("/", summary="Signed-in users: their home (agents: my work; supervisors: the board)")
async def home(who: SignedIn = Depends(signed_in)) -> Response:
    return RedirectResponse("/board" if who.user.is_supervisor else "/agent", status_code=303)


@router.get("/session", summary="Signed-in users: who they are, and the CSRF token for scripts")
async def session(who: SignedIn = Depends(signed_in)) -> Response:
    user = who.user
    return JSONResponse(
        {
            "user": user.id,
            "display_name": user.display_name,
            "role": user.role,
            "agent_id": user.agent_id,
            "language": who.language,
            "csrf_token": who.csrf_token,
        },
        headers={"Cache-Control": "no-store"},
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and request.method == "GET"


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def install_error_pages(app: FastAPI) -> None:
    """Pages for people (HTML), problems (JSON) for the pages' scripts."""

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if _wants_html(request):
            return RedirectResponse(sign_in_url(request), status_code=303)
        return _problem(401, "Unauthorized", "sign in first")

    @app.exception_handler(NotAllowed)
    async def _forbidden(request: Request, exc: NotAllowed) -> Response:
        if _wants_html(request):
            return render(request, "error.html", None, status_code=403, message="error.forbidden")
        return _problem(403, "Forbidden", "not allowed for this user")

    @app.exception_handler(BadCsrfToken)
    async def _csrf(request: Request, exc: BadCsrfToken) -> Response:
        return _problem(403, "Forbidden", "missing or wrong CSRF token, or another origin")

    @app.exception_handler(UpstreamUnavailable)
    async def _upstream(request: Request, exc: UpstreamUnavailable) -> Response:
        if _wants_html(request):
            return render(request, "error.html", None, status_code=502, message="error.upstream")
        return _problem(502, "Bad Gateway", str(exc))
