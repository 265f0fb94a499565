"""The SLA service's background loops."""
