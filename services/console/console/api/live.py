"""GET /live: the signed-in user's server-sent-events stream (docs/live.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from console.api.deps import SignedIn, parts_engine, parts_of, session_cookie_name, signed_in
from console.domain.live import Viewer
from console.live.stream import EventStream, StreamTimers
from console.live.viewers import current_viewer, session_holds

router = APIRouter(include_in_schema=False)


@router.get(
    "/live",
    summary="Signed-in users: their live events (text/event-stream; Last-Event-ID catches up)",
)
async def live(request: Request, who: SignedIn = Depends(signed_in)) -> Response:
    parts = parts_of(request)
    if parts.live is None or parts.live.hub.stopping:
        return JSONResponse(
            {"type": "about:blank", "title": "Service Unavailable", "status": 503},
            status_code=503,
            media_type="application/problem+json",
            headers={"Retry-After": "3"},
        )
    settings, user = parts.settings, who.user
    cookie = request.cookies.get(session_cookie_name(request, parts), "")
    engine = parts_engine(request)

    async def still_signed_in() -> bool:
        return await session_holds(engine, cookie, settings.session_idle_s)

    async def viewer_now(previous: Viewer) -> Viewer:
        return await current_viewer(parts.apis, user, previous)

    return EventStream(
        parts.live.hub,
        await current_viewer(parts.apis, user),
        request.headers.get("last-event-id"),
        StreamTimers(settings.live_heartbeat_s, settings.live_recheck_s, settings.live_retry_ms),
        still_signed_in,
        viewer_now,
    )
