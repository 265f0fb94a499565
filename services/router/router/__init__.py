"""Router service: Turns contacts into tickets, routes them to role-based queues and agents; the
queue, agent and ticket API of the contact-center UI."""
