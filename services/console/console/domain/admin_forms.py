"""The admin screens' forms: what a person types turned into the APIs' documents, and the
APIs' 422 field errors turned into messages beside the field (or step, or rule) they name.
Pure: no request, no HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_INDEXED = re.compile(r"^(?P<name>[a-z_]+)\.(?P<index>\d+)(?:\.(?P<rest>.+))?$")


class FormError(ValueError):
    """A form value the console cannot turn into the API's document (before any call)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass
class FieldErrors:
    """Messages by field (`name`, `skills`, `capacity.chat`), and for documents with a list
    (`steps`, `rules`), by item index and field; `general` for the rest."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    items: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)
    items_name: str = ""

    def __bool__(self) -> bool:
        return bool(self.fields or self.items or self.general)

    def of(self, name: str) -> list[str]:
        return self.fields.get(name, [])

    def of_item(self, index: int, name: str) -> list[str]:
        return self.items.get(index, {}).get(name, [])

    def all(self) -> list[tuple[str, str]]:
        """Every (field, message), for the list at the top of a form."""
        found = [(name, m) for name, messages in self.fields.items() for m in messages]
        for index, by_field in sorted(self.items.items()):
            where = f"{self.items_name}.{index}"
            found += [
                (f"{where}.{name}".rstrip("."), m) for name, ms in by_field.items() for m in ms
            ]
        return found + [("", m) for m in self.general]


def field_errors(problem: Mapping[str, Any] | None, *, items: str | None = None) -> FieldErrors:
    """A problem's `errors` (`{field|loc, message}`; fields such as `body.steps.2.condition`)
    by field. `items`: the document's list (`steps`) whose entries are reported by index."""
    found = FieldErrors(items_name=items or "")
    problem = problem or {}
    for error in problem.get("errors") or []:
        where = error.get("field")
        if where is None and isinstance(error.get("loc"), list):
            where = ".".join(str(p) for p in error["loc"])
        message = str(error.get("message") or error.get("msg") or "invalid")
        path = str(where or "")
        if path in ("body", "query", "path"):
            path = ""
        for prefix in ("body.", "query.", "path."):
            if path.startswith(prefix):
                path = path[len(prefix) :]
                break
        indexed = _INDEXED.match(path) if items else None
        if indexed and indexed.group("name") == items:
            by_field = found.items.setdefault(int(indexed.group("index")), {})
            by_field.setdefault(indexed.group("rest") or "", []).append(message)
        elif path:
            found.fields.setdefault(path, []).append(message)
        else:
            found.general.append(message)
    if not found and problem.get("detail"):
        found.general.append(str(problem["detail"]))
    return found


def parse_json_document(text: str) -> Any:
    """The textarea's JSON; a syntax error names its line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormError("document", f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def pretty(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def line_of_item(text: str, items: str, index: int) -> int | None:
    """The line of the textarea where entry `index` of the list `items` starts (1-based),
    when the text parses: each entry is found as the `index`-th `{` opened directly inside
    the list. None when it cannot be told."""
    start = text.find(f'"{items}"')
    if start < 0:
        return None
    bracket = text.find("[", start)
    if bracket < 0:
        return None
    depth = 0
    seen = -1
    in_string = False
    escaped = False
    for position in range(bracket + 1, len(text)):
        char = text[position]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            if depth == 0 and char == "{":
                seen += 1
                if seen == index:
                    return text.count("\n", 0, position) + 1
            depth += 1
        elif char in "}]":
            if depth == 0:
                return None
            depth -= 1
    return None


def words(text: str) -> list[str]:
    """`a, b c` → ["a", "b", "c"]: lists typed in one field (skills, user ids)."""
    return [w for w in re.split(r"[\s,，]+", text.strip()) if w]


def skill_levels(text: str) -> dict[str, int]:
    """`complaints:4, vip:3` (or `complaints=4`) → {"complaints": 4, "vip": 3}; a skill
    without a level is level 1."""
    levels: dict[str, int] = {}
    for item in words(text):
        name, _, level = item.replace("=", ":").partition(":")
        if not name:
            raise FormError("skills", f"{item!r}: a skill needs a name")
        try:
            levels[name] = int(level) if level else 1
        except ValueError:
            raise FormError("skills", f"{item!r}: the level is a number 1–5") from None
    return levels


def skills_text(skills: Mapping[str, int]) -> str:
    return ", ".join(f"{name}:{level}" for name, level in skills.items())


def whole_number(field_name: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise FormError(field_name, "a whole number") from None
