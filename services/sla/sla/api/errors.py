"""Domain validation errors as problem details naming the field at fault."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from ccshared.problems import FieldError, Problem, ProblemDetails
from sla.db.config import ConfigCache
from sla.domain.calendar import InvalidCalendar
from sla.domain.policy import InvalidPolicy
from sla.tracking import TicketTracker

_INDEX = re.compile(r"\[(\d+)\]")


def invalid(exc: InvalidPolicy | InvalidCalendar, prefix: str = "body") -> Problem:
    # The domain writes `escalation[0].level`; the API speaks pydantic's `escalation.0.level`.
    field = prefix + "." + _INDEX.sub(r".\1", exc.field)
    return Problem(
        f"The request is invalid at: {field}: {exc.message}",
        status=422,
        slug="validation-error",
        errors=[FieldError(field=field, message=exc.message, type="value_error")],
    )


def unprocessable(field: str, message: str) -> Problem:
    return Problem(
        f"The request is invalid at: {field}: {message}",
        status=422,
        slug="validation-error",
        errors=[FieldError(field=field, message=message, type="value_error")],
    )


def problems(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "model": ProblemDetails,
            "content": {"application/problem+json": {}},
            "description": text,
        }
        for code, text in codes.items()
    }


def configs(request: Request) -> ConfigCache:
    cache: ConfigCache = request.app.state.runtime.extras["configs"]
    return cache


def tracker(request: Request) -> TicketTracker:
    found: TicketTracker = request.app.state.runtime.extras["tracker"]
    return found
