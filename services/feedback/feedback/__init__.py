"""Feedback service: Surveys customers after resolution, closes the loop on unhappy answers and
reports the KPIs."""
