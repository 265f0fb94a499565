"""The router's callers: agents and supervisors of the contact-center UI, by bearer token
(`ccshared.user_auth`).

Every route needs a valid token. Reading queues, agents, the policy and the rules is open to
both roles; a supervisor reads every ticket, an agent only those assigned to or owned by them or
waiting in a queue they serve (`router.db.tickets.READABLE_BY_AGENT`; any other is a 404). What
shapes routing (queues, agents, the policy, the rules) is a supervisor's. An agent sets their own
status, sees and answers their own offers, and acts on the tickets they are assigned to or own; a
supervisor may act on any ticket and any agent's status.
"""

from ccshared.user_auth import (
    Forbidden,
    principal,
    require_on_ticket,
    require_self_or_supervisor,
    supervisor,
)

__all__ = [
    "Forbidden",
    "principal",
    "require_on_ticket",
    "require_self_or_supervisor",
    "supervisor",
]
