"""Predicted SLA breach: a queue's recent wait, the forecast, the band a ticket is raised to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.domain.prediction import BreachForecast, QueueWaits, forecast_breach, raised_rank

NOW = datetime(2026, 12, 3, 10, 28, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_a_queues_wait_is_weighted_towards_the_latest_offers() -> None:
    waits = QueueWaits(weight=0.5)
    assert waits.expected("billing") is None
    waits.observe("billing", 10 * MIN)
    assert waits.expected("billing") == 10 * MIN
    waits.observe("billing", 20 * MIN)
    assert waits.expected("billing") == 15 * MIN
    waits.observe("billing", -MIN)  # a callback queued for later counts as no wait
    assert waits.expected("billing") == 7.5 * MIN
    assert waits.expected("vip") is None


def test_a_ticket_whose_deadline_comes_before_its_likely_offer_is_forecast_to_breach() -> None:
    queued = NOW - 2 * MIN
    # Queued 2 min ago, the queue waits 14 min: offered around 10:40, deadline 10:38.
    forecast = forecast_breach(NOW + 10 * MIN, "first_response", 14 * MIN, queued, NOW)
    assert forecast == BreachForecast(NOW + 10 * MIN, "first_response", 14 * MIN)
    assert forecast.explain() == (
        "predicted to breach first response at 10:38 UTC; queue wait 14 min"
    )
    # In time: deadline after the likely offer.
    assert forecast_breach(NOW + 13 * MIN, "first_response", 14 * MIN, queued, NOW) is None
    # Already waited longer than the queue's usual wait: it may be offered now, not before.
    late = NOW - 30 * MIN
    assert forecast_breach(NOW + MIN, "resolution", 14 * MIN, late, NOW) is None
    overdue = forecast_breach(NOW - MIN, "resolution", 14 * MIN, late, NOW)
    assert overdue is not None
    assert overdue.explain() == "breached resolution at 10:27 UTC; queue wait 14 min"
    # No deadline, or a queue with no offers yet: nothing to forecast.
    assert forecast_breach(None, None, 14 * MIN, queued, NOW) is None
    assert forecast_breach(NOW, "first_response", None, queued, NOW) is None


def test_a_forecast_breach_raises_the_ticket_one_priority_band() -> None:
    forecast = BreachForecast(NOW, None, 30 * timedelta(seconds=1))
    assert [raised_rank(r, forecast) for r in (0, 1, 2, 3)] == [0, 0, 1, 2]
    assert [raised_rank(r, None) for r in (0, 1, 2, 3)] == [0, 1, 2, 3]
    assert (
        forecast.explain() == "predicted to breach its SLA deadline at 10:28 UTC; queue wait 30 s"
    )
