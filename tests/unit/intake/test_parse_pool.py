"""The parse pool: raw e-mail parsed in a worker process, refusals as problems, a budget that
stops a slow parse, and a dead worker replaced."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccshared.problems import Problem
from intake.domain.contact_models import (
    CONTEXT_DEFAULT_REGION,
    CONTEXT_MAX_FUTURE_SKEW_S,
    EmailContact,
)
from intake.tasks.parse_pool import ParsePool
from tests.unit.intake.hostile_email import HOSTILE

MAIL = (Path(__file__).parents[2] / "fixtures" / "email" / "gb2312-base64.eml").read_bytes()
CONTEXT = {CONTEXT_DEFAULT_REGION: "CN", CONTEXT_MAX_FUTURE_SKEW_S: 300}


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    parse_pool = ParsePool(workers=1, budget_s=5, max_pending=4)
    parse_pool.start()
    yield parse_pool
    parse_pool.close()


async def test_email_is_parsed_in_a_worker_and_comes_back_validated(pool: ParsePool) -> None:
    contact, request_time = await pool.email_contact(MAIL, CONTEXT)
    assert isinstance(contact, EmailContact)
    assert contact.subject == "发票开错了"
    assert request_time is False
    assert all(child.pid != os.getpid() for child in multiprocessing.active_children())


async def test_refusal_in_the_worker_is_a_problem_naming_the_field(pool: ParsePool) -> None:
    raw, field = HOSTILE["5,000 nested comments in From"]
    with pytest.raises(Problem) as refused:
        await pool.email_contact(raw, CONTEXT)
    assert refused.value.status == 422
    assert refused.value.errors is not None
    assert refused.value.errors[0].field == field


async def test_a_dead_worker_is_a_503_and_the_next_message_is_parsed_again(
    pool: ParsePool,
) -> None:
    await pool.email_contact(MAIL, CONTEXT)
    for child in multiprocessing.active_children():
        os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(Problem) as unavailable:
        await pool.email_contact(MAIL, CONTEXT)
    assert unavailable.value.status == 503
    contact, _ = await pool.email_contact(MAIL, CONTEXT)
    assert contact.subject == "发票开错了"
