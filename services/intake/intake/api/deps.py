"""What endpoints reach on the running intake service, typed."""

from __future__ import annotations

from fastapi import Request

from ccshared.service import runtime_of
from intake.bootstrap import IntakeParts, parts_of


def parts(request: Request) -> IntakeParts:
    return parts_of(runtime_of(request.app))
