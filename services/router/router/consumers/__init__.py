"""What the router does with other services' events, one module per source: contacts become
tickets (`contacts`), SLA escalations raise priority or move tickets (`sla`), feedback's
follow-up requests open follow-up tickets and its key-account registry sets customers'
segments (`feedback`)."""

from ccshared.service import ConsumerSpec
from router.consumers.contacts import CONTACTS
from router.consumers.feedback import FOLLOW_UPS, SEGMENTS
from router.consumers.sla import DEADLINES, ESCALATIONS

CONSUMERS: list[ConsumerSpec] = [CONTACTS, ESCALATIONS, DEADLINES, FOLLOW_UPS, SEGMENTS]

__all__ = ["CONSUMERS", "CONTACTS", "DEADLINES", "ESCALATIONS", "FOLLOW_UPS", "SEGMENTS"]
