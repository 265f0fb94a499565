"""The admin forms' pure parts: the APIs' 422 errors by field or by step, the line of a step in
the JSON document, and what people type turned into documents."""

from __future__ import annotations

import json

import pytest

from console.domain.admin_forms import (
    FormError,
    field_errors,
    line_of_item,
    parse_json_document,
    skill_levels,
    words,
)


def test_errors_of_a_list_document_go_to_their_item_and_field() -> None:
    problem = {
        "detail": "invalid",
        "errors": [
            {"field": "body.steps.2.condition", "message": "bad regex"},
            {"field": "body.steps.0", "message": "whole step"},
            {"field": "body.name", "message": "too short"},
            {"field": "body", "message": "not an object"},
        ],
    }
    found = field_errors(problem, items="steps")
    assert found.of_item(2, "condition") == ["bad regex"]
    assert found.of_item(0, "") == ["whole step"]
    assert found.of("name") == ["too short"]
    assert found.general == ["not an object"]
    assert ("steps.2.condition", "bad regex") in found.all()
    assert ("steps.0", "whole step") in found.all()


def test_a_field_named_body_inside_the_body_keeps_its_name() -> None:
    found = field_errors({"errors": [{"field": "body.body", "message": "unknown placeholder"}]})
    assert found.of("body") == ["unknown placeholder"]
    assert found.general == []


def test_pydantic_loc_lists_and_query_fields_are_read_too() -> None:
    found = field_errors({"errors": [{"loc": ["query", "to"], "msg": "before from"}]})
    assert found.of("to") == ["before from"]


def test_a_problem_without_field_errors_shows_its_detail() -> None:
    assert field_errors({"detail": "No policy 'x'."}).general == ["No policy 'x'."]


def test_the_line_of_each_step_is_found_in_the_document_as_typed() -> None:
    text = json.dumps({"steps": [{"id": "a", "x": "{not a brace}"}, {"id": "b"}]}, indent=2)
    lines = text.splitlines()
    first, second = line_of_item(text, "steps", 0), line_of_item(text, "steps", 1)
    assert first is not None
    assert second is not None
    assert lines[first - 1].strip() == "{"
    assert '"a"' in lines[first]
    assert lines[second - 1].strip() == "{"
    assert '"b"' in lines[second]
    assert line_of_item(text, "steps", 2) is None
    assert line_of_item(text, "rules", 0) is None


def test_a_json_syntax_error_names_line_and_column() -> None:
    with pytest.raises(FormError, match=r"^line 2, column \d+"):
        parse_json_document('{\n  "steps": [,]\n}')


def test_skills_and_lists_are_read_as_people_type_them() -> None:
    assert skill_levels("complaints:4, vip=3 billing") == {"complaints": 4, "vip": 3, "billing": 1}
    assert words(" a, b，c  d ") == ["a", "b", "c", "d"]
    with pytest.raises(FormError) as refused:
        skill_levels("vip:high")
    assert refused.value.field == "skills"
