"""The cluster's training job (`python -m router.classifier.train --database`, the router-train
CronJob): it reads the deployment's corrections from the router's database, stores the new
version there and promotes it only if it is not worse; every replica loads the promoted
version from the database without a restart, and keeps the one in use if a row is bad."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import create_async_engine

from router.classifier import store
from router.classifier import train as train_module
from router.classifier.corpus import Example, load
from router.classifier.model import to_bytes
from router.db.classifier_models import add_model, model_versions, next_number
from tests.integration.router.conftest import Router, contact

SHIPPED = store.current_name(store.SHIPPED_DIR)
NEXT = f"v{store.last_shipped() + 1}"
AFTER_NEXT = f"v{store.last_shipped() + 2}"
DRIFT = "数字人民币付不了款，提示交易异常"


async def _model_version_of_a_new_ticket(router: Router, text_: str = "账单金额不对") -> str:
    ticket_id = await router.receive(contact(uuid.uuid4(), text_=text_))
    version: str = (await router.ticket(ticket_id))["classification"]["model"]["version"]
    return version


def _small_corpus() -> list[Example]:
    """A few dozen messages of each split: a model trained on them is worse than the shipped
    one on their test split."""
    corpus = load()
    return [e for e in corpus if e.split == "train"][::40] + [
        e for e in corpus if e.split == "test"
    ][::4]


async def test_the_training_job_stores_and_promotes_a_version_the_router_loads_without_restart(
    router_factory: Callable[..., Awaitable[Router]], fresh_database: str
) -> None:
    router = await router_factory()
    assert await _model_version_of_a_new_ticket(router) == SHIPPED
    ticket_id = await router.receive(contact(uuid.uuid4(), text_=DRIFT))
    response = await router.client.post(
        f"/v1/tickets/{ticket_id}/classification", json={"category": "billing"}
    )
    assert response.status_code == 200, response.text
    engine = create_async_engine(fresh_database)
    out = io.StringIO()
    try:
        # A weak version forced in (--force), then a real run: compared with the database's
        # promoted version (the weak one), better, so promoted.
        weak, _, _ = await train_module.train_into_database(
            engine, corpus=_small_corpus(), force=True, out=out
        )
        assert await _model_version_of_a_new_ticket(router) == weak == NEXT
        name, promoted, metrics = await train_module.train_into_database(engine, out=out)
        async with engine.connect() as conn:
            stored = await model_versions(conn)
    finally:
        await engine.dispose()
    assert (name, promoted) == (AFTER_NEXT, True)
    assert "1 corrections from the deployment" in out.getvalue()
    assert [r["version"] for r in stored] == [NEXT, AFTER_NEXT]  # versions are kept
    row = stored[-1]
    assert row["promoted_at"] is not None
    assert row["metadata"]["corrections"] == 1
    assert row["metadata"]["previous"] == NEXT
    assert row["metadata"]["metrics"]["category_accuracy"] == metrics["category_accuracy"]
    assert metrics["category_accuracy"] > row["metadata"]["previous_metrics"]["category_accuracy"]
    # The replica (rules cache refreshed at every read here) now classifies with it ...
    assert await _model_version_of_a_new_ticket(router) == AFTER_NEXT
    # ... and a replica started afterwards loads it at start.
    later = await router_factory()
    assert await _model_version_of_a_new_ticket(later) == AFTER_NEXT
    # Rolling back (deploy/README.md): an older version promoted again is loaded again.
    await router.sql("UPDATE classifier_models SET promoted_at = now() WHERE version = :v", v=NEXT)
    assert await _model_version_of_a_new_ticket(later) == NEXT


async def test_a_worse_version_is_kept_in_the_database_but_not_promoted(
    router: Router, fresh_database: str
) -> None:
    engine = create_async_engine(fresh_database)
    try:
        name, promoted, _ = await train_module.train_into_database(
            engine, corpus=_small_corpus(), out=io.StringIO()
        )
        async with engine.connect() as conn:
            stored = await model_versions(conn)
    finally:
        await engine.dispose()
    assert (name, promoted) == (NEXT, False)
    assert [(r["version"], r["promoted_at"]) for r in stored] == [(NEXT, None)]
    assert await _model_version_of_a_new_ticket(router) == SHIPPED


async def test_a_promoted_row_that_fails_its_checksum_is_refused_and_the_model_in_use_kept(
    router: Router, fresh_database: str
) -> None:
    shipped = store.load_current(store.SHIPPED_DIR)
    assert shipped is not None
    engine = create_async_engine(fresh_database)
    try:
        async with engine.begin() as conn:
            number = await next_number(conn, store.last_shipped())
            data = to_bytes(shipped)
            await add_model(
                conn, number, data + b"x", hashlib.sha256(data).hexdigest(), {}, promote=True
            )
    finally:
        await engine.dispose()
    assert await _model_version_of_a_new_ticket(router) == SHIPPED
