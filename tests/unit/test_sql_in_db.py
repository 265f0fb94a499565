"""SQL lives only in each service's `db/` (and its `migrations/`): endpoints, handlers, consumers
and tasks call named functions of `db/<context>.py` and hold no statement of their own.

The check reads every module of services/*/*/ outside `db/` and `migrations/` (ast, nothing is
imported) and reports:
- a call of SQLAlchemy's statement builders (`text`, `select`, `insert`, `update`, `delete`, ...)
  imported from `sqlalchemy` (`from sqlalchemy import text`, `sa.text`, `sqlalchemy.text`);
- a SQL string (it starts with SELECT, INSERT, UPDATE, DELETE, WITH, ...) passed to `execute`,
  `executemany`, `exec_driver_sql`, `fetch`, `fetchrow`, `fetchval`, `prepare`, `cursor` or
  `copy_from_query`, written there or through a name bound to it in the module or the function;
- any other string shaped like a statement (`SELECT ... FROM`, `INSERT INTO`, `UPDATE x SET`,
  `DELETE FROM`, `WITH x AS (`), keywords in capitals, wherever it stands (docstrings aside).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Modules (relative to services/) that may keep SQL outside db/, each with the reason. Empty:
# every statement has its place in a db/ module. An entry needs a reason a reviewer accepts.
ALLOWED: dict[str, str] = {}

_SQLALCHEMY_MODULES = ("sqlalchemy", "sqlalchemy.sql", "sqlalchemy.sql.expression")
_BUILDERS = frozenset(
    {
        "text",
        "select",
        "insert",
        "update",
        "delete",
        "literal_column",
        "exists",
        "union",
        "union_all",
        "values",
        "table",
        "column",
    }
)
_RUNNERS = frozenset(
    {
        "execute",
        "executemany",
        "exec_driver_sql",
        "fetch",
        "fetchrow",
        "fetchval",
        "fetchmany",
        "prepare",
        "cursor",
        "copy_from_query",
    }
)
_SQL_START = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|MERGE|TRUNCATE|CREATE|ALTER|DROP|LOCK|COPY|VALUES|"
    r"CALL|NOTIFY|LISTEN|SET|RESET|DO)\b",
    re.IGNORECASE,
)
_SQL_SHAPE = re.compile(
    r"\s*(SELECT\b.*\bFROM\b|INSERT\s+INTO\b|UPDATE\s+\w+(\s+\w+)?\s+SET\b|DELETE\s+FROM\b|"
    r"WITH\s+\w+(\s*\([^)]*\))?\s+AS\s*\(|MERGE\s+INTO\b|TRUNCATE\s+\w)",
    re.DOTALL,
)


@dataclass(frozen=True, order=True)
class Finding:
    path: str  # relative to the services directory
    line: int
    why: str

    def __str__(self) -> str:
        return f"services/{self.path}:{self.line}: {self.why}"


def _string_start(node: ast.AST | None) -> str | None:
    """The leading literal text of a string expression: "..." , f"...", "a" + b, "a" % b."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        first = node.values[0] if node.values else None
        return str(first.value) if isinstance(first, ast.Constant) else ""
    if isinstance(node, ast.BinOp):
        return _string_start(node.left)
    return None


class _Module(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: set[Finding] = set()
        self.builder_names: set[str] = set()  # `from sqlalchemy import text [as t]`
        self.module_names: set[str] = set()  # `import sqlalchemy [as sa]`
        self.strings: dict[str, ast.AST] = {}  # names bound to strings, module and functions
        self.docstrings: set[int] = set()

    def report(self, node: ast.AST, why: str) -> None:
        self.findings.add(Finding(self.path, getattr(node, "lineno", 0), why))

    def visit_Module(self, node: ast.Module) -> None:
        for scope in [node, *ast.walk(node)]:
            body = getattr(scope, "body", None)
            if (
                isinstance(
                    scope, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                )
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
            ):
                self.docstrings.add(id(body[0].value))
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign | ast.AnnAssign) and _string_start(sub.value) is not None:
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                for target in targets:
                    if isinstance(target, ast.Name) and sub.value is not None:
                        self.strings[target.id] = sub.value
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in _SQLALCHEMY_MODULES:
                self.module_names.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            if module.startswith("sqlalchemy") and alias.name in _BUILDERS:
                self.builder_names.add(alias.asname or alias.name)
            if f"{module}.{alias.name}" in _SQLALCHEMY_MODULES:
                self.module_names.add(alias.asname or alias.name)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.builder_names:
            self.report(node, f"sqlalchemy {func.id}(...) outside db/")
        elif isinstance(func, ast.Attribute) and func.attr in _BUILDERS:
            owner = func.value
            while isinstance(owner, ast.Attribute):
                owner = owner.value
            if isinstance(owner, ast.Name) and owner.id in self.module_names:
                self.report(node, f"sqlalchemy {func.attr}(...) outside db/")
        if isinstance(func, ast.Attribute) and func.attr in _RUNNERS:
            for arg in [*node.args[:1], *(k.value for k in node.keywords if k.arg == "query")]:
                value = self.strings.get(arg.id) if isinstance(arg, ast.Name) else arg
                start = _string_start(value)
                if start is not None and _SQL_START.match(start):
                    self.report(node, f"SQL passed to {func.attr}(...) outside db/")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if (
            isinstance(node.value, str)
            and id(node) not in self.docstrings
            and _SQL_SHAPE.match(node.value)
        ):
            self.report(node, "a SQL statement written outside db/")

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        # The whole f-string, each replacement field read as a name: f"SELECT {c} FROM t".
        whole = "".join(str(v.value) if isinstance(v, ast.Constant) else "x" for v in node.values)
        if id(node) not in self.docstrings and _SQL_SHAPE.match(whole):
            self.report(node, "a SQL statement written outside db/")
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                self.visit(value)


def checked_modules(services: Path) -> list[Path]:
    """Every module of services/*/*/ but those of its db/ and migrations/."""
    return sorted(
        path
        for path in services.glob("*/*/**/*.py")
        if not {"db", "migrations"} & set(path.relative_to(services).parts[2:-1])
    )


def sql_outside_db(services: Path) -> list[Finding]:
    findings: set[Finding] = set()
    for path in checked_modules(services):
        relative = path.relative_to(services).as_posix()
        module = _Module(relative)
        module.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        findings |= module.findings
    return sorted(f for f in findings if f.path not in ALLOWED)


def test_every_service_keeps_its_sql_in_db() -> None:
    services = ROOT / "services"
    names = {p.relative_to(services).parts[0] for p in checked_modules(services)}
    assert {"intake", "router", "sla", "feedback", "console"} <= names

    findings = sql_outside_db(services)

    assert not findings, "SQL outside db/ (move it into a named function of db/<context>.py):\n" + (
        "\n".join(map(str, findings))
    )


def test_every_allowed_module_still_holds_sql_and_says_why() -> None:
    services = ROOT / "services"
    for path, reason in ALLOWED.items():
        assert len(reason.split()) >= 5, f"{path}: say why its SQL may stay outside db/"
        module = _Module(path)
        module.visit(ast.parse((services / path).read_text(encoding="utf-8")))
        assert module.findings, f"{path} holds no SQL now: take it off the list"


_PLANTED = '''\
"""A handler that forgot the rule."""
import sqlalchemy as sa
from sqlalchemy import text as sql_text, select
from sqlalchemy.dialects.postgresql import insert

_MARK = sql_text("UPDATE tickets SET status = 'open' WHERE id = :id")
_BY_NAME = """
    SELECT id FROM tickets WHERE id = $1
"""
_WITH = "WITH recent AS (SELECT 1) SELECT * FROM recent"


async def handle(conn, pool, table, ticket_id):
    await conn.execute(sa.text("DELETE FROM tickets WHERE id = :id"), {"id": ticket_id})
    await pool.fetchrow(_BY_NAME, ticket_id)
    await pool.fetch(f"select * from {table} where id = $1", ticket_id)
    await pool.executemany("insert into t values ($1)", [(1,)])
    await conn.execute(select(table))
    await conn.execute(insert(table).values(id=1))
    query = "DELETE FROM tickets " + "WHERE id = $1"
    await pool.execute(query, ticket_id)
    await pool.fetchval(_WITH)
    return "Update the ticket", "Select a queue", "with care"
'''
_EXPECTED = {
    (6, "sqlalchemy sql_text(...) outside db/"),
    (6, "a SQL statement written outside db/"),
    (7, "a SQL statement written outside db/"),
    (10, "a SQL statement written outside db/"),
    (14, "sqlalchemy text(...) outside db/"),
    (14, "a SQL statement written outside db/"),
    (15, "SQL passed to fetchrow(...) outside db/"),
    (16, "SQL passed to fetch(...) outside db/"),
    (17, "SQL passed to executemany(...) outside db/"),
    (18, "sqlalchemy select(...) outside db/"),
    (19, "sqlalchemy insert(...) outside db/"),
    (20, "a SQL statement written outside db/"),
    (21, "SQL passed to execute(...) outside db/"),
    (22, "SQL passed to fetchval(...) outside db/"),
}


@pytest.mark.parametrize("where", ["api/tickets.py", "handlers/tickets.py", "cli.py"])
def test_the_check_reports_sql_planted_outside_db(tmp_path: Path, where: str) -> None:
    module = tmp_path / "toy" / "toy" / where
    module.parent.mkdir(parents=True)
    module.write_text(_PLANTED)

    found = {(f.line, f.why) for f in sql_outside_db(tmp_path)}

    assert found == _EXPECTED
    assert {f.path for f in sql_outside_db(tmp_path)} == {f"toy/toy/{where}"}


@pytest.mark.parametrize(
    "where", ["db/tickets.py", "db/nested/tickets.py", "migrations/ticket_steps.py"]
)
def test_the_check_leaves_db_and_migrations_alone(tmp_path: Path, where: str) -> None:
    module = tmp_path / "toy" / "toy" / where
    module.parent.mkdir(parents=True)
    module.write_text(_PLANTED)

    assert sql_outside_db(tmp_path) == []


def test_the_check_reads_a_clean_handler_as_clean(tmp_path: Path) -> None:
    module = tmp_path / "toy" / "toy" / "api" / "tickets.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        '"""SELECT tickets FROM the queue: a docstring, not a statement."""\n'
        "from toy.db import tickets as db\n"
        "from toy.domain.text import text\n\n"
        "async def reopen(conn, ticket_id):\n"
        '    """DELETE FROM the docs is fine too."""\n'
        "    text('a local helper called text')\n"
        "    await conn.execute(db.REOPEN, {'id': ticket_id})\n"
        '    return await db.reopen(conn, ticket_id), "Update the ticket", "Delete it"\n'
    )

    assert sql_outside_db(tmp_path) == []
