"""Survey links (the page a customer opens and answers) and the survey of a ticket.

A ticket's survey (customer, answer, comment) is a supervisor's, and the agent's the survey
credits (the ticket's assignee at resolution, or its owner if it had none); to any other agent
it is a 404, as if there were none. Webhook delivery logs (their errors name hosts and ports
inside the network) are shown to supervisors only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.auth import Principal
from ccshared.conflicts import in_transaction
from ccshared.problem_handlers import problem_responses
from ccshared.problems import FieldError, NotFound, Problem, found_or_404
from ccshared.user_auth import AUTH_RESPONSES, principal
from feedback.api.deps import engine_of, settings_of, wants
from feedback.api.pages import survey_page, thanks_page
from feedback.api.schemas import (
    AnswerIn,
    AnswerStored,
    AnswerView,
    DeliveryView,
    QuestionView,
    SurveyView,
    TicketSurveyView,
)
from feedback.db.answers import AnswerWindowClosed, StoredAnswer, store_answer
from feedback.db.surveys import survey_of_ticket, survey_with_answer
from feedback.db.webhooks import deliveries_of_survey
from feedback.domain.answers import Answer, InvalidAnswer
from feedback.domain.texts import SurveyTexts, texts_for
from feedback.domain.tokens import ExpiredToken, InvalidToken, read_token

router = APIRouter(prefix="/v1", tags=["surveys"])

Token = Annotated[str, Path(description="The signed token from the survey link", max_length=200)]
_TOKEN_PROBLEMS = {
    403: "The token was not issued by this service (tampered or malformed)",
    404: "No such survey",
    410: "The survey link has expired",
}


def _survey_id(request: Request, token: str) -> uuid.UUID:
    secret = settings_of(request).token_secret.get_secret_value().encode()
    try:
        return read_token(token, secret, datetime.now(UTC))
    except ExpiredToken:
        raise Problem("This survey link has expired.", status=410, slug="survey-expired") from None
    except InvalidToken:
        raise Problem(
            "This survey link is not valid.", status=403, slug="invalid-survey-token"
        ) from None


def _answer_view(survey: dict[str, Any]) -> AnswerView | None:
    if survey["first_answered_at"] is None:
        return None
    return AnswerView(
        csat=survey["csat"],
        nps=survey["nps"],
        solved_first_contact=survey["solved_first_contact"],
        comment=survey["comment"],
        first_answered_at=survey["first_answered_at"],
        updated_at=survey["answer_updated_at"],
        revisions=survey["revisions"],
    )


def _questions(texts: SurveyTexts) -> list[QuestionView]:
    return [
        QuestionView(
            id="csat", text=texts.csat, kind="scale", min=1, max=5,
            min_label=texts.csat_low, max_label=texts.csat_high,
        ),
        QuestionView(
            id="nps", text=texts.nps, kind="scale", min=0, max=10,
            min_label=texts.nps_low, max_label=texts.nps_high,
        ),
        QuestionView(id="solved_first_contact", text=texts.solved, kind="yes_no"),
        QuestionView(id="comment", text=texts.comment, kind="text"),
    ]  # fmt: skip


def _may_answer(survey: dict[str, Any], window: timedelta, now: datetime) -> bool:
    first = survey["first_answered_at"]
    return first is None or now - first <= window


@router.get(
    "/surveys/{token}",
    summary="The survey page (HTML) or its questions (JSON)",
    description=(
        "Opened from the link sent to the customer. Answers an accessible HTML form by "
        "default; `Accept: application/json` gives the questions for integrations."
    ),
    response_model=SurveyView,
    responses={
        200: {"content": {"text/html": {}}, "description": "The page or the questions"},
        **problem_responses(_TOKEN_PROBLEMS),
    },
)
async def get_survey(request: Request, token: Token) -> Response:
    survey_id = _survey_id(request, token)
    async with engine_of(request).connect() as conn:
        survey = found_or_404(await survey_with_answer(conn, survey_id), "No such survey.")
    texts = texts_for(survey["language"])
    if wants(request, "application/json"):
        view = SurveyView(
            survey_id=survey["id"],
            ticket_id=survey["ticket_id"],
            language=texts.lang,
            title=texts.title,
            intro=texts.intro,
            expires_at=survey["expires_at"],
            questions=_questions(texts),
            answer=_answer_view(survey),
            may_answer=_may_answer(
                survey,
                timedelta(seconds=settings_of(request).answer_edit_window_s),
                datetime.now(UTC),
            ),
        )
        return JSONResponse(view.model_dump(mode="json"))
    return HTMLResponse(survey_page(texts, survey if survey["first_answered_at"] else None))


def _form_fields(raw: bytes) -> dict[str, Any]:
    """An HTML form post: empty fields mean "not answered"."""
    fields = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=False)
    return {name: values[-1] for name, values in fields.items()}


async def _parse_answer(request: Request) -> tuple[AnswerIn, bool]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if media_type == "application/x-www-form-urlencoded":
        data, from_form = _form_fields(raw), True
    elif media_type in ("application/json", "") or media_type.endswith("+json"):
        try:
            data, from_form = orjson.loads(raw or b"{}"), False
        except orjson.JSONDecodeError:
            raise Problem(
                "The body is not valid JSON.",
                status=422,
                slug="validation-error",
                errors=[FieldError(field="body", message="invalid JSON", type="json_invalid")],
            ) from None
    else:
        raise Problem(
            f"Send the answer as a form or as application/json, not {media_type}.",
            status=415,
            slug="unsupported-media-type",
        )
    if not isinstance(data, dict):
        raise Problem(
            "The answer must be an object.",
            status=422,
            slug="validation-error",
            errors=[FieldError(field="body", message="must be an object", type="dict_type")],
        )
    # A ValidationError becomes a 422 problem naming each field as body.<field>.
    return AnswerIn.model_validate(data), from_form


@router.post(
    "/surveys/{token}",
    summary="Answer the survey (form or JSON)",
    description=(
        "Stores CSAT (1–5), NPS (0–10), solved on first contact (yes/no) and a comment. "
        "Answering again within the edit window updates the answer (it is never counted "
        "twice); after it, 409. A detractor answer publishes `followup.requested`; top scores "
        "with a comment publish `praise.recorded`."
    ),
    response_model=AnswerStored,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AnswerIn"}},
                "application/x-www-form-urlencoded": {
                    "schema": {"$ref": "#/components/schemas/AnswerIn"}
                },
            },
            "required": True,
        }
    },
    responses={
        200: {"content": {"text/html": {}}, "description": "Stored (a thank-you page for forms)"},
        **problem_responses(
            {
                **_TOKEN_PROBLEMS,
                409: "Answered before, and the window for changing the answer has passed",
                415: "Neither a form nor JSON",
                422: "Invalid answer; `errors` names each field at fault",
            }
        ),
    },
)
async def answer_survey(request: Request, token: Token) -> Response:
    survey_id = _survey_id(request, token)
    body, from_form = await _parse_answer(request)
    try:
        answer = Answer(body.csat, body.nps, body.solved_first_contact, body.comment)
    except InvalidAnswer as exc:
        raise Problem(
            f"The request is invalid at: body.{exc.field}",
            status=422,
            slug="validation-error",
            errors=[FieldError(field=f"body.{exc.field}", message=exc.message, type="value_error")],
        ) from None
    settings = settings_of(request)

    async def store(conn: AsyncConnection) -> tuple[dict[str, Any], StoredAnswer]:
        survey = await survey_with_answer(conn, survey_id, for_update=True)
        if survey is None or survey["status"] != "sent":
            raise NotFound("No such survey.")
        try:
            stored = await store_answer(
                conn,
                survey,
                answer,
                now=datetime.now(UTC),
                edit_window=timedelta(seconds=settings.answer_edit_window_s),
            )
        except AnswerWindowClosed:
            raise Problem(
                "This survey was answered already; the answer can no longer be changed.",
                status=409,
                slug="already-answered",
            ) from None
        return survey, stored

    # The answer updates the KPI rollups, which concurrent writers share: a lost race is done
    # again here rather than shown to the customer.
    survey, stored = await in_transaction(engine_of(request), store)
    texts = texts_for(survey["language"])
    if from_form and not wants(request, "application/json"):
        return HTMLResponse(thanks_page(texts, stored.updated))
    result = AnswerStored(
        survey_id=survey_id,
        revision=stored.revision,
        updated=stored.updated,
        follow_up_requested=stored.follow_up_requested,
        praise_recorded=stored.praise_recorded,
        message=texts.updated if stored.updated else texts.thanks,
    )
    return JSONResponse(result.model_dump(mode="json"))


@router.get(
    "/tickets/{ticket_id}/survey",
    summary="The survey of a ticket: status, answer and webhook deliveries (supervisors; "
    "an agent, the surveys of the tickets they resolved, without deliveries)",
    response_model=TicketSurveyView,
    responses=problem_responses(
        {
            404: "The ticket has no survey (not resolved yet, or unknown), or the caller is an "
            "agent the survey does not credit"
        }
    )
    | AUTH_RESPONSES,
)
async def ticket_survey(
    request: Request, ticket_id: uuid.UUID, user: Principal = Depends(principal)
) -> TicketSurveyView:
    async with engine_of(request).connect() as conn:
        survey_id = await survey_of_ticket(conn, ticket_id)
        survey = None if survey_id is None else await survey_with_answer(conn, survey_id)
        if survey is None or not (user.is_supervisor or survey["agent_id"] == user.subject):
            raise NotFound("This ticket has no survey.")  # the same for one not theirs
        deliveries = await deliveries_of_survey(conn, survey["id"]) if user.is_supervisor else None
    return TicketSurveyView(
        survey_id=survey["id"],
        ticket_id=survey["ticket_id"],
        customer_id=survey["customer_id"],
        channel=survey["channel"],
        language=survey["language"],
        status=survey["status"],
        suppression_reason=survey["suppression_reason"],
        due_at=survey["due_at"],
        sent_at=survey["sent_at"],
        expires_at=survey["expires_at"],
        reminded_at=survey["reminded_at"],
        answer=_answer_view(survey),
        deliveries=None
        if deliveries is None
        else [DeliveryView.model_validate(d) for d in deliveries],
    )
