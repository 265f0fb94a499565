"""What endpoints reach on the running service, as FastAPI dependencies.

They are `async def` although they do no I/O: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop (and its CPU) on every request for an attribute lookup."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.user_auth import principal, supervisor
from router.bootstrap import RouterParts, router_parts
from router.db.tickets import SqlTicketsUnitOfWork
from router.domain.conversation import ConversationRules
from router.settings import RouterSettings

User = Depends(principal)
Supervisor = Depends(supervisor)


async def engine_of(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.runtime.engine
    return engine


async def settings_of(request: Request) -> RouterSettings:
    settings: RouterSettings = request.app.state.runtime.settings
    return settings


async def parts_of(request: Request) -> RouterParts:
    return router_parts(request.app.state.runtime)


async def nudge_of(request: Request) -> Callable[[], None]:
    """Wakes the assignment loop: something changed that may allow an offer."""
    return router_parts(request.app.state.runtime).assigner.nudge


async def conversation_rules(request: Request) -> ConversationRules:
    settings: RouterSettings = request.app.state.runtime.settings
    return ConversationRules(settings.message_max_bytes, settings.reply_window_hours)


async def detail_messages(request: Request) -> int:
    settings: RouterSettings = request.app.state.runtime.settings
    return settings.detail_messages


async def tickets_uow(request: Request) -> SqlTicketsUnitOfWork:
    engine: AsyncEngine = request.app.state.runtime.engine
    return SqlTicketsUnitOfWork(engine)


Engine = Depends(engine_of)
Settings = Depends(settings_of)
Parts = Depends(parts_of)
Nudge = Depends(nudge_of)
TicketsUow = Depends(tickets_uow)
Rules = Depends(conversation_rules)
DetailMessages = Depends(detail_messages)
