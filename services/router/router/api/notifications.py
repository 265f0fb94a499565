"""The signed-in user's own notifications (escalations, mentions, offers, missed offers,
follow-ups, failed deliveries): every user, only their own; another's is a 404. A supervisor
sets their own e-mail opt-in."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, Supervisor, User
from router.api.schemas import (
    NotificationOut,
    NotificationPage,
    NotificationSettingsIn,
    NotificationSettingsOut,
)
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


@router.get(
    "/notification-settings",
    response_model=NotificationSettingsOut,
    summary="The signed-in user's own notification settings",
)
async def get_settings(
    user: Principal = User, engine: AsyncEngine = Engine
) -> NotificationSettingsOut:
    return NotificationSettingsOut(**await notifications.settings_of(engine, user))


@router.put(
    "/notification-settings",
    response_model=NotificationSettingsOut,
    summary="A supervisor's or manager's own e-mail opt-in (escalations and follow-ups)",
    description="Supervisors only (an agent gets a 403), and only their own settings.",
)
async def put_settings(
    body: NotificationSettingsIn, user: Principal = Supervisor, engine: AsyncEngine = Engine
) -> NotificationSettingsOut:
    changed = await notifications.put_settings(
        engine, user, email=body.email, email_opt_in=body.email_opt_in
    )
    return NotificationSettingsOut(**changed)
