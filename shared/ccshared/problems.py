"""RFC 9457 problem details for every 4xx/5xx a service answers: the models, no web framework.

Domain code raises `Problem` subclasses (or its own exceptions mapped at the edge); validation
errors list every field at fault as `errors: [{field, message, type}]`. The FastAPI side (the
exception handlers and the OpenAPI `responses=` helper) is `ccshared.problem_handlers`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, Field

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://contactcenter.dev/problems/"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the field at fault, e.g. body.customer.email")
    message: str
    type: str


class ProblemDetails(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    correlation_id: str | None = None


class Problem(Exception):
    """An error with an HTTP status, a stable type slug and a human explanation."""

    status: int = 400
    slug: str = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        slug: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


class NotFound(Problem):
    status = 404
    slug = "not-found"


class Conflict(Problem):
    status = 409
    slug = "conflict"


T = TypeVar("T")


def found_or_404(value: T | None, detail: str) -> T:
    """The thing looked up, or a 404 saying what is missing: `found_or_404(row, "No such ...")`."""
    if value is None:
        raise NotFound(detail)
    return value


def field_errors(errors: list[Any], prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    out = []
    for err in errors:
        loc = prefix + tuple(err.get("loc", ()))
        out.append(
            FieldError(
                field=".".join(str(p) for p in loc) or "body",
                message=str(err.get("msg", "invalid")),
                type=str(err.get("type", "invalid")),
            )
        )
    return out


SLUGS = {  # the type slug of each status a framework raises without one
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal-error",
    503: "unavailable",
}
