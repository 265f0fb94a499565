"""Intake's work off the request loop: parsing raw e-mail and large JSON in worker processes."""
