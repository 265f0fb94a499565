"""Problem details at the HTTP edge: FastAPI's exception handlers answer every error as
`application/problem+json`, and `problem_responses` documents them in OpenAPI. The models are
`ccshared.problems` (no web framework there, so domain code may raise them)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ccshared.conflicts import is_transient_conflict
from ccshared.logging import correlation_id
from ccshared.problems import (
    PROBLEM_BASE,
    PROBLEM_JSON,
    SLUGS,
    FieldError,
    Problem,
    ProblemDetails,
    field_errors,
)


def problem_responses(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """An endpoint's `responses=`: each status it may answer, with its description, documented
    as a problem details body."""
    return {
        code: {"model": ProblemDetails, "content": {PROBLEM_JSON: {}}, "description": text}
        for code, text in codes.items()
    }


def problem_response(
    request: Request | None,
    *,
    status: int,
    slug: str | None,
    detail: str | None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = ProblemDetails(
        type=PROBLEM_BASE + slug if slug else "about:blank",
        title=title,
        status=status,
        detail=detail,
        instance=str(request.url.path) if request is not None else instance,
        errors=errors,
        correlation_id=correlation_id.get(),
    ).model_dump(exclude_none=True)
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def response_for_problem(exc: Problem, instance: str | None) -> JSONResponse:
    return problem_response(
        None,
        status=exc.status,
        slug=exc.slug,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
        instance=instance,
    )


def response_for_invalid_body(exc: ValidationError, instance: str | None) -> JSONResponse:
    """A model validated by hand from the body failed: 422 naming each field under `body.`."""
    errors = field_errors(list(exc.errors()), prefix=("body",))
    return problem_response(
        None,
        status=422,
        slug="validation-error",
        detail="The request is invalid at: " + ", ".join(e.field for e in errors[:5]),
        errors=errors,
        instance=instance,
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return response_for_problem(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(list(exc.errors()))
        fields = ", ".join(e.field for e in errors[:5])
        return problem_response(
            request,
            status=422,
            slug="validation-error",
            detail=f"The request is invalid at: {fields}" if fields else "The request is invalid",
            errors=errors,
        )

    @app.exception_handler(ValidationError)
    async def _invalid_model(request: Request, exc: ValidationError) -> JSONResponse:
        return response_for_invalid_body(exc, request.url.path)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if not is_transient_conflict(exc):
            raise exc  # the 500 of last resort (logged with the correlation id)
        return problem_response(
            request,
            status=503,
            slug="conflict-retry",
            detail="A concurrent change got in the way and nothing was changed; retry.",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            request,
            status=exc.status_code,
            slug=SLUGS.get(exc.status_code),
            detail=str(exc.detail) if exc.detail else None,
            headers=dict(exc.headers) if exc.headers else None,
        )
