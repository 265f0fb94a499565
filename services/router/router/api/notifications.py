"""The signed-in user's own notifications (escalations, mentions, offers, missed offers,
follow-ups, failed deliveries): every user, only their own; another's is a 404."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, User
from router.api.schemas import NotificationOut, NotificationPage
from router.handlers import notifications

router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(principal)],
    responses=AUTH_RESPONSES,
    tags=["notifications"],
)


@router.get(
    "/notifications",
    response_model=NotificationPage,
    summary="The signed-in user's notifications, newest first; page with `cursor`",
)
async def list_notifications(
    user: Principal = User,
    engine: AsyncEngine = Engine,
    unread: bool = Query(default=False, description="only those not read yet"),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = None,
) -> NotificationPage:
    page, next_cursor = await notifications.page_of_notifications(
        engine, user, unread=unread, limit=limit, cursor=cursor
    )
    return NotificationPage(items=[NotificationOut(**n) for n in page], next_cursor=next_cursor)


@router.post(
    "/notifications/{notification_id}/read",
    response_model=NotificationOut,
    summary="Mark one of one's own notifications read (another user's is a 404)",
)
async def mark_read(
    notification_id: uuid.UUID, user: Principal = User, engine: AsyncEngine = Engine
) -> NotificationOut:
    return NotificationOut(**await notifications.mark_read(engine, notification_id, user))
