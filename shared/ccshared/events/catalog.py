"""The topic catalog: the single place to read the system's data flow.

Every topic says who produces it, who consumes it and what it is keyed by (so one ticket's or one
customer's events stay in order on one partition). Every event type names its topic, its payload
model and its current schema version. Each topic has a dead-letter twin, `<topic>.dlq`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from ccshared.events import payloads as p

DLQ_SUFFIX = ".dlq"

# The topics by name: code names a topic by these constants, never by a string literal.
INTAKE_CONTACTS = "intake.contacts"
ROUTER_TICKETS = "router.tickets"
SLA_EVENTS = "sla.events"
FEEDBACK_EVENTS = "feedback.events"
INTAKE_DELIVERIES = "intake.deliveries"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    producer: str
    consumers: tuple[str, ...]
    key_field: str
    description: str

    @property
    def dead_letter(self) -> str:
        return self.name + DLQ_SUFFIX


@dataclass(frozen=True)
class EventSpec:
    event_type: str
    topic: str
    payload: type[BaseModel]
    version: int = 1
    # The services that act on this event type (a subset of the topic's consumers; the others
    # skip it by its event_type header).
    consumers: tuple[str, ...] = ()
    # The payload field the event is keyed by, when not the topic's (an agent's events on the
    # tickets topic are keyed by agent, so one agent's stay in order).
    key_field: str | None = None

    @property
    def partition_key_field(self) -> str:
        return self.key_field or self.topic_spec.key_field

    @property
    def topic_spec(self) -> TopicSpec:
        return TOPICS[self.topic]


_topics = [
    TopicSpec(
        INTAKE_CONTACTS,
        "intake",
        ("router", "feedback"),
        "customer_id",
        "Every accepted customer contact, keyed by customer so one customer's contacts stay in "
        "order (the router threads them onto tickets).",
    ),
    TopicSpec(
        ROUTER_TICKETS,
        "router",
        ("sla", "feedback", "intake"),
        "ticket_id",
        "Ticket lifecycle: opened, contacts added, routed, assigned, replied, resolved, ...; "
        "and agents' status changes (agent.status_changed, keyed by agent_id).",
    ),
    TopicSpec(
        SLA_EVENTS,
        "sla",
        ("router", "feedback"),
        "ticket_id",
        "SLA warnings, breaches, escalations (the router applies their actions), met targets, "
        "and each ticket's next deadline (the router orders waiting tickets by it).",
    ),
    TopicSpec(
        FEEDBACK_EVENTS,
        "feedback",
        ("router", "sla"),
        "customer_id",
        "Surveys sent and answered, follow-up requests (the router opens follow-up tickets), "
        "praise, and customers' segments from the key-account registry (router and SLA).",
    ),
    TopicSpec(
        INTAKE_DELIVERIES,
        "intake",
        ("router",),
        "ticket_id",
        "Each outbound message's delivery states (sent, delivered, read, failed), keyed by "
        "ticket so one conversation's stay in order.",
    ),
]
TOPICS: dict[str, TopicSpec] = {t.name: t for t in _topics}

_events = [
    EventSpec(
        "contact.received", INTAKE_CONTACTS, p.ContactReceived, consumers=("router", "feedback")
    ),
    EventSpec(
        "ticket.opened", ROUTER_TICKETS, p.TicketOpened, consumers=("sla", "feedback", "intake")
    ),
    EventSpec(
        "ticket.contact_added", ROUTER_TICKETS, p.TicketContactAdded, consumers=("sla", "intake")
    ),
    EventSpec("ticket.status_changed", ROUTER_TICKETS, p.TicketStatusChanged, consumers=("sla",)),
    EventSpec("ticket.routed", ROUTER_TICKETS, p.TicketRouted, consumers=("sla",)),
    EventSpec("ticket.assigned", ROUTER_TICKETS, p.TicketAssigned, consumers=("sla",)),
    EventSpec("ticket.transferred", ROUTER_TICKETS, p.TicketTransferred, consumers=("sla",)),
    # A correction of category/priority (issue 22): nobody consumes it yet (SLA reads the
    # priority from ticket.routed, which a re-route also publishes).
    EventSpec("ticket.reclassified", ROUTER_TICKETS, p.TicketReclassified),
    EventSpec("ticket.replied", ROUTER_TICKETS, p.TicketReplied, consumers=("sla", "feedback")),
    EventSpec("ticket.resolved", ROUTER_TICKETS, p.TicketResolved, consumers=("sla", "feedback")),
    EventSpec("ticket.reopened", ROUTER_TICKETS, p.TicketReopened, consumers=("sla", "feedback")),
    EventSpec("ticket.closed", ROUTER_TICKETS, p.TicketClosed, consumers=("sla", "feedback")),
    # Nobody acts on it yet: for the UI (an agent moved away after a missed offer, a wrap-up).
    EventSpec("agent.status_changed", ROUTER_TICKETS, p.AgentStatusChanged, key_field="agent_id"),
    # What intake must deliver to the customer (an agent's reply, a call-back request).
    EventSpec("message.outbound", ROUTER_TICKETS, p.MessageOutbound, consumers=("intake",)),
    # For the console's live view: a notification stored for one user (escalations, mentions,
    # offers, missed offers, follow-ups, failed deliveries). Keyed by recipient.
    EventSpec(
        "notification.created",
        ROUTER_TICKETS,
        p.NotificationCreated,
        key_field="recipient_id",
    ),
    # A notification a supervisor or manager opted to get by e-mail too: intake sends it over
    # its SMTP path (an outbound message of kind `notification`). Keyed by recipient.
    EventSpec(
        "notification.email_requested",
        ROUTER_TICKETS,
        p.NotificationEmailRequested,
        key_field="recipient_id",
        consumers=("intake",),
    ),
    # Two customers became one (a supervisor's merge): intake re-points the merged customer's
    # identities, feedback its per-customer rows. Keyed by the customer that remains.
    EventSpec(
        "customer.merged",
        ROUTER_TICKETS,
        p.CustomerMerged,
        consumers=("intake", "feedback"),
        key_field="customer_id",
    ),
    EventSpec("sla.warning", SLA_EVENTS, p.SlaWarning),
    EventSpec("sla.breached", SLA_EVENTS, p.SlaBreached, consumers=("feedback",)),
    EventSpec("sla.escalated", SLA_EVENTS, p.SlaEscalated, consumers=("router", "feedback")),
    EventSpec("sla.met", SLA_EVENTS, p.SlaMet, consumers=("feedback",)),
    # The router stores it as the ticket's sla_deadline and orders waiting tickets by it.
    EventSpec("sla.deadline_changed", SLA_EVENTS, p.SlaDeadlineChanged, consumers=("router",)),
    EventSpec("survey.requested", FEEDBACK_EVENTS, p.SurveyRequested),
    EventSpec("survey.answered", FEEDBACK_EVENTS, p.SurveyAnswered),
    EventSpec("followup.requested", FEEDBACK_EVENTS, p.FollowUpRequested, consumers=("router",)),
    EventSpec("praise.recorded", FEEDBACK_EVENTS, p.PraiseRecorded),
    # The key-account registry's segment of a customer: the router routes and SLA matches
    # policies by it (an integration's unverified customer.account_id no longer counts).
    EventSpec(
        "customer.segment_changed",
        FEEDBACK_EVENTS,
        p.CustomerSegmentChanged,
        consumers=("router", "sla"),
    ),
    # The router stores each state with its message (the conversation), a failure notifies
    # the ticket's owner.
    EventSpec(
        "message.delivery_changed",
        INTAKE_DELIVERIES,
        p.MessageDeliveryChanged,
        consumers=("router",),
    ),
]
EVENT_TYPES: dict[str, EventSpec] = {e.event_type: e for e in _events}


@dataclass(frozen=True)
class Catalog:
    topics: dict[str, TopicSpec]
    events: dict[str, EventSpec]

    def consumed_by(self, service: str) -> list[TopicSpec]:
        return [t for t in self.topics.values() if service in t.consumers]

    def events_consumed_by(self, service: str) -> list[EventSpec]:
        return [e for e in self.events.values() if service in e.consumers]

    def produced_by(self, service: str) -> list[TopicSpec]:
        return [t for t in self.topics.values() if t.producer == service]

    def all_topic_names(self) -> list[str]:
        return [name for t in self.topics.values() for name in (t.name, t.dead_letter)]


CATALOG = Catalog(TOPICS, EVENT_TYPES)


def _check_catalog() -> None:
    for spec in EVENT_TYPES.values():
        topic = TOPICS[spec.topic]
        if spec.partition_key_field not in spec.payload.model_fields:
            raise AssertionError(
                f"{spec.event_type} goes to {topic.name}, keyed by {spec.partition_key_field}, "
                f"but its payload has no such field"
            )
        strangers = set(spec.consumers) - set(topic.consumers)
        if strangers:
            raise AssertionError(
                f"{spec.event_type} is consumed by {sorted(strangers)}, "
                f"not listed as consumers of {topic.name}"
            )


_check_catalog()
