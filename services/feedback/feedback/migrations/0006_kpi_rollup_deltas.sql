-- KPI rollup deltas: every transaction that changes ticket facts appends its rollup delta here
-- instead of updating the shared kpi_rollup rows (today's 'all' row, each queue's, agent's and
-- channel's), so concurrent resolutions, SLA outcomes and answers never wait on one row's lock
-- (nor deadlock on two). Reads add the pending deltas to kpi_rollup; the scheduler folds them
-- into kpi_rollup in the background (feedback.db.facts.fold_rollup_deltas), a batch at a time,
-- in the transaction that deletes them. A histogram that a delta does not change is NULL.
CREATE TABLE kpi_rollup_delta (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dimension        text NOT NULL,
    day              date NOT NULL,
    value            text NOT NULL,
    tickets          bigint NOT NULL DEFAULT 0,
    complaints       bigint NOT NULL DEFAULT 0,
    fcr_observed     bigint NOT NULL DEFAULT 0,
    frt_count        bigint NOT NULL DEFAULT 0,
    frt_sum_ms       bigint NOT NULL DEFAULT 0,
    res_count        bigint NOT NULL DEFAULT 0,
    res_sum_ms       bigint NOT NULL DEFAULT 0,
    sla_met          bigint NOT NULL DEFAULT 0,
    sla_breached     bigint NOT NULL DEFAULT 0,
    escalated        bigint NOT NULL DEFAULT 0,
    surveys_sent     bigint NOT NULL DEFAULT 0,
    surveys_answered bigint NOT NULL DEFAULT 0,
    csat_count       bigint NOT NULL DEFAULT 0,
    csat_satisfied   bigint NOT NULL DEFAULT 0,
    nps_count        bigint NOT NULL DEFAULT 0,
    nps_promoters    bigint NOT NULL DEFAULT 0,
    nps_detractors   bigint NOT NULL DEFAULT 0,
    fcr_answer_count bigint NOT NULL DEFAULT 0,
    fcr_answer_yes   bigint NOT NULL DEFAULT 0,
    praise           bigint NOT NULL DEFAULT 0,
    frt_hist         int[],
    res_hist         int[]
);
-- The reads' range filter, as on kpi_rollup's primary key.
CREATE INDEX kpi_rollup_delta_key ON kpi_rollup_delta (dimension, day, value);
