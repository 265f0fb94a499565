"""What every console endpoint needs: its parts, the signed-in user, the CSRF check, pages."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from console.bootstrap import ConsoleParts
from console.db import sessions as db
from console.domain.i18n import negotiate, translate
from console.domain.users import Language, User

SESSION_COOKIE = "cc_session"
# With TLS the cookie is named __Host-...: browsers then insist on Secure, Path=/ and no Domain,
# so no other site or subdomain can plant or read it.
SECURE_SESSION_COOKIE = "__Host-cc_session"
LANGUAGE_COOKIE = "cc_lang"
PRE_SESSION_COOKIE = "cc_pre"  # the sign-in form's CSRF token (double submit)
CSRF_HEADER = "x-csrf-token"


def parts_of(request: Request) -> ConsoleParts:
    parts: ConsoleParts = request.app.state.runtime.parts
    return parts


def over_tls(request: Request, parts: ConsoleParts) -> bool:
    mode = parts.settings.cookie_secure
    if mode != "auto":
        return mode == "always"
    if request.url.scheme == "https":
        return True
    client = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-proto", "")
    return client in parts.settings.trusted_proxies and forwarded.lower() == "https"


def session_cookie_name(request: Request, parts: ConsoleParts) -> str:
    return SECURE_SESSION_COOKIE if over_tls(request, parts) else SESSION_COOKIE


def client_address(request: Request, parts: ConsoleParts) -> str:
    """The client's address: the peer's, or the last hop a trusted proxy names."""
    peer = request.client.host if request.client else "unknown"
    if peer in parts.settings.trusted_proxies:
        hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
        if hops and hops[-1]:
            return hops[-1]
    return peer


@dataclass(frozen=True)
class SignedIn:
    user: User
    csrf_token: str
    language: Language


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, scripts get a 401 problem."""


class NotAllowed(Exception):
    """Signed in, but not allowed here (a supervisor's page for an agent): 403."""


class BadCsrfToken(Exception):
    """A state-changing request without the session's CSRF token, or from another origin."""


def language_of(request: Request, user: User | None = None) -> Language:
    return negotiate(
        request.cookies.get(LANGUAGE_COOKIE),
        user.language if user else None,
        request.headers.get("accept-language"),
    )


async def signed_in(request: Request) -> SignedIn:
    parts = parts_of(request)
    cookie = request.cookies.get(session_cookie_name(request, parts))
    if not cookie or len(cookie) > 200:
        raise SignInRequired
    async with parts_engine(request).begin() as conn:
        found = await db.session_user(conn, cookie, idle_s=parts.settings.session_idle_s)
    if found is None:
        raise SignInRequired
    user, csrf = found
    return SignedIn(user, csrf, language_of(request, user))


async def supervisor_signed_in(who: SignedIn = Depends(signed_in)) -> SignedIn:
    if not who.user.is_supervisor:
        raise NotAllowed
    return who


def parts_engine(request: Request) -> Any:
    return request.app.state.runtime.engine


def _same_origin(request: Request) -> bool:
    """A browser names the page's origin on every state-changing request; when it does, it
    must be the console's own (a second check beside the token and SameSite=Strict)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def csrf_checked(request: Request, who: SignedIn = Depends(signed_in)) -> SignedIn:
    """The signed-in user of a state-changing request that carries the session's CSRF token
    (the form's `csrf` field or the X-CSRF-Token header) from the console's own origin."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, who.csrf_token) or not _same_origin(request):
        raise BadCsrfToken
    return who


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def sign_in_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/sign-in?next=" + quote(target, safe="")


def render(
    request: Request,
    template: str,
    who: SignedIn | None,
    *,
    status_code: int = 200,
    language: Language | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page in the user's language, with their CSRF token for its forms."""
    parts = parts_of(request)
    lang: Language = language or (who.language if who else language_of(request))

    def t(key: str, **values: object) -> str:
        return translate(key, lang, **values)

    html = parts.templates.get_template(template).render(
        t=t,
        lang=lang,
        who=who,
        user=who.user if who else None,
        csrf=who.csrf_token if who else context.pop("csrf", ""),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})
