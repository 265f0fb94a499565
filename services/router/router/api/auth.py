"""The router's callers: agents and supervisors of the contact-center UI, by bearer token.

Every route needs a valid token (`ccshared.auth`). Reading queues, agents, tickets and the policy
is open to both roles. What shapes routing (queues, agents, the policy) is a supervisor's. An
agent sets their own status, sees and answers their own offers, and acts on the tickets they are
assigned to or own; a supervisor may act on any ticket and any agent's status.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ccshared.auth import InvalidCredentials, Principal, read_token
from ccshared.problems import Problem

_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="UserToken",
    description="The UI user's signed token (JWT, HS256) with `sub` and `role` "
    "(`agent` or `supervisor`); `python -m router.tokens issue` makes one.",
)


class Unauthorized(Problem):
    status = 401
    slug = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="router"'})


class Forbidden(Problem):
    status = 403
    slug = "forbidden"


async def principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_BEARER)
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("A user token is required: send `Authorization: Bearer <token>`.")
    secret = request.app.state.runtime.settings.auth_secret.get_secret_value().encode()
    try:
        return read_token(secret, credentials.credentials)
    except InvalidCredentials as exc:
        raise Unauthorized(f"The user token was refused: {exc}.") from None


async def supervisor(user: Principal = Depends(principal)) -> Principal:
    if not user.is_supervisor:
        raise Forbidden(f"Only a supervisor may do this; {user.subject} is an agent.")
    return user


def require_self_or_supervisor(user: Principal, agent_id: str) -> None:
    if not user.is_supervisor and user.subject != agent_id:
        raise Forbidden(f"Agent {user.subject} may act only on their own behalf, not {agent_id}.")


def require_on_ticket(user: Principal, assignee: str | None, owner: str | None) -> None:
    if not user.is_supervisor and user.subject not in (assignee, owner):
        raise Forbidden(
            f"Agent {user.subject} is neither the assignee nor the owner of this ticket."
        )
