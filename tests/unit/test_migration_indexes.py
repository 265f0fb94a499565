"""Indexes on tables that already exist are built CONCURRENTLY (issue 15): a plain `CREATE
INDEX` holds a lock that blocks every write to the table for as long as the build takes, on a
table that may hold millions of rows by the time the migration runs. So in every service's
migrations (the shared ones first, as they are applied), an index on a table an earlier
migration created must be `CREATE INDEX CONCURRENTLY`, in a `-- migrate: no-transaction` file,
after a `DROP INDEX CONCURRENTLY IF EXISTS` of the same name (such a file may run again after a
failure, and an interrupted concurrent build leaves an invalid index behind). An index on a
table created in the same file is built on an empty table: plain is fine there. The same holds
for a unique or primary-key constraint added to an existing table (it builds an index): build
the index concurrently, then `ADD CONSTRAINT ... USING INDEX`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ccshared.db import Migration, load_migrations, shared_migrations, split_statements

ROOT = Path(__file__).resolve().parents[2]

# Plain index builds on existing tables from before the rule was checked, each applied and
# left as it is (a migration already applied is never edited; databases have run these).
GRANDFATHERED: dict[tuple[str, str], str] = {
    ("feedback", "0002_exact_percentiles.sql"): (
        "2026-11-25, before the rule (issue 15): ticket_facts was empty on every database then"
    ),
    ("router", "0003_offers_by_ticket.sql"): (
        "2026-11-25, before the rule (issue 15): offers was empty on every database then"
    ),
    ("router", "0008_agent_status.sql"): (
        "2026-12-03 11:12, after the rule (09:44) but before this check: a partial index on "
        "agents, one row per agent (tens to a few thousand rows), built in milliseconds; "
        "applied on the development databases, so left as it is rather than edited"
    ),
}

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_NAME = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)(?:\.(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*))?'
_CREATE_TABLE = re.compile(
    rf"^CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({_NAME})", re.IGNORECASE
)
_CREATE_INDEX = re.compile(
    r"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?P<concurrently>CONCURRENTLY\s+)?"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?(?P<index>{_NAME}\s+)?ON\s+(?:ONLY\s+)?(?P<table>{_NAME})",
    re.IGNORECASE,
)
_DROP_INDEX = re.compile(
    rf"^DROP\s+INDEX\s+CONCURRENTLY\s+IF\s+EXISTS\s+({_NAME})\s*$", re.IGNORECASE
)
_ADD_KEY = re.compile(
    rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<table>{_NAME})\s.*"
    r"\bADD\s+(?:CONSTRAINT\s+\S+\s+)?(?:UNIQUE|PRIMARY\s+KEY|EXCLUDE)\b(?!.*\bUSING\s+INDEX\b)",
    re.IGNORECASE | re.DOTALL,
)


def _plain(name: str) -> str:
    """A table or index name as PostgreSQL would resolve it here (public schema, unquoted)."""
    return name.strip().strip('"').lower().removeprefix("public.")


def violations(migrations: list[Migration], component: str) -> list[str]:
    """What breaks the rule in `migrations`, applied in this order ("<file>: <statement>")."""
    created_before: set[str] = set()
    found = []
    for migration in migrations:
        created_here: set[str] = set()
        dropped: set[str] = set()
        for statement in split_statements(migration.sql):
            code = " ".join(_COMMENTS.sub(" ", statement).split())
            where = f"{component}/{migration.name}: {code[:120]}"
            if table := _CREATE_TABLE.match(code):
                created_here.add(_plain(table.group(1)))
            elif drop := _DROP_INDEX.match(code):
                dropped.add(_plain(drop.group(1)))
            elif index := _CREATE_INDEX.match(code):
                table_name = _plain(index["table"])
                if table_name in created_here or table_name not in created_before:
                    continue  # a new table (or one this check does not know): empty
                if not index["concurrently"]:
                    found.append(f"{where} (not CONCURRENTLY on an existing table)")
                elif migration.transactional:
                    found.append(f"{where} (CONCURRENTLY needs a no-transaction file)")
                elif not index["index"] or _plain(index["index"]) not in dropped:
                    found.append(f"{where} (no DROP INDEX CONCURRENTLY IF EXISTS before it)")
            elif (key := _ADD_KEY.match(code)) and _plain(key["table"]) in created_before:
                found.append(f"{where} (builds an index under lock: use ... USING INDEX)")
        created_before |= created_here
    return found


def _services() -> list[str]:
    return sorted(
        path.parent.name
        for path in ROOT.glob("services/*/*/migrations")
        if path.parent.name == path.parent.parent.name
    )


def test_every_service_with_migrations_is_checked() -> None:
    assert {"intake", "router", "sla", "feedback"} <= set(_services())


@pytest.mark.parametrize("service", _services())
def test_indexes_on_existing_tables_are_built_concurrently(service: str) -> None:
    migrations = shared_migrations() + load_migrations(service, service)
    found = [
        v
        for v in violations(migrations, service)
        if (service, v.split(": ", 1)[0].split("/", 1)[1]) not in GRANDFATHERED
    ]
    assert found == [], "\n".join(found)


def test_grandfathered_migrations_still_exist_and_still_break_the_rule() -> None:
    """An entry that no longer matches anything goes: the list only ever shrinks."""
    for (service, name), reason in GRANDFATHERED.items():
        migrations = shared_migrations() + load_migrations(service, service)
        assert name in [m.name for m in migrations], (service, name)
        broken = [v for v in violations(migrations, service) if f"/{name}: " in v]
        assert broken, f"{service}/{name} is grandfathered ({reason}) but breaks no rule"


def _m(version: int, sql: str) -> Migration:
    return Migration("x", version, f"{version:04d}_m.sql", sql)


FIRST = _m(1, "CREATE TABLE a (n int); CREATE INDEX a_n ON a (n);")


@pytest.mark.parametrize(
    ("later", "problem"),
    [
        ("CREATE INDEX a_n2 ON a (n)", "not CONCURRENTLY"),
        ("CREATE UNIQUE INDEX IF NOT EXISTS a_n2 ON public.a (n)", "not CONCURRENTLY"),
        ("CREATE INDEX CONCURRENTLY a_n2 ON a (n)", "no-transaction"),
        ("-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY a_n2 ON a (n)", "DROP INDEX"),
        ("ALTER TABLE a ADD CONSTRAINT a_u UNIQUE (n)", "USING INDEX"),
        ("ALTER TABLE a ADD PRIMARY KEY (n)", "USING INDEX"),
    ],
)
def test_the_check_finds_an_index_built_under_lock_on_an_existing_table(
    later: str, problem: str
) -> None:
    [found] = violations([FIRST, _m(2, later)], "x")
    assert problem in found
    assert found.startswith("x/0002_m.sql: ")


@pytest.mark.parametrize(
    "later",
    [
        "CREATE TABLE b (n int); CREATE INDEX b_n ON b (n); CREATE UNIQUE INDEX b_u ON b (n)",
        "-- migrate: no-transaction\n"
        "DROP INDEX CONCURRENTLY IF EXISTS a_n2;\n"
        "CREATE INDEX CONCURRENTLY a_n2 ON a (n) WHERE n > 0;",
        "-- migrate: no-transaction\n"
        "DROP INDEX CONCURRENTLY IF EXISTS a_n2;\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS a_n2 ON a (n);\n"
        "ALTER TABLE a ADD CONSTRAINT a_u UNIQUE USING INDEX a_n2;",
        "ALTER TABLE a ADD COLUMN m int; -- CREATE INDEX a_m ON a (m) in a comment",
    ],
)
def test_the_check_accepts_new_tables_and_concurrent_rerunnable_builds(later: str) -> None:
    assert violations([FIRST, _m(2, later)], "x") == []
