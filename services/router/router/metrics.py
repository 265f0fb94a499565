"""The router's own Prometheus counters (served on `/metrics` with ccshared.metrics's).

Tickets assigned are counted by their event: `cc_events_published_total{event_type=
"ticket.assigned"}`.
"""

from __future__ import annotations

from prometheus_client import Counter

OFFERS_MADE = Counter("cc_router_offers_made", "Offers of a ticket made to an agent")
OFFER_OUTCOMES = Counter(
    "cc_router_offer_outcomes",
    "Offers answered: accepted, declined, or timed_out (the agent let it expire)",
    ["outcome"],
)
for _outcome in ("accepted", "declined", "timed_out"):
    OFFER_OUTCOMES.labels(_outcome)  # every outcome shows, at 0 until it happens
ACCEPTED = OFFER_OUTCOMES.labels("accepted")
DECLINED = OFFER_OUTCOMES.labels("declined")
TIMED_OUT = OFFER_OUTCOMES.labels("timed_out")
