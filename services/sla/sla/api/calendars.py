"""Business calendars: working hours per weekday in a time zone, holidays (also imported from
iCalendar), or 24x7."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from ccshared.problem_handlers import problem_responses
from ccshared.problems import Conflict, NotFound, Problem, found_or_404
from ccshared.user_auth import AUTH_RESPONSES, reads_open_writes_supervised
from sla.api.deps import configs, engine_of
from sla.api.errors import invalid
from sla.api.schemas import CalendarView, HolidayImport
from sla.db import calendars as db
from sla.domain.calendar import BusinessCalendar, InvalidCalendar
from sla.domain.definitions import CalendarCreate, CalendarDoc, calendar_doc, calendar_from_doc
from sla.domain.ical import holidays_from_ical

router = APIRouter(
    prefix="/v1/calendars",
    tags=["calendars"],
    dependencies=[Depends(reads_open_writes_supervised)],
    responses=AUTH_RESPONSES,
)

CalendarId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
TEXT_CALENDAR = "text/calendar"

_ERRORS = problem_responses(
    {
        404: "No such calendar",
        409: "A calendar with this id exists, or a policy uses it",
        415: "The holidays import takes text/calendar",
        422: "Invalid calendar; `errors` names each field at fault",
    }
)


def _view(row: Any) -> CalendarView:
    return CalendarView(
        **CalendarDoc.model_validate(row.body).model_dump(),
        id=row.id,
        revision=row.revision,
        updated_at=row.updated_at,
    )


def _validated(calendar_id: str, doc: CalendarDoc) -> BusinessCalendar:
    try:
        return calendar_from_doc(calendar_id, doc)
    except InvalidCalendar as exc:
        raise invalid(exc) from None


@router.get("", response_model=list[CalendarView], summary="Every calendar")
async def list_calendars(request: Request) -> list[CalendarView]:
    async with engine_of(request).connect() as conn:
        return [_view(r) for r in await db.all_calendars(conn)]


@router.post("", status_code=201, response_model=CalendarView, responses=_ERRORS)
async def create_calendar(body: CalendarCreate, request: Request) -> CalendarView:
    doc = CalendarDoc.model_validate(body.model_dump(exclude={"id"}))
    calendar = _validated(body.id, doc)
    async with engine_of(request).begin() as conn:
        row = await db.create_calendar(conn, body.id, calendar_doc(calendar))
        if row is None:
            raise Conflict(f"Calendar {body.id!r} exists already; change it with PUT.")
    configs(request).invalidate()
    return _view(row)


@router.get("/{calendar_id}", response_model=CalendarView, responses=_ERRORS)
async def get_calendar(calendar_id: CalendarId, request: Request) -> CalendarView:
    async with engine_of(request).connect() as conn:
        row = found_or_404(
            await db.get_calendar(conn, calendar_id), f"No calendar {calendar_id!r}."
        )
    return _view(row)


@router.put(
    "/{calendar_id}",
    response_model=CalendarView,
    summary="Replace a calendar",
    description="Running clocks count by the new definition from now on.",
    responses=_ERRORS,
)
async def replace_calendar(
    calendar_id: CalendarId, body: CalendarDoc, request: Request
) -> CalendarView:
    calendar = _validated(calendar_id, body)
    async with engine_of(request).begin() as conn:
        row = await db.update_calendar(conn, calendar_id, calendar_doc(calendar))
    if row is None:
        raise NotFound(f"No calendar {calendar_id!r}; create it with POST /v1/calendars.")
    configs(request).invalidate()
    return _view(row)


@router.post(
    "/{calendar_id}/holidays",
    response_model=HolidayImport,
    summary="Import holidays from an iCalendar file (text/calendar)",
    description=(
        "Every local date a VEVENT touches becomes a holiday; dates already there stay. "
        "Recurring events are refused: list each holiday as its own event."
    ),
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {TEXT_CALENDAR: {"schema": {"type": "string"}}},
        }
    },
)
async def import_holidays(calendar_id: CalendarId, request: Request) -> HolidayImport:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != TEXT_CALENDAR:
        raise Problem(
            f"Send the holidays as {TEXT_CALENDAR}, not {media_type or 'nothing'}.",
            status=415,
            slug="unsupported-media-type",
        )
    raw = await request.body()
    async with engine_of(request).begin() as conn:
        row = found_or_404(
            await db.lock_calendar(conn, calendar_id), f"No calendar {calendar_id!r}."
        )
        doc = CalendarDoc.model_validate(row.body)
        try:
            imported = holidays_from_ical(raw, doc.timezone)
        except InvalidCalendar as exc:
            raise invalid(exc) from None
        known = set(doc.holidays)
        doc = doc.model_copy(update={"holidays": sorted(known | imported)})
        calendar = _validated(calendar_id, doc)
        saved = await db.update_calendar(conn, calendar_id, calendar_doc(calendar))
    configs(request).invalidate()
    return HolidayImport(calendar=_view(saved), imported=len(imported), added=len(imported - known))


@router.delete(
    "/{calendar_id}", status_code=204, summary="Delete a calendar no policy uses", responses=_ERRORS
)
async def delete_calendar(calendar_id: CalendarId, request: Request) -> Response:
    async with engine_of(request).begin() as conn:
        if await db.calendar_in_use(conn, calendar_id):
            raise Conflict(f"A policy (or one of its versions) uses calendar {calendar_id!r}.")
        if not await db.delete_calendar(conn, calendar_id):
            raise NotFound(f"No calendar {calendar_id!r}.")
    configs(request).invalidate()
    return Response(status_code=204)
