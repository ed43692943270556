-- Durable jobs (src/jobs/). A job is enqueued in the transaction of the write that causes it.
-- Workers claim a ready job by setting a lease (locked_by, locked_until); a lease that runs
-- out (the worker died) makes the job claimable again. Times are Unix milliseconds.
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- While a job is queued or running no second job with the same key can be enqueued.
    dedupe_key TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE UNIQUE INDEX jobs_pending_dedupe ON jobs (dedupe_key) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_ready ON jobs (state, run_at);

-- One row per schedule period (e.g. nppes-revalidation, 2026-W48): whichever process inserts
-- it first enqueues that period's job; the primary key stops every other process.
CREATE TABLE job_schedule_runs (
    schedule TEXT NOT NULL,
    period TEXT NOT NULL,
    job_id BIGINT NOT NULL,
    PRIMARY KEY (schedule, period)
);

-- Idempotency keys ({provider}-{event}-{integration}) with the first result, for 24 hours.
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Ops alerts (an integration down, error rate, latency, sync success) and provider alerts
-- (NPI not found, deactivated, discrepancies with NPPES). At most one open alert per kind and
-- subject: a condition that persists updates last_seen instead of firing again. Deliveries to
-- the sinks are jobs (alert-delivery), enqueued in the transaction that fires or resolves.
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    npi TEXT,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    details TEXT,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE UNIQUE INDEX alerts_open ON alerts (kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX alerts_first_seen ON alerts (first_seen);

-- Every health check of an integration, for status and 30-day availability.
CREATE TABLE integration_checks (
    integration TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    ok BOOLEAN NOT NULL,
    response_ms BIGINT NOT NULL,
    message TEXT
);
CREATE INDEX integration_checks_by_time ON integration_checks (integration, checked_at);

-- NPI Registry answers, kept for the configured time (7 days by default): found (with the
-- record as NPPES sent it), not_found or deactivated (with NPPES's message).
CREATE TABLE nppes_cache (
    npi TEXT PRIMARY KEY,
    outcome TEXT NOT NULL CHECK (outcome IN ('found', 'not_found', 'deactivated')),
    record TEXT,
    fetched_at BIGINT NOT NULL
);
