"""Background work of the router: the assignment loop."""
