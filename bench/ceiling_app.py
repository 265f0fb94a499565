"""The ceiling for intake's benchmark: FastAPI validating the same request model, storing
nothing, answering 202. Whatever intake does beyond this costs throughput against it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from ccshared.gc import freeze_startup_objects, tune_gc
from ccshared.problem_handlers import install_problem_handlers
from intake.domain.contact_models import parse_contact_json


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    freeze_startup_objects()
    yield


def create_app() -> FastAPI:
    # The same garbage-collector settings as the services (ccshared.gc), so that the comparison
    # is between the request paths, not the collectors.
    tune_gc()
    app = FastAPI(lifespan=_lifespan)
    install_problem_handlers(app)

    @app.post("/v1/contacts", status_code=202)
    async def post_contact(request: Request, response: Response) -> dict[str, str]:
        contact = parse_contact_json(await request.body())
        response.headers["Location"] = f"/v1/contacts/{uuid.uuid4()}"
        return {"id": str(uuid.uuid4()), "status": "accepted", "channel": contact.channel}

    return app
