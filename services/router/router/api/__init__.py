"""The router's API for the contact-center UI, one module per context; `ROUTERS` in the order
the OpenAPI document lists them.

Every call carries the user's token (`router.api.auth`): agents act on their own behalf and on
their own tickets; changes that shape routing (queues, agents, the policy) are a supervisor's.
Every ticket change goes through the lifecycle: an invalid one is a 409 that says why.
"""

from fastapi import APIRouter

from router.api import (
    agents,
    canned,
    conversation,
    customers,
    notifications,
    offers,
    policy,
    queues,
    rules,
    tickets,
)

ROUTERS: list[APIRouter] = [
    queues.router,
    agents.router,
    offers.router,
    tickets.router,
    conversation.router,
    canned.router,
    notifications.router,
    customers.router,
    policy.router,
    rules.router,
]
