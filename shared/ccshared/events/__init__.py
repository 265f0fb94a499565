"""Event envelope, typed payloads and the topic catalog."""

from ccshared.events.catalog import CATALOG, EVENT_TYPES, TOPICS, EventSpec, TopicSpec
from ccshared.events.envelope import Envelope, EventDecodeError, decode_event, new_event

__all__ = [
    "CATALOG",
    "EVENT_TYPES",
    "TOPICS",
    "Envelope",
    "EventDecodeError",
    "EventSpec",
    "TopicSpec",
    "decode_event",
    "new_event",
]
