from typing import ClassVar

import pytest
from pydantic import Field, ValidationError

from ccshared.inputs import RequestBody


class Patch(RequestBody):
    NOT_NULL: ClassVar[frozenset[str]] = frozenset({"name"})
    name: str | None = None
    note: str | None = None
    tags: dict[str, list[str]] = Field(default_factory=dict)


def _fields(exc: ValidationError) -> list[tuple[object, ...]]:
    return [e["loc"] for e in exc.errors()]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "a\x00b"}, ("name",)),
        ({"tags": {"k": ["ok", "bad\x00"]}}, ("tags",)),
        ({"tags": {"\x00": []}}, ("tags",)),
        ({"name": None}, ("name",)),
        ({"surprise": 1}, ("surprise",)),
    ],
)
def test_unstorable_input_is_refused_naming_the_field(body: dict[str, object], loc: tuple) -> None:
    with pytest.raises(ValidationError) as info:
        Patch.model_validate(body)
    assert loc in _fields(info.value)


def test_left_out_and_nullable_fields_pass() -> None:
    assert Patch.model_validate({}).name is None
    assert Patch.model_validate({"note": None, "name": "投诉 queue"}).name == "投诉 queue"
