"""The ceiling for intake's benchmark: FastAPI validating the same request model, storing
nothing, answering 202. Whatever intake does beyond this costs throughput against it."""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Request, Response

from ccshared.problems import install_problem_handlers
from intake.api.schemas import parse_contact_json


def create_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/v1/contacts", status_code=202)
    async def post_contact(request: Request, response: Response) -> dict[str, str]:
        contact = parse_contact_json(await request.body())
        response.headers["Location"] = f"/v1/contacts/{uuid.uuid4()}"
        return {"id": str(uuid.uuid4()), "status": "accepted", "channel": contact.channel}

    return app
