"""What a failed statement puts in an error and a log: the statement, never its parameters."""

from __future__ import annotations

import logging
import traceback

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ccshared.db import make_engine
from ccshared.logging import RedactingFilter
from tests.conftest import pg_url

# A value of no recognisable shape: only hiding the parameters keeps it out.
SECRET = "s3cret-webhook-value-without-any-shape"


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 1 / 0 WHERE CAST(:v AS text) <> ''",  # the server refuses: SQLAlchemy's parameters
        "SELECT CAST(:v AS int)",  # the driver refuses: asyncpg quotes the value it could not send
    ],
)
async def test_a_database_error_with_a_secret_parameter_logs_without_it(
    statement: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RedactingFilter())
    engine = make_engine(pg_url("postgres"), pool_size=1)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as info:
                await conn.execute(text(statement), {"v": SECRET})
    finally:
        await engine.dispose()
    if "1 / 0" in statement:  # hidden at the source, whatever handler formats it
        assert "s3cret" not in "".join(traceback.format_exception(info.value))
    logging.getLogger("test.db").error("query failed", exc_info=info.value)
    [record] = [r for r in caplog.records if r.name == "test.db"]
    logged = record.getMessage() + (record.exc_text or "")
    assert "$1" in logged  # the statement is there to debug with
    assert "s3cret" not in logged
