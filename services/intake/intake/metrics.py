"""Intake's own Prometheus counters (served on `/metrics` with ccshared.metrics's)."""

from __future__ import annotations

from prometheus_client import Counter

CONTACTS = Counter(
    "cc_intake_contacts",
    "Contacts posted with a valid key, by outcome: accepted (stored, its event on its way), "
    "duplicate (stored before), refused (invalid, too large, out of the key's scope, an "
    "idempotency conflict); single and batch posts alike",
    ["outcome"],
)
for _outcome in ("accepted", "duplicate", "refused"):
    CONTACTS.labels(_outcome)  # every outcome shows, at 0 until it happens
ACCEPTED = CONTACTS.labels("accepted")
DUPLICATE = CONTACTS.labels("duplicate")
REFUSED = CONTACTS.labels("refused")


def count(status: str) -> None:
    """One contact's outcome, by the status intake answered it with."""
    if status == "accepted":
        ACCEPTED.inc()
    elif status == "duplicate":
        DUPLICATE.inc()
    else:
        REFUSED.inc()
