"""What the router does with other services' events, one module per source: contacts become
tickets (`contacts`), SLA escalations raise priority or move tickets (`sla`), feedback's
follow-up requests open follow-up tickets and its key-account registry sets customers'
segments (`feedback`), intake's delivery reports update replies' delivery states (`deliveries`)."""

from ccshared.service import ConsumerSpec
from router.consumers.contacts import CONTACTS
from router.consumers.deliveries import DELIVERIES
from router.consumers.feedback import FROM_FEEDBACK
from router.consumers.sla import DEADLINES, ESCALATIONS

CONSUMERS: list[ConsumerSpec] = [CONTACTS, ESCALATIONS, DEADLINES, FROM_FEEDBACK, DELIVERIES]

__all__ = ["CONSUMERS", "CONTACTS", "DEADLINES", "DELIVERIES", "ESCALATIONS", "FROM_FEEDBACK"]
