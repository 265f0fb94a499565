"""The signed-in user's own notifications (the router's: escalations, mentions, offers, missed
offers, follow-ups, failed deliveries): the list, marking one read, and the unread count the
header's tray shows. Every signed-in user, only their own (the router answers 404 for
another's)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from console.api.deps import SignedIn, csrf_checked, parts_of, render, signed_in
from console.apis import UpstreamUnavailable
from console.domain.i18n import catalog

router = APIRouter(include_in_schema=False)

PAGE = 50
# The tray counts up to this many unread (the router has no count: it reads one page).
COUNT_CAP = 100
# The kinds the catalog has words for; another (a newer router's) is shown as its name.
KINDS = frozenset(k for k in catalog() if k.startswith("notifications.kind."))
_BACK = ("/notifications", "/notifications?unread=true")


@router.get("/notifications", summary="Signed-in users: their own notifications, newest first")
async def notifications_page(
    request: Request,
    who: SignedIn = Depends(signed_in),
    unread: bool = Query(default=False),
    cursor: str | None = Query(default=None, max_length=500),
) -> Response:
    params: dict[str, str | int | bool] = {"limit": PAGE, "unread": unread}
    if cursor:
        params["cursor"] = cursor
    response = await parts_of(request).apis.get(who.user, "router", "/v1/notifications", params)
    if not response.is_success:
        raise UpstreamUnavailable(f"router: {response.status_code}")
    page = response.json()
    return render(
        request,
        "notifications/list.html",
        who,
        items=page["items"],
        next_cursor=page.get("next_cursor"),
        unread=unread,
        known_kinds=KINDS,
    )


@router.get(
    "/notifications/unread-count",
    summary="Signed-in users: how many of their notifications are unread (the tray's badge)",
)
async def unread_count(request: Request, who: SignedIn = Depends(signed_in)) -> Response:
    response = await parts_of(request).apis.get(
        who.user, "router", "/v1/notifications", {"unread": True, "limit": COUNT_CAP}
    )
    if not response.is_success:
        raise UpstreamUnavailable(f"router: {response.status_code}")
    page = response.json()
    return JSONResponse(
        {"unread": len(page["items"]), "more": page.get("next_cursor") is not None},
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "/notifications/{notification_id}/read",
    summary="Signed-in users: mark one of their own notifications read (a form: back to the "
    "list; a script: the notification as JSON)",
)
async def mark_read(
    request: Request,
    notification_id: uuid.UUID,
    who: SignedIn = Depends(csrf_checked),
    next_url: str = Form(default="/notifications", alias="next", max_length=500),
) -> Response:
    response = await parts_of(request).apis.request(
        who.user, "router", "POST", f"/v1/notifications/{notification_id}/read"
    )
    wants_json = "application/json" in request.headers.get("accept", "")
    if response.status_code == 404:
        if wants_json:
            return JSONResponse({"title": "Not Found", "status": 404}, status_code=404)
        return render(
            request, "error.html", who, status_code=404, message="notifications.not_found"
        )
    if not response.is_success:
        raise UpstreamUnavailable(f"router: {response.status_code}")
    if wants_json:
        return JSONResponse(response.json())
    target = next_url if next_url in _BACK else "/notifications"
    return RedirectResponse(target, status_code=303)
