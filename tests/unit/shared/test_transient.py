"""Which failures the consumer retries forever (infrastructure) and which it dead-letters.

Found by `make chaos`: while PostgreSQL restarted after a kill -9, asyncpg raised "the database
system is starting up" (SQLSTATE 57P03), which SQLAlchemy wraps as a plain DBAPIError, not an
OperationalError; the consumer took it for the message's fault and dead-lettered a contact that
intake had accepted, so it never became a ticket.
"""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from ccshared.consumer import is_transient


def _wrapped(error: Exception) -> sa_exc.DBAPIError:
    """What SQLAlchemy's asyncpg dialect raises for an asyncpg error."""
    adapted = AsyncAdapt_asyncpg_dbapi.Error(str(error), error)
    adapted.__cause__ = error
    return sa_exc.DBAPIError.instance("SELECT 1", {}, adapted, AsyncAdapt_asyncpg_dbapi.Error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.CrashShutdownError("terminating connection"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.ConnectionFailureError("connection failure"),
    ],
)
def test_a_server_starting_stopping_or_full_is_transient(error: Exception) -> None:
    assert is_transient(_wrapped(error))
    assert is_transient(error)  # raw asyncpg (services that use a pool directly)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedColumnError("no such column"),
        asyncpg.exceptions.InvalidTextRepresentationError("bad input"),
    ],
)
def test_the_message_s_own_failures_are_not_transient(error: Exception) -> None:
    assert not is_transient(_wrapped(error))
    assert not is_transient(error)
    assert not is_transient(ValueError("bad payload"))
