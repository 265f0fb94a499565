"""What the router does with other services' events, one module per source: contacts become
tickets (`contacts`), SLA escalations raise priority or move tickets (`sla`), feedback's
follow-up requests open follow-up tickets (`feedback`), intake's delivery reports update
replies' delivery states (`deliveries`)."""

from ccshared.service import ConsumerSpec
from router.consumers.contacts import CONTACTS
from router.consumers.deliveries import DELIVERIES
from router.consumers.feedback import FOLLOW_UPS
from router.consumers.sla import DEADLINES, ESCALATIONS

CONSUMERS: list[ConsumerSpec] = [CONTACTS, ESCALATIONS, DEADLINES, FOLLOW_UPS, DELIVERIES]

__all__ = ["CONSUMERS", "CONTACTS", "DEADLINES", "DELIVERIES", "ESCALATIONS", "FOLLOW_UPS"]
