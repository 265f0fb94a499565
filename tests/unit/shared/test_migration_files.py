"""Reading migration files: the no-transaction marker, and splitting such a file into the
statements run one by one (a `;` inside a string, quoted name, comment or dollar-quoted body
does not end a statement)."""

from __future__ import annotations

import pytest

from ccshared.db import Migration, load_migrations, split_statements


def test_a_file_is_one_transaction_unless_it_says_otherwise() -> None:
    assert Migration("x", 1, "0001_a.sql", "CREATE TABLE a (n int);").transactional
    marked = (
        "-- A comment first.\n-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY i ON a (n);"
    )
    assert not Migration("x", 2, "0002_b.sql", marked).transactional
    # Only the marker on a line of its own counts, not the words in a sentence.
    mentioned = "-- Not a -- migrate: no-transaction file.\nCREATE TABLE b (n int);"
    assert Migration("x", 3, "0003_c.sql", mentioned).transactional


def test_every_migration_shipped_today_runs_in_a_transaction_but_the_index_builds() -> None:
    outside = {  # intake: CREATE INDEX CONCURRENTLY
        "0003_integration_scope_indexes.sql",
        "0009_customer_merge_indexes.sql",
    }
    for component, package in [("ccshared", "ccshared"), ("intake", "intake"), ("sla", "sla")]:
        for migration in load_migrations(component, package):
            assert migration.transactional == (migration.name not in outside), migration.name


@pytest.mark.parametrize(
    ("sql", "statements"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT 1;\n\n  SELECT 2  ", ["SELECT 1", "SELECT 2"]),
        ("SELECT 'a;b'; SELECT 'it''s;'", ["SELECT 'a;b'", "SELECT 'it''s;'"]),
        ('CREATE TABLE "x;y" (n int); SELECT 2', ['CREATE TABLE "x;y" (n int)', "SELECT 2"]),
        (
            "-- one; two\nSELECT 1; /* a; b */ SELECT 2;",
            ["-- one; two\nSELECT 1", "/* a; b */ SELECT 2"],
        ),
        (
            "DO $$ BEGIN PERFORM 1; END $$; DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$;",
            [
                "DO $$ BEGIN PERFORM 1; END $$",
                "DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$",
            ],
        ),
        ("-- migrate: no-transaction\n-- nothing else", []),
        ("SELECT $1::int;", ["SELECT $1::int"]),  # a parameter sign is not a dollar quote
    ],
)
def test_statements_split_only_at_semicolons_outside_quotes_and_comments(
    sql: str, statements: list[str]
) -> None:
    assert split_statements(sql) == statements
