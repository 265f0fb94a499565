"""What the router does with other services' events, one module per source: contacts become
tickets (`contacts`), SLA escalations raise priority or move tickets (`sla`), feedback's
follow-up requests open follow-up tickets (`feedback`)."""

from ccshared.service import ConsumerSpec
from router.consumers.contacts import CONTACTS
from router.consumers.feedback import FOLLOW_UPS
from router.consumers.sla import DEADLINES, ESCALATIONS

CONSUMERS: list[ConsumerSpec] = [CONTACTS, ESCALATIONS, DEADLINES, FOLLOW_UPS]

__all__ = ["CONSUMERS", "CONTACTS", "DEADLINES", "ESCALATIONS", "FOLLOW_UPS"]
