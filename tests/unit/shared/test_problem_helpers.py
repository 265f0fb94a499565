"""The problem helpers every service shares: get-or-404, the OpenAPI responses, and the pure
models importing no web framework (domain code may raise them)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ccshared.problem_handlers import problem_responses
from ccshared.problems import PROBLEM_JSON, NotFound, ProblemDetails, found_or_404


def test_found_or_404_returns_what_was_found() -> None:
    row = {"id": 1}
    assert found_or_404(row, "No such row.") is row


def test_found_or_404_raises_a_404_saying_what_is_missing() -> None:
    with pytest.raises(NotFound) as raised:
        found_or_404(None, "No such webhook subscription.")
    assert raised.value.status == 404
    assert raised.value.detail == "No such webhook subscription."


def test_an_empty_result_that_is_not_none_is_found() -> None:
    assert found_or_404([], "No rows.") == []


def test_problem_responses_document_each_status_as_problem_json() -> None:
    responses = problem_responses({404: "No such thing", 422: "Invalid"})
    assert responses[404] == {
        "model": ProblemDetails,
        "content": {PROBLEM_JSON: {}},
        "description": "No such thing",
    }
    assert responses[422]["description"] == "Invalid"


def test_problem_models_import_no_web_framework_or_database() -> None:
    code = (
        "import sys, ccshared.problems; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
