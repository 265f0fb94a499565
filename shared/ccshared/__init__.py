"""Plumbing shared by every contact-center service: events, outbox, consumers, db, HTTP."""
