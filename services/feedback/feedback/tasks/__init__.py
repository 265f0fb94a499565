"""Background work of the feedback service: sending due surveys, reminders and call-backs, and
delivering webhooks."""
