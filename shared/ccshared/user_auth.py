"""FastAPI dependencies for the contact-center UI's APIs (router, SLA, feedback management):
the caller's token (`ccshared.auth`), checked with the service's `auth_public_key` and
`auth_issuer` (`ccshared.settings.UserTokenSettings`).

Every route behind `principal` needs a valid token; `supervisor` also needs the role;
`reads_open_writes_supervised` lets any user read (GET) and only supervisors change things.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ccshared.auth import InvalidCredentials, Principal
from ccshared.problems import Problem
from ccshared.settings import UserTokenSettings

_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="UserToken",
    description="The UI user's signed token (JWT, EdDSA) with `iss`, `sub`, `role`, `iat` and "
    "`exp` (at most 12 hours after `iat`); `role` is `agent` or `supervisor`. "
    "`make token SUB=… ROLE=…` makes one for development.",
)
AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "No user token, or a forged, malformed or expired one"},
    403: {"description": "The user's role or identity does not allow this"},
}


class Unauthorized(Problem):
    status = 401
    slug = "unauthorized"

    def __init__(self, detail: str, realm: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})


class Forbidden(Problem):
    status = 403
    slug = "forbidden"


async def principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_BEARER)
) -> Principal:
    settings: UserTokenSettings = request.app.state.runtime.settings
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            "A user token is required: send `Authorization: Bearer <token>`.",
            settings.service_name,
        )
    try:
        return settings.token_verifier.read(credentials.credentials)
    except InvalidCredentials as exc:
        raise Unauthorized(f"The user token was refused: {exc}.", settings.service_name) from None


async def supervisor(user: Principal = Depends(principal)) -> Principal:
    if not user.is_supervisor:
        raise Forbidden(f"Only a supervisor may do this; {user.subject} is an agent.")
    return user


async def reads_open_writes_supervised(
    request: Request, user: Principal = Depends(principal)
) -> Principal:
    if request.method not in ("GET", "HEAD") and not user.is_supervisor:
        raise Forbidden(f"Only a supervisor may change this; {user.subject} is an agent.")
    return user


def require_self_or_supervisor(user: Principal, agent_id: str) -> None:
    if not user.is_supervisor and user.subject != agent_id:
        raise Forbidden(f"Agent {user.subject} may act only on their own behalf, not {agent_id}.")


def require_on_ticket(user: Principal, assignee: str | None, owner: str | None) -> None:
    if not user.is_supervisor and user.subject not in (assignee, owner):
        raise Forbidden(
            f"Agent {user.subject} is neither the assignee nor the owner of this ticket."
        )
