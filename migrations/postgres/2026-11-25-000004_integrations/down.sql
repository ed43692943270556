DROP TABLE nppes_cache;
DROP TABLE integration_checks;
DROP TABLE alerts;
DROP TABLE idempotency_keys;
DROP TABLE job_schedule_runs;
DROP TABLE jobs;
