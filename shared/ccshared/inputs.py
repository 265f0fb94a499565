"""Rules every request body of every service obeys, on top of its own model."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_nul(v) for v in value)
    return False


class RequestBody(BaseModel):
    """Unknown fields are errors, and no text may hold a NUL character (PostgreSQL cannot store
    one: unchecked, it would surface as a 500 instead of a 422 naming the field).

    For partial updates, list in `NOT_NULL` the optional fields whose columns cannot hold null:
    such a field may be left out, but an explicit null is a 422 naming it.
    """

    model_config = ConfigDict(extra="forbid")
    NOT_NULL: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.NOT_NULL:
            raise PydanticCustomError("null_not_allowed", "may be left out but not set to null")
        if _has_nul(value):
            raise PydanticCustomError("nul_character", "must not contain NUL characters")
        return value
