"""Feedback KPIs at scale: p50/p99 of `GET /v1/kpis` for a 30-day range grouped by queue, with
1,000,000 resolved tickets (and their surveys and answers) over 180 days in the database.

Measured against the feedback service running as a uvicorn process on its own database (its
migrations create the tables): after a warm-up, the same documented query is sent one at a time
(httpx, keep-alive, on this machine) and each round trip timed; the same for `group_by=agent`,
for information. Beside it: the query's own time in PostgreSQL (EXPLAIN ANALYZE, and timed
directly), and the table sizes.

How the data is loaded (SQL only; the numbers are the query's, not the consumers'):
1. One `INSERT ... SELECT FROM generate_series` into a temporary table draws each ticket
   (seeded `random()`): resolution day spread uniformly over the 180 days before today (UTC),
   6 queues (the router's defaults, unevenly loaded), 300 agents (50 per queue), 4 channels,
   8 categories, log-uniform resolution times (5 min to 10 days) and first responses, SLA
   outcomes, reopen / recontact / escalation flags, and the survey: suppressed (spam, quiet
   period, reply window) or sent, answered by ~30% of the customers it was sent to.
2. `ticket_facts`, `surveys` and `answers` are filled from it as the service would have left them
   (answers only within the 24 h after sending and before now, praise = CSAT 5, NPS >= 9 and a
   comment; the reminder of an unanswered survey counts as sent when it is due before an hour
   from now, so the service's scheduler finds nothing to send during the run — it still runs,
   and its reminder scan walks every answered survey of the history, see the README).
3. `kpi_rollup` is computed from `ticket_facts` alone by one aggregate (`_ROLLUP`) that mirrors
   `feedback.domain.kpis`: `contribution()` per ticket (same NULL rules, milliseconds rounded,
   the histogram bucket as `bisect_left` over `BUCKET_BOUNDS_S`, clamped to the last one), and
   `dimension_values()` — each ticket counts on its UTC resolution day under `all`, its queue,
   agent, channel and category (`(none)` when missing). It is then checked against the
   service's own Python: the facts of one day are run through `facts_of` / `rollup_delta` and
   must give exactly that day's rollup rows; and the HTTP answer's ticket total must equal a
   count over `ticket_facts`.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson

from bench.harness import (
    KAFKA,
    TOPIC_PREFIX,
    database_url,
    recreate_database,
    start_uvicorn,
    supervisor_headers,
    topic,
    write_result,
)
from ccshared.events.catalog import INTAKE_CONTACTS, ROUTER_TICKETS, SLA_EVENTS
from ccshared.kafka import commit_group_at_end, ensure_topics

DB = "bench_feedback"
PORT = 18104
SERVICE_NAME = "feedback-bench"
TICKETS = int(os.environ.get("BENCH_FEEDBACK_TICKETS", "1000000"))
DAYS = 180
RANGE_DAYS = 30
QUERIES = int(os.environ.get("BENCH_FEEDBACK_QUERIES", "300"))
WARMUP = 30
AGENT_QUERIES = int(os.environ.get("BENCH_FEEDBACK_AGENT_QUERIES", "50"))
CUSTOMERS = TICKETS // 4
TARGET_P99_MS = 100.0

QUEUES = ["frontline", "complaints", "technical", "billing", "vip", "escalations"]
QUEUE_SHARE = [0.40, 0.10, 0.20, 0.15, 0.05, 0.10]
AGENTS_PER_QUEUE = 50
CHANNELS = ["phone", "email", "chat", "social"]
CHANNEL_SHARE = [0.30, 0.25, 0.35, 0.10]
CATEGORIES = [
    "general",
    "billing",
    "technical",
    "complaint",
    "delivery",
    "account",
    "refund",
    "praise",
]


def _pick(names: list[str], shares: list[float], u: str) -> str:
    """SQL choosing one of `names` with the given shares from the uniform variate `u`."""
    cases, edge = [], 0.0
    for name, share in zip(names[:-1], shares[:-1], strict=True):
        edge += share
        cases.append(f"WHEN {u} < {edge:.4f} THEN '{name}'")
    return f"CASE {' '.join(cases)} ELSE '{names[-1]}' END"


# Each ticket's random draws, then the values derived from them. The inner subquery keeps every
# random() to one evaluation per row (PostgreSQL does not flatten volatile target lists).
_GENERATE = f"""
CREATE TEMP TABLE gen AS
SELECT d.*,
       d.opened_at + (d.res_ms * d.u_frt_share)::bigint * interval '1 millisecond'
         AS first_response,
       d.survey_status = 'sent' AND d.u_answered < 0.30
         AND d.resolved_at + d.delay + d.u_answer_after * interval '1 day' <= $4 AS answered
FROM (
  SELECT r.*,
         r.resolved_at - r.res_ms * interval '1 millisecond' AS opened_at,
         CASE WHEN r.resolution_code = 'spam' THEN 'spam_or_duplicate'
              WHEN r.u_survey < 0.12 THEN 'customer_recently_surveyed'
              WHEN r.channel IN ('chat', 'social') AND r.u_survey < 0.15
                THEN 'reply_window_closed'
         END AS suppression_reason,
         CASE WHEN r.resolution_code = 'spam' OR r.u_survey < 0.12
                OR (r.channel IN ('chat', 'social') AND r.u_survey < 0.15) THEN 'suppressed'
              ELSE 'sent' END AS survey_status,
         CASE r.channel WHEN 'phone' THEN interval '1 hour' WHEN 'email' THEN interval '2 hours'
                        WHEN 'chat' THEN interval '10 minutes' ELSE interval '30 minutes'
         END AS delay
  FROM (
    SELECT g.i, g.ticket_id, g.survey_id,
           md5('customer-' || (g.i % $3))::uuid AS customer_id,
           {_pick(CHANNELS, CHANNEL_SHARE, "g.u_channel")} AS channel,
           {_pick(QUEUES, QUEUE_SHARE, "g.u_queue")} AS queue_id,
           (floor(g.u_agent * {AGENTS_PER_QUEUE}))::int AS agent_slot,
           (ARRAY{CATEGORIES!r})[1 + floor(g.u_category * {len(CATEGORIES)})::int] AS category,
           CASE WHEN g.u_language < 0.6 THEN 'zh-CN' ELSE 'en' END AS language,
           CASE WHEN g.u_spam < 0.01 THEN 'spam' ELSE 'solved' END AS resolution_code,
           date_trunc('milliseconds', $1::timestamptz + g.u_day * $2::int * interval '1 day')
             AS resolved_at,
           round(300000 * exp(g.u_res * ln(2880.0)))::bigint AS res_ms,  -- 5 min .. 10 days
           0.005 + 0.6 * g.u_frt AS u_frt_share,
           g.u_frt_missing < 0.03 AS no_first_response,
           g.u_reopened < 0.06 AS reopened,
           g.u_recontacted < 0.10 AS recontacted,
           g.u_escalated < 0.05 AS escalated,
           g.u_sla < 0.05 AS no_sla,
           g.u_survey, g.u_answered, g.u_answer_after,
           1 + width_bucket(g.u_csat, ARRAY[0.05, 0.10, 0.20, 0.45]) AS csat_draw,
           g.u_csat_missing < 0.05 AS csat_missing,
           least(10, floor(g.u_nps * 11))::int AS nps_draw,
           g.u_nps_missing < 0.10 AS nps_missing,
           CASE WHEN g.u_solved < 0.05 THEN NULL ELSE g.u_solved < 0.80 END AS solved_draw,
           g.u_comment < 0.30 AS has_comment
    FROM (
      SELECT i, gen_random_uuid() AS ticket_id, gen_random_uuid() AS survey_id,
             random() AS u_channel, random() AS u_queue, random() AS u_agent,
             random() AS u_category, random() AS u_language, random() AS u_spam,
             random() AS u_day, random() AS u_res, random() AS u_frt, random() AS u_frt_missing,
             random() AS u_reopened, random() AS u_recontacted, random() AS u_escalated,
             random() AS u_sla, random() AS u_survey, random() AS u_answered,
             random() AS u_answer_after, random() AS u_csat, random() AS u_csat_missing,
             random() AS u_nps, random() AS u_nps_missing, random() AS u_solved,
             random() AS u_comment
      FROM generate_series(1, $5::int) AS i
    ) AS g
  ) AS r
) AS d
"""

_QUEUE_BASE = "CASE queue_id " + " ".join(
    f"WHEN '{q}' THEN {n * AGENTS_PER_QUEUE}" for n, q in enumerate(QUEUES)
)

_FACTS = f"""
INSERT INTO ticket_facts (ticket_id, customer_id, channel, queue_id, agent_id, category, language,
    resolution_code, close_reason, opened_at, first_response_at, resolved_at, reopened,
    recontacted, sla_outcomes, escalated, survey_sent, answered, csat, nps, solved_first_contact,
    praised, updated_at)
SELECT ticket_id, customer_id, channel, queue_id,
       'agent-' || lpad(({_QUEUE_BASE} END + agent_slot)::text, 3, '0'),
       category, language, resolution_code, NULL, opened_at,
       CASE WHEN NOT no_first_response THEN first_response END, resolved_at, reopened,
       recontacted,
       CASE WHEN no_sla THEN '{{}}'::jsonb ELSE jsonb_strip_nulls(jsonb_build_object(
         'first_response', CASE WHEN no_first_response THEN NULL
                                WHEN first_response - opened_at <= interval '1 hour' THEN 'met'
                                ELSE 'breached' END,
         'resolution', CASE WHEN resolved_at - opened_at <= interval '24 hours' THEN 'met'
                            ELSE 'breached' END)) END,
       escalated, survey_status = 'sent', answered,
       CASE WHEN answered AND NOT csat_missing THEN csat_draw END,
       CASE WHEN answered AND NOT nps_missing THEN nps_draw END,
       CASE WHEN answered THEN coalesce(solved_draw, (csat_missing AND nps_missing) OR NULL) END,
       answered AND NOT csat_missing AND csat_draw = 5 AND NOT nps_missing AND nps_draw >= 9
         AND has_comment,
       resolved_at
FROM gen
"""

_SURVEYS = """
INSERT INTO surveys (id, ticket_id, customer_id, channel, language, agent_id, status,
    suppression_reason, due_at, window_closes_at, sent_at, expires_at, reminder_due_at,
    reminded_at, created_at)
SELECT g.survey_id, g.ticket_id, g.customer_id, g.channel, g.language, f.agent_id,
       g.survey_status, g.suppression_reason, g.resolved_at + g.delay,
       CASE WHEN g.channel IN ('chat', 'social') THEN g.resolved_at + interval '20 hours' END,
       CASE WHEN g.survey_status = 'sent' THEN g.resolved_at + g.delay END,
       CASE WHEN g.survey_status = 'sent' THEN g.resolved_at + g.delay + interval '14 days' END,
       -- An answered survey leaves the reminder index, as the service does when it stores one.
       CASE WHEN g.survey_status = 'sent' AND NOT g.answered
            THEN g.resolved_at + g.delay + interval '3 days' END,
       CASE WHEN g.survey_status = 'sent' AND NOT g.answered
             AND g.resolved_at + g.delay + interval '3 days' <= $1::timestamptz + interval '1 hour'
            THEN g.resolved_at + g.delay + interval '3 days' END,
       g.resolved_at
FROM gen g JOIN ticket_facts f USING (ticket_id)
"""

_ANSWERS = """
INSERT INTO answers (survey_id, ticket_id, csat, nps, solved_first_contact, comment, revisions,
    first_answered_at, updated_at, followup_requested_at, praise_recorded_at)
SELECT g.survey_id, g.ticket_id, f.csat, f.nps, f.solved_first_contact,
       CASE WHEN g.has_comment THEN
         CASE WHEN g.language = 'en' THEN 'Thanks, sorted quickly.' ELSE '处理得很快，谢谢。' END
       END,
       1, a.at, a.at,
       CASE WHEN f.csat <= 2 OR f.nps <= 6 OR f.solved_first_contact IS FALSE THEN a.at END,
       CASE WHEN f.praised THEN a.at END
FROM gen g
JOIN ticket_facts f USING (ticket_id)
CROSS JOIN LATERAL (
  SELECT date_trunc('milliseconds', g.resolved_at + g.delay + g.u_answer_after * interval '1 day')
    AS at
) AS a
WHERE g.answered
"""

# Dense histogram (BUCKETS counts) from the bucket index of each ticket in a group.
_HISTOGRAM_FN = """
CREATE FUNCTION pg_temp.bench_histogram(buckets int[], size int) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    counts int[] := array_fill(0, ARRAY[size]);
    b int;
BEGIN
    FOREACH b IN ARRAY coalesce(buckets, '{}') LOOP
        counts[b + 1] := counts[b + 1] + 1;
    END LOOP;
    RETURN counts;
END $$
"""

# feedback.domain.kpis.contribution() per ticket, summed per rollup key as dimension_values()
# spreads it. $1 = BUCKET_BOUNDS_S in ms, $2 = BUCKETS.
_ROLLUP = """
INSERT INTO kpi_rollup (dimension, day, value, tickets, complaints, fcr_observed, frt_count,
    frt_sum_ms, res_count, res_sum_ms, sla_met, sla_breached, escalated, surveys_sent,
    surveys_answered, csat_count, csat_satisfied, nps_count, nps_promoters, nps_detractors,
    fcr_answer_count, fcr_answer_yes, praise, frt_hist, res_hist)
WITH timed AS (
  SELECT f.*,
         CASE WHEN first_response_at IS NOT NULL THEN
           greatest(round(extract(epoch FROM first_response_at - opened_at) * 1000), 0)::bigint
         END AS frt_ms,
         greatest(round(extract(epoch FROM resolved_at - opened_at) * 1000), 0)::bigint AS res_ms
  FROM ticket_facts f
  WHERE resolved_at IS NOT NULL AND opened_at IS NOT NULL
), contribution AS (
  SELECT (resolved_at AT TIME ZONE 'UTC')::date AS day,
         queue_id, agent_id, channel, category,
         coalesce(category = 'complaint', false)::int AS complaints,
         (NOT reopened AND NOT recontacted)::int AS fcr_observed,
         (frt_ms IS NOT NULL)::int AS frt_count,
         coalesce(frt_ms, 0) AS frt_sum_ms,
         res_ms,
         (SELECT count(*) FROM jsonb_each_text(sla_outcomes) o WHERE o.value = 'met') AS sla_met,
         (SELECT count(*) FROM jsonb_each_text(sla_outcomes) o WHERE o.value = 'breached')
           AS sla_breached,
         escalated::int AS escalated,
         survey_sent::int AS surveys_sent,
         answered::int AS surveys_answered,
         (answered AND csat IS NOT NULL)::int AS csat_count,
         coalesce(answered AND csat >= 4, false)::int AS csat_satisfied,
         (answered AND nps IS NOT NULL)::int AS nps_count,
         coalesce(answered AND nps >= 9, false)::int AS nps_promoters,
         coalesce(answered AND nps <= 6, false)::int AS nps_detractors,
         (answered AND solved_first_contact IS NOT NULL)::int AS fcr_answer_count,
         (answered AND solved_first_contact IS TRUE)::int AS fcr_answer_yes,
         praised::int AS praise,
         -- least() skips NULLs: a ticket with no first response must stay out of frt_hist
         CASE WHEN frt_ms IS NOT NULL THEN least(width_bucket(frt_ms - 1, $1::bigint[]), $2 - 1)
         END AS frt_bucket,
         least(width_bucket(res_ms - 1, $1::bigint[]), $2 - 1) AS res_bucket
  FROM timed
)
SELECT d.dimension, c.day, d.value, count(*), sum(complaints), sum(fcr_observed),
       sum(frt_count), sum(frt_sum_ms), count(*), sum(res_ms), sum(sla_met), sum(sla_breached),
       sum(escalated), sum(surveys_sent), sum(surveys_answered), sum(csat_count),
       sum(csat_satisfied), sum(nps_count), sum(nps_promoters), sum(nps_detractors),
       sum(fcr_answer_count), sum(fcr_answer_yes), sum(praise),
       pg_temp.bench_histogram(array_agg(frt_bucket) FILTER (WHERE frt_bucket IS NOT NULL), $2),
       pg_temp.bench_histogram(array_agg(res_bucket), $2)
FROM contribution c
CROSS JOIN LATERAL (VALUES
    ('all', ''),
    ('queue', coalesce(nullif(c.queue_id, ''), '(none)')),
    ('agent', coalesce(nullif(c.agent_id, ''), '(none)')),
    ('channel', coalesce(nullif(c.channel, ''), '(none)')),
    ('category', coalesce(nullif(c.category, ''), '(none)'))
) AS d (dimension, value)
GROUP BY d.dimension, c.day, d.value
"""

_SIZES = """
SELECT c.relname, c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c WHERE c.relname = ANY($1::text[]) ORDER BY c.relname
"""


def _today() -> date:
    return datetime.now(UTC).date()


async def _load(conn: asyncpg.Connection) -> dict[str, float]:
    """Fills ticket_facts, surveys, answers and kpi_rollup; seconds per step."""
    from feedback.domain.kpis import BUCKET_BOUNDS_S, BUCKETS

    now = datetime.now(UTC)
    start = datetime.combine(_today() - timedelta(days=DAYS), datetime.min.time(), UTC)
    steps: dict[str, float] = {}
    await conn.execute("SET work_mem = '256MB'")
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute("SET synchronous_commit = off")
    await conn.execute("SELECT setseed(0.4242)")

    async def step(name: str, sql: str, *args: Any) -> None:
        began = time.perf_counter()
        await conn.execute(sql, *args)
        steps[name] = round(time.perf_counter() - began, 1)

    await step("draw_s", _GENERATE, start, DAYS, CUSTOMERS, now, TICKETS)
    await step("ticket_facts_s", _FACTS)
    await step("surveys_s", _SURVEYS, now)
    await step("answers_s", _ANSWERS)
    await conn.execute("DROP TABLE gen")
    await conn.execute(_HISTOGRAM_FN)
    await step("kpi_rollup_s", _ROLLUP, [b * 1000 for b in BUCKET_BOUNDS_S], BUCKETS)
    await step("vacuum_analyze_s", "VACUUM ANALYZE ticket_facts, surveys, answers, kpi_rollup")
    return steps


async def _check_rollup(conn: asyncpg.Connection, day: date) -> int:
    """The service's own Python on one day's facts must give exactly that day's rollup rows."""
    from feedback.db.facts import facts_of
    from feedback.domain.kpis import HIST_COLUMNS, SUM_COLUMNS, KpiSums, rollup_delta

    first = datetime.combine(day, datetime.min.time(), UTC)
    rows = await conn.fetch(
        "SELECT * FROM ticket_facts WHERE resolved_at >= $1 AND resolved_at < $2",
        first,
        first + timedelta(days=1),
    )
    expected: dict[tuple[str, str], KpiSums] = {}
    for row in rows:
        facts = dict(row)
        facts["sla_outcomes"] = orjson.loads(facts["sla_outcomes"])
        for (_, dimension, value), part in rollup_delta(None, facts_of(facts)).items():
            expected[(dimension, value)] = expected.get((dimension, value), KpiSums()) + part
    stored = {
        (r["dimension"], r["value"]): KpiSums.from_row(r)
        for r in await conn.fetch(
            f"SELECT dimension, value, {', '.join(SUM_COLUMNS + HIST_COLUMNS)} "
            "FROM kpi_rollup WHERE day = $1",
            day,
        )
    }
    if stored != expected:
        wrong = sorted(
            k for k in expected.keys() | stored.keys() if expected.get(k) != stored.get(k)
        )
        raise AssertionError(f"kpi_rollup for {day} differs from the service's code at {wrong[:5]}")
    return len(rows)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _summary(ms: list[float]) -> dict[str, float]:
    return {
        "requests": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(_percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


async def _time_http(
    client: httpx.AsyncClient, params: dict[str, str], count: int, warmup: int
) -> tuple[list[float], dict[str, Any]]:
    for _ in range(warmup):
        (await client.get("/v1/kpis", params=params)).raise_for_status()
    took: list[float] = []
    body: dict[str, Any] = {}
    for _ in range(count):
        began = time.perf_counter()
        response = await client.get("/v1/kpis", params=params)
        took.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        body = response.json()
    return took, body


def _numbered(sql: str, names: tuple[str, ...]) -> str:
    """A SQLAlchemy text() with asyncpg's $n placeholders."""
    for n, name in enumerate(names, start=1):
        sql = re.sub(rf"(?<!:):{name}\b", f"${n}", sql)
    return sql


def _kpi_sql() -> str:
    """The service's query (feedback.db.kpis)."""
    from feedback.db import kpis

    return _numbered(str(kpis._BY_VALUE), ("dimension", "first", "last"))


async def _reminder_scan_ms(conn: asyncpg.Connection) -> float:
    """What the scheduler's reminder query (run every tick, feedback.db.surveys) costs on this
    history."""
    from feedback.db import surveys

    sql = _numbered(str(surveys._DUE_REMINDERS), ("now", "limit"))
    async with conn.transaction():  # FOR UPDATE: whatever it locks is released at once
        plan = await conn.fetch("EXPLAIN ANALYZE " + sql, datetime.now(UTC), 200)
    executed = next(r[0] for r in plan if r[0].startswith("Execution Time"))
    return float(executed.split(":")[1].strip().split()[0])


async def _in_postgres(
    conn: asyncpg.Connection, dimension: str, first: date, last: date
) -> dict[str, Any]:
    sql = _kpi_sql()
    plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, dimension, first, last)
    lines = [r[0] for r in plan]
    executed = next(x for x in lines if x.startswith("Execution Time"))
    statement = await conn.prepare(sql)
    for _ in range(5):
        await statement.fetch(dimension, first, last)
    took = []
    for _ in range(30):
        began = time.perf_counter()
        await statement.fetch(dimension, first, last)
        took.append((time.perf_counter() - began) * 1000)
    return {
        "explain_analyze_ms": float(executed.split(":")[1].strip().split()[0]),
        "direct_p50_ms": round(statistics.median(took), 2),
        "direct_max_ms": round(max(took), 2),
        "plan_top": lines[0].strip(),
    }


async def _run(base_url: str, server_rss: Any) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url(DB).replace("+asyncpg", ""))
    try:
        began = time.perf_counter()
        steps = await _load(conn)
        load_s = round(time.perf_counter() - began, 1)
        last = _today() - timedelta(days=1)
        first = last - timedelta(days=RANGE_DAYS - 1)
        checked = await _check_rollup(conn, last - timedelta(days=3))
        sizes = {
            r["relname"]: {"rows": r["rows"], "mb": round(r["bytes"] / 2**20, 1)}
            for r in await conn.fetch(_SIZES, ["ticket_facts", "surveys", "answers", "kpi_rollup"])
        }
        in_range = await conn.fetchval(
            "SELECT count(*) FROM ticket_facts WHERE resolved_at >= $1 AND resolved_at < $2",
            datetime.combine(first, datetime.min.time(), UTC),
            datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC),
        )
        params = {"from": first.isoformat(), "to": last.isoformat()}
        async with httpx.AsyncClient(
            base_url=base_url, timeout=30, headers=supervisor_headers()
        ) as client:
            queue_ms, queue_body = await _time_http(
                client, {**params, "group_by": "queue"}, QUERIES, WARMUP
            )
            agent_ms, agent_body = await _time_http(
                client, {**params, "group_by": "agent"}, AGENT_QUERIES, 5
            )
        for body in (queue_body, agent_body):
            if body["total"]["tickets"] != in_range:
                raise AssertionError(
                    f"{body['total']['tickets']} tickets answered, {in_range} in range"
                )
        return {
            "tickets": TICKETS,
            "days": DAYS,
            "queues": len(QUEUES),
            "agents": len(QUEUES) * AGENTS_PER_QUEUE,
            "channels": len(CHANNELS),
            "categories": len(CATEGORIES),
            "load_s": load_s,
            "load_steps": steps,
            "rollup_checked_against_service_code": {
                "day": str(last - timedelta(days=3)),
                "tickets": checked,
            },
            "tables": sizes,
            "query": {"from": params["from"], "to": params["to"], "tickets_in_range": in_range},
            "by_queue": {
                "groups": len(queue_body["groups"]),
                "http": _summary(queue_ms),
                "postgres": await _in_postgres(conn, "queue", first, last),
            },
            "by_agent": {
                "groups": len(agent_body["groups"]),
                "http": _summary(agent_ms),
                "postgres": await _in_postgres(conn, "agent", first, last),
            },
            "scheduler_reminder_scan_ms": await _reminder_scan_ms(conn),
            "service_rss_mb": round(server_rss(), 1),
        }
    finally:
        await conn.close()


# The bench service consumes its own empty copies of the topics it reads, so events of the
# running stack (or of tests) cannot add tickets to the loaded data while it is measured.
CONSUMED = {
    "tickets": (ROUTER_TICKETS, "FEEDBACK_TICKETS_TOPIC"),
    "sla": (SLA_EVENTS, "FEEDBACK_SLA_TOPIC"),
    "contacts": (INTAKE_CONTACTS, "FEEDBACK_CONTACTS_TOPIC"),
}


def _private(name: str) -> str:
    """The service's setting (the benchmark's topic prefix goes before it on Kafka)."""
    return f"feedback.{name}"


async def _prepare() -> None:
    await ensure_topics(KAFKA, prefix=TOPIC_PREFIX)
    private = [_private(name) for name, _ in CONSUMED.values()]
    await ensure_topics(
        KAFKA, [n for t in private for n in (t, t + ".dlq")], partitions=1, prefix=TOPIC_PREFIX
    )
    for group, (name, _) in CONSUMED.items():
        await commit_group_at_end(KAFKA, f"{SERVICE_NAME}.{group}", [topic(_private(name))])


def _print(result: dict[str, Any]) -> None:
    print(
        f"\nfeedback KPI benchmark: {result['tickets']:,} tickets over {result['days']} days, "
        f"{result['query']['tickets_in_range']:,} in the 30-day range "
        f"(loaded in {result['load_s']} s)"
    )
    print(f"{'group_by':<10}{'groups':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'PG ms':>10}")
    for name in ("by_queue", "by_agent"):
        part = result[name]
        http = part["http"]
        print(
            f"{name[3:]:<10}{part['groups']:>8}{http['p50_ms']:>10}{http['p99_ms']:>10}"
            f"{http['max_ms']:>10}{part['postgres']['explain_analyze_ms']:>10}"
        )
    print(f"scheduler reminder scan (every tick): {result['scheduler_reminder_scan_ms']} ms")
    for table, size in result["tables"].items():
        print(f"  {table:<14}{size['rows']:>12,} rows {size['mb']:>9} MB")
    print(f"target: {result['target']} -> {'met' if result['target_met'] else 'NOT met'}")


def main(duration: int | None = None) -> None:
    del duration  # a fixed number of queries
    recreate_database(DB)
    asyncio.run(_prepare())
    env = {
        "FEEDBACK_DATABASE_URL": database_url(DB),
        "FEEDBACK_KAFKA_BOOTSTRAP": KAFKA,
        "FEEDBACK_SERVICE_NAME": SERVICE_NAME,
        "FEEDBACK_LOG_LEVEL": "WARNING",
        **{variable: _private(name) for name, variable in CONSUMED.values()},
    }
    server = start_uvicorn("feedback", "feedback.app:create_app", PORT, 1, env, "/readyz")
    try:
        result = asyncio.run(_run(f"http://127.0.0.1:{PORT}", server.rss_mb))
    finally:
        server.stop()
    result["load_generator"] = (
        f"one httpx client on the same machine, sequential requests, {QUERIES} by queue and "
        f"{AGENT_QUERIES} by agent, after {WARMUP} and 5 warm-up requests"
    )
    result["target"] = f"30-day KPI query grouped by queue, p99 < {TARGET_P99_MS:.0f} ms"
    result["target_met"] = result["by_queue"]["http"]["p99_ms"] < TARGET_P99_MS
    path = write_result("feedback", result)
    _print(result)
    print(f"written to {path}")
