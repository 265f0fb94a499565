"""Sign-in and sign-out. Passwords are checked against argon2id hashes; failures are counted
per account and per client address and, past the limit, sign-ins are refused for the window
(429) before any password is checked; a session is a random cookie (HttpOnly, SameSite=Strict,
Secure over TLS) whose SHA-256 alone is stored."""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.api.deps import (
    LANGUAGE_COOKIE,
    PRE_SESSION_COOKIE,
    SignedIn,
    csrf_checked,
    new_secret,
    over_tls,
    parts_engine,
    parts_of,
    render,
    session_cookie_name,
)
from console.api.deps import client_address as address_of
from console.db import sessions as db
from console.db import users as users_db
from console.domain.i18n import LANGUAGES
from console.domain.throttle import ThrottleLimits, sign_in_refused
from console.domain.users import USER_ID, hash_password, needs_rehash, password_matches

log = logging.getLogger(__name__)
router = APIRouter(tags=["sign-in"], include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on the console itself (no //host, no scheme): no open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _sign_in_page(
    request: Request, *, error: str | None = None, status_code: int = 200, user_id: str = ""
) -> HTMLResponse:
    parts = parts_of(request)
    token = request.cookies.get(PRE_SESSION_COOKIE) or new_secret()
    response = render(
        request,
        "sign_in.html",
        None,
        status_code=status_code,
        csrf=token,
        error=error,
        user_id=user_id,
        next=_safe_next(request.query_params.get("next")),
        signed_out=request.query_params.get("signed_out") == "1",
    )
    response.set_cookie(
        PRE_SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=over_tls(request, parts),
        max_age=3600,
    )
    return response


@router.get("/sign-in", response_class=HTMLResponse, summary="Anyone: the sign-in form")
async def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request)


@router.post("/sign-in", summary="Anyone: sign in with user name and password")
async def sign_in(
    request: Request,
    user: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    parts = parts_of(request)
    settings = parts.settings
    expected = request.cookies.get(PRE_SESSION_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf, expected):
        return _sign_in_page(request, error="error.csrf", status_code=403, user_id=user)
    account = user.strip().lower()
    address = address_of(request, parts)
    limits = ThrottleLimits(
        settings.sign_in_window_s,
        settings.sign_in_max_failures_per_account,
        settings.sign_in_max_failures_per_address,
    )
    engine = parts_engine(request)
    async with engine.begin() as conn:
        await db.delete_stale(conn, idle_s=settings.session_idle_s, window_s=limits.window_s)
        counted = await db.failures(
            conn, account=account, address=address, window_s=limits.window_s
        )
    if sign_in_refused(limits, *counted):
        log.warning("sign-in refused (throttled) for an account from %s", address)
        page = _sign_in_page(request, error="sign_in.throttled", status_code=429, user_id=user)
        page.headers["Retry-After"] = str(int(limits.window_s))
        return page
    found = None
    if USER_ID.fullmatch(account):
        async with engine.begin() as conn:
            found = await users_db.credentials_of(conn, account)
    if not password_matches(found[1] if found else None, password) or found is None:
        async with engine.begin() as conn:
            await db.record_failure(conn, account=account, address=address)
        log.info("sign-in failed from %s", address)
        return _sign_in_page(request, error="sign_in.failed", status_code=401, user_id=user)
    signed, stored_hash = found
    cookie = new_secret()
    async with engine.begin() as conn:
        await db.clear_account_failures(conn, account)
        if needs_rehash(stored_hash):
            await users_db.set_password_hash_only(conn, signed.id, hash_password(password))
        await db.create_session(
            conn,
            cookie=cookie,
            user_id=signed.id,
            csrf_token=new_secret(),
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.session_ttl_s),
            address=address,
        )
    log.info("%s %s signed in", signed.role, signed.id)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        session_cookie_name(request, parts),
        cookie,
        httponly=True,
        samesite="strict",
        secure=over_tls(request, parts),
        max_age=int(settings.session_ttl_s),
        path="/",
    )
    response.delete_cookie(PRE_SESSION_COOKIE)
    return response


@router.post("/sign-out", summary="Signed-in users: end this session")
async def sign_out(request: Request, _: SignedIn = Depends(csrf_checked)) -> Response:
    parts = parts_of(request)
    name = session_cookie_name(request, parts)
    cookie = request.cookies.get(name, "")
    async with parts_engine(request).begin() as conn:
        await db.delete_session(conn, cookie)
    response = RedirectResponse("/sign-in?signed_out=1", status_code=303)
    response.delete_cookie(name, path="/")
    return response


@router.post("/language", summary="Anyone: choose the console's language")
async def choose_language(
    request: Request,
    language: Annotated[str, Form(max_length=5)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, language, samesite="strict", max_age=365 * 86400, httponly=True
        )
    return response
