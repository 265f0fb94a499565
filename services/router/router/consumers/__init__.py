"""What the router does with other services' events, one module per source: contacts become
tickets (`contacts`), SLA escalations raise priority or move tickets (`sla`), feedback's
follow-up requests open follow-up tickets (`feedback`)."""

from ccshared.service import ConsumerSpec
from router.consumers.contacts import CONTACTS
from router.consumers.feedback import FOLLOW_UPS
from router.consumers.sla import ESCALATIONS

CONSUMERS: list[ConsumerSpec] = [CONTACTS, ESCALATIONS, FOLLOW_UPS]

__all__ = ["CONSUMERS", "CONTACTS", "ESCALATIONS", "FOLLOW_UPS"]
