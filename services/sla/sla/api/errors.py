"""Domain validation errors as problem details naming the field at fault."""

from __future__ import annotations

import re

from ccshared.problems import FieldError, Problem
from sla.domain.calendar import InvalidCalendar
from sla.domain.policy import InvalidPolicy

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
