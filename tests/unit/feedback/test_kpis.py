from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedback.api.kpis import _csv
from feedback.api.schemas import KpiFigures, KpiGroup, KpiReport
from feedback.domain.kpis import (
    BUCKET_BOUNDS_S,
    KPI_FIELDS,
    KpiSums,
    TicketFacts,
    bucket_of,
    contribution,
    histogram_percentile,
    kpis_of,
    nearest_rank_percentile,
    nps,
    rollup_delta,
    spreadsheet_text,
    total,
)

T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)


def facts(**overrides: object) -> TicketFacts:
    base: dict[str, object] = {
        "opened_at": T0,
        "resolved_at": T0 + timedelta(hours=2),
        "first_response_at": T0 + timedelta(minutes=5),
        "channel": "email",
        "queue_id": "billing",
        "agent_id": "a1",
        "category": "billing",
    }
    return TicketFacts(**{**base, **overrides})  # type: ignore[arg-type]


def test_csat_is_the_share_of_four_and_five() -> None:
    tickets = [facts(answered=True, survey_sent=True, csat=c) for c in (1, 2, 3, 4, 5, 5)]
    assert kpis_of(total(map(contribution, tickets))).csat == pytest.approx(3 / 6)


def test_nps_is_promoters_minus_detractors_in_points() -> None:
    assert nps(promoters=5, detractors=2, answers=10) == pytest.approx(30.0)
    assert nps(0, 4, 4) == -100
    assert nps(0, 0, 0) is None
    tickets = [facts(answered=True, nps=n) for n in (0, 6, 7, 8, 9, 10, 10)]
    assert kpis_of(total(map(contribution, tickets))).nps == pytest.approx((3 - 2) * 100 / 7)


def test_observed_fcr_excludes_reopened_and_recontacted_tickets() -> None:
    tickets = [facts(), facts(reopened=True), facts(recontacted=True), facts()]
    assert kpis_of(total(map(contribution, tickets))).fcr_observed == pytest.approx(0.5)


def test_answered_fcr_counts_only_answers_that_said_yes_or_no() -> None:
    tickets = [
        facts(answered=True, solved_first_contact=True),
        facts(answered=True, solved_first_contact=False),
        facts(answered=True, solved_first_contact=None, csat=5),
    ]
    assert kpis_of(total(map(contribution, tickets))).fcr_answered == pytest.approx(0.5)


def test_rates_and_averages_over_resolved_tickets() -> None:
    tickets = [
        facts(escalated=True, category="complaint", sla_met=1, sla_breached=1, survey_sent=True),
        facts(first_response_at=None, sla_met=2, survey_sent=True, answered=True, csat=5),
        facts(
            resolved_at=T0 + timedelta(hours=4),
            praised=True,
            survey_sent=True,
            answered=True,
            nps=10,
        ),
    ]
    k = kpis_of(total(map(contribution, tickets)))
    assert k.tickets == 3
    assert k.escalation_rate == pytest.approx(1 / 3)
    assert k.complaint_rate == pytest.approx(1 / 3)
    assert k.sla_attainment == pytest.approx(3 / 4)
    assert k.survey_response_rate == pytest.approx(2 / 3)
    assert k.first_response_avg_s == pytest.approx(300)
    assert k.resolution_avg_s == pytest.approx((7200 + 7200 + 14400) / 3)
    assert k.praise_count == 1


def test_unresolved_tickets_count_nowhere() -> None:
    assert contribution(facts(resolved_at=None)) == KpiSums()
    assert kpis_of(KpiSums()).csat is None


def test_histogram_p90_is_the_bucket_bound_of_the_exact_p90() -> None:
    values = [float(v) for v in range(1, 101)]  # exact nearest-rank p90: 90
    hist = [0] * len(BUCKET_BOUNDS_S)
    for v in values:
        hist[bucket_of(int(v * 1000))] += 1
    p90 = histogram_percentile(hist)
    assert nearest_rank_percentile(values) == 90
    assert p90 == BUCKET_BOUNDS_S[bucket_of(90_000)]
    assert 90 <= p90 <= 90 * 1.1


@given(st.lists(st.integers(min_value=0, max_value=10**10), min_size=1, max_size=200))
def test_histogram_p90_never_understates_and_overstates_by_at_most_ten_percent_plus_1s(
    values: list[int],
) -> None:
    hist = [0] * len(BUCKET_BOUNDS_S)
    for v in values:
        hist[bucket_of(v)] += 1
    approx = histogram_percentile(hist)
    exact_s = nearest_rank_percentile(values) / 1000  # type: ignore[operator]
    assert approx is not None
    if exact_s <= BUCKET_BOUNDS_S[-1]:
        assert exact_s <= approx <= exact_s * 1.1 + 1
    else:
        assert approx == BUCKET_BOUNDS_S[-1]  # beyond 90 days: clamped to the last bound


def test_delta_moves_a_reopened_ticket_to_its_new_resolution_day() -> None:
    before = facts()
    after = facts(reopened=True, resolved_at=T0 + timedelta(days=1, hours=1))
    delta = rollup_delta(before, after)
    old_day, new_day = date(2025, 3, 3), date(2025, 3, 4)
    assert delta[(old_day, "queue", "billing")].tickets == -1
    assert delta[(new_day, "queue", "billing")].tickets == 1
    assert delta[(new_day, "queue", "billing")].fcr_observed == 0
    assert {dim for (_, dim, _) in delta} == {"all", "queue", "agent", "channel", "category"}


def test_delta_of_an_answer_touches_only_the_survey_sums() -> None:
    before = facts(survey_sent=True)
    after = facts(survey_sent=True, answered=True, csat=5, nps=10)
    delta = rollup_delta(before, after)[(date(2025, 3, 3), "agent", "a1")]
    assert (delta.tickets, delta.surveys_answered, delta.csat_satisfied) == (0, 1, 1)
    assert sum(delta.res_hist) == 0
    assert rollup_delta(after, after) == {}


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 10), st.booleans()), max_size=30))
def test_sums_are_additive_so_any_split_of_the_range_agrees(
    answers: list[tuple[int, int, bool]],
) -> None:
    tickets = [facts(answered=True, csat=c, nps=n, solved_first_contact=s) for c, n, s in answers]
    parts = [contribution(t) for t in tickets]
    half = len(parts) // 2
    assert total(parts[:half]) + total(parts[half:]) == total(parts)


# --- CSV cells ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
     "\t=1+1", "\r=1+1"],
)  # fmt: skip
def test_text_cells_starting_a_formula_get_a_leading_quote(text: str) -> None:
    assert spreadsheet_text(text) == "'" + text


@pytest.mark.parametrize("text", ["billing", "退款", "a=b", "", "'=already quoted", " =1"])
def test_other_text_cells_are_unchanged(text: str) -> None:
    assert spreadsheet_text(text) == text


def test_kpi_csv_quotes_hostile_group_keys_but_not_negative_figures() -> None:
    figures = {name: None for name in KPI_FIELDS} | {
        "tickets": 1, "surveys_sent": 1, "answers": 1, "praise_count": 0, "nps": -100.0
    }  # fmt: skip
    groups = [KpiGroup(key=key, **figures) for key in ("=1+1", "-5", "@x", "\tq", "\rq", "vip")]
    report = KpiReport(first="2026-11-01", last="2026-11-30", group_by="queue", groups=groups,
                       total=KpiFigures(**figures))  # fmt: skip
    rows = list(csv.reader(io.StringIO(bytes(_csv(report).body).decode())))
    assert [row[0] for row in rows] == [
        "queue", "'=1+1", "'-5", "'@x", "'\tq", "'\rq", "vip", "total"
    ]  # fmt: skip
    nps = rows[0].index("nps")
    assert {row[nps] for row in rows[1:]} == {"-100.0"}  # a number, never quoted


def test_response_and_resolution_times_count_from_when_the_customer_wrote() -> None:
    # The contact waited eight days (a backlog) before the router opened its ticket.
    wrote = T0 - timedelta(days=8)
    sums = contribution(facts(customer_wrote_at=wrote))
    assert sums.frt_sum_ms == round((timedelta(days=8, minutes=5)).total_seconds() * 1000)
    assert sums.res_sum_ms == round((timedelta(days=8, hours=2)).total_seconds() * 1000)
    # Without it (events of an older router), the opening is the start, as before.
    assert contribution(facts()).frt_sum_ms == 5 * 60 * 1000
