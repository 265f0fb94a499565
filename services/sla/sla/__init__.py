"""SLA service: Tracks every service-level deadline of every open ticket and escalates what is
overdue."""
