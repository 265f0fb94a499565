"""Feedback's own Prometheus counters (served on `/metrics` with ccshared.metrics's).

Surveys answered are counted by their event: `cc_events_published_total{event_type=
"survey.answered"}` (and sent ones by `survey.requested` too, reminders included).
"""

from __future__ import annotations

from prometheus_client import Counter

SURVEYS_SENT = Counter(
    "cc_feedback_surveys_sent",
    "Surveys sent to customers (first sending or reminder)",
    ["kind"],
)
WEBHOOK_DELIVERIES = Counter(
    "cc_feedback_webhook_deliveries",
    "Webhook delivery attempts, by outcome: delivered (2xx), retrying (tried again later), "
    "failed (given up: out of attempts, refused address, deactivated subscription)",
    ["outcome"],
)
for _kind in ("survey", "reminder"):
    SURVEYS_SENT.labels(_kind)  # every label shows, at 0 until it happens
for _outcome in ("delivered", "retrying", "failed"):
    WEBHOOK_DELIVERIES.labels(_outcome)
