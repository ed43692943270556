//! Durable jobs: work that must happen even when the process that caused it dies (NPPES
//! enrichment after a write, the weekly re-validation, deliveries to outside systems).
//!
//! A job is a row in `jobs`, enqueued in the same database transaction as the write that
//! causes it, so a write and its follow-up commit or vanish together. Any number of
//! processes sharing the database run workers ([`worker`]): a worker claims one ready job by
//! taking a lease on it (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite serialises writers, so
//! the same single `UPDATE … RETURNING` is enough there). A worker that dies leaves a lease
//! that runs out, and the job becomes claimable again. Handlers that write resources mark the
//! job done inside their own transaction ([`complete_in`]), which fails when the lease was
//! lost, so the work of a job commits exactly once. Schedules ([`schedule`]) enqueue one job
//! per period, deduplicated across processes by a primary key.

pub mod schedule;
pub mod worker;

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use serde_json::Value;

use crate::store::{dialect, Backend, DbConnection, Store, StoreError, Tx};

/// Milliseconds since the Unix epoch: the time unit of every jobs, alerts and cache column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: Value,
    /// While a job with this key is queued or running, enqueueing another is a no-op.
    pub dedupe_key: Option<String>,
    /// Not before this instant (ms); now when None.
    pub run_at: Option<i64>,
    pub max_attempts: i32,
}

impl NewJob {
    pub fn new(kind: &str, payload: Value) -> NewJob {
        NewJob {
            kind: kind.to_string(),
            payload,
            dedupe_key: None,
            run_at: None,
            max_attempts: 8,
        }
    }

    pub fn dedupe(mut self, key: impl Into<String>) -> NewJob {
        self.dedupe_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at_ms: i64) -> NewJob {
        self.run_at = Some(at_ms);
        self
    }
}

/// A claimed job: the worker holds its lease until `lease_until`.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: Value,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub max_attempts: i32,
    pub worker: String,
}

/// A job as stored, for listings and tests.
#[derive(Debug, Clone, QueryableByName, serde::Serialize)]
pub struct JobRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub payload: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub dedupe_key: Option<String>,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
    #[diesel(sql_type = BigInt)]
    pub run_at: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Integer)]
    max_attempts: i32,
}

/// Enqueues `job` on `conn` (inside the caller's transaction when it has one). Returns the new
/// job's id, or None when a pending job with the same dedupe key already exists.
pub fn enqueue_on(conn: &mut DbConnection, backend: Backend, job: &NewJob) -> Result<Option<i64>, StoreError> {
    let now = now_ms();
    let sql = dialect(
        "INSERT INTO jobs (kind, payload, dedupe_key, state, attempts, max_attempts, run_at, created_at) \
         VALUES (?, ?, ?, 'queued', 0, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        backend,
    );
    let rows = diesel::sql_query(sql)
        .bind::<Text, _>(&job.kind)
        .bind::<Text, _>(job.payload.to_string())
        .bind::<Nullable<Text>, _>(job.dedupe_key.as_deref())
        .bind::<Integer, _>(job.max_attempts)
        .bind::<BigInt, _>(job.run_at.unwrap_or(now))
        .bind::<BigInt, _>(now)
        .load::<IdRow>(conn)?;
    Ok(rows.first().map(|r| r.id))
}

/// Enqueues inside a write transaction: the job exists exactly when the write committed.
pub fn enqueue(tx: &mut Tx<'_>, job: &NewJob) -> Result<Option<i64>, StoreError> {
    let backend = tx.backend();
    enqueue_on(tx.connection(), backend, job)
}

/// Marks `job` done inside the handler's own transaction, so that the job's effects and its
/// completion commit together. `Ok(false)` means the lease was lost (another worker re-leased
/// the job after this one's ran out): the caller must then roll back its work.
pub fn complete_in(tx: &mut Tx<'_>, job: &Job) -> Result<bool, StoreError> {
    let backend = tx.backend();
    mark_done(tx.connection(), backend, job)
}

fn mark_done(conn: &mut DbConnection, backend: Backend, job: &Job) -> Result<bool, StoreError> {
    let sql = dialect(
        "UPDATE jobs SET state = 'done', finished_at = ?, locked_until = NULL \
         WHERE id = ? AND state = 'running' AND locked_by = ? AND attempts = ?",
        backend,
    );
    let n = diesel::sql_query(sql)
        .bind::<BigInt, _>(now_ms())
        .bind::<BigInt, _>(job.id)
        .bind::<Text, _>(&job.worker)
        .bind::<Integer, _>(job.attempts)
        .execute(conn)?;
    Ok(n == 1)
}

/// The jobs table seen from a worker or an operator.
#[derive(Clone)]
pub struct JobQueue {
    store: Store,
}

impl JobQueue {
    pub fn new(store: Store) -> JobQueue {
        JobQueue { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn enqueue(&self, job: &NewJob) -> Result<Option<i64>, StoreError> {
        let mut conn = self.store.conn()?;
        enqueue_on(&mut conn, self.store.backend(), job)
    }

    /// Claims the next ready job of one of `kinds` (all kinds when empty) for `worker`, with a
    /// lease of `lease`. A running job whose lease ran out is ready again: its worker died.
    pub fn claim(&self, worker: &str, kinds: &[String], lease: Duration) -> Result<Option<Job>, StoreError> {
        let backend = self.store.backend();
        let now = now_ms();
        let kind_filter = if kinds.is_empty() {
            String::new()
        } else {
            format!(" AND kind IN ({})", vec!["?"; kinds.len()].join(", "))
        };
        let lock = match backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = dialect(
            &format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = ?, locked_until = ? \
                 WHERE id = (SELECT id FROM jobs \
                   WHERE ((state = 'queued' AND run_at <= ?) OR (state = 'running' AND locked_until < ?)){kind_filter} \
                   ORDER BY run_at, id LIMIT 1{lock}) \
                 RETURNING id, kind, payload, attempts, max_attempts"
            ),
            backend,
        );
        let mut query = diesel::sql_query(sql)
            .into_boxed()
            .bind::<Text, _>(worker.to_string())
            .bind::<BigInt, _>(now + lease.as_millis() as i64)
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(now);
        for kind in kinds {
            query = query.bind::<Text, _>(kind.clone());
        }
        // One statement, atomic on its own: no transaction, so SQLite takes the write lock at
        // once (waiting on busy_timeout) rather than failing to upgrade a read snapshot.
        let mut conn = self.store.conn()?;
        let claimed = query.load::<ClaimedRow>(&mut conn)?;
        let Some(row) = claimed.into_iter().next() else {
            return Ok(None);
        };
        let payload = serde_json::from_str(&row.payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(Job {
            id: row.id,
            kind: row.kind,
            payload,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            worker: worker.to_string(),
        }))
    }

    /// Marks a job done (when its handler did not already, in its own transaction).
    pub fn complete(&self, job: &Job) -> Result<bool, StoreError> {
        let mut conn = self.store.conn()?;
        mark_done(&mut conn, self.store.backend(), job)
    }

    /// Puts a failed job back in the queue to run after `delay`, or buries it (state `dead`,
    /// kept with its last error) when it has used its attempts. Returns whether it is dead.
    pub fn fail(&self, job: &Job, error: &str, delay: Duration, permanent: bool) -> Result<bool, StoreError> {
        let dead = permanent || job.attempts >= job.max_attempts;
        let sql = dialect(
            "UPDATE jobs SET state = ?, run_at = ?, last_error = ?, locked_by = NULL, locked_until = NULL, \
             finished_at = ? WHERE id = ? AND state = 'running' AND locked_by = ? AND attempts = ?",
            self.store.backend(),
        );
        let now = now_ms();
        let mut conn = self.store.conn()?;
        diesel::sql_query(sql)
            .bind::<Text, _>(if dead { "dead" } else { "queued" })
            .bind::<BigInt, _>(now + delay.as_millis() as i64)
            .bind::<Text, _>(error)
            .bind::<Nullable<BigInt>, _>(dead.then_some(now))
            .bind::<BigInt, _>(job.id)
            .bind::<Text, _>(&job.worker)
            .bind::<Integer, _>(job.attempts)
            .execute(&mut conn)?;
        Ok(dead)
    }

    /// Jobs of a kind (all when None), newest first, for operators and tests.
    pub fn list(&self, kind: Option<&str>) -> Result<Vec<JobRow>, StoreError> {
        let backend = self.store.backend();
        let columns = "id, kind, payload, dedupe_key, state, attempts, max_attempts, run_at, last_error";
        let mut conn = self.store.conn()?;
        Ok(match kind {
            Some(kind) => diesel::sql_query(dialect(
                &format!("SELECT {columns} FROM jobs WHERE kind = ? ORDER BY id DESC"),
                backend,
            ))
            .bind::<Text, _>(kind)
            .load(&mut conn)?,
            None => diesel::sql_query(format!("SELECT {columns} FROM jobs ORDER BY id DESC")).load(&mut conn)?,
        })
    }

    /// How many jobs of these kinds are queued or running (due or not).
    pub fn pending(&self, kinds: &[String]) -> Result<i64, StoreError> {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let placeholders = vec!["?"; kinds.len().max(1)].join(", ");
        let sql = dialect(
            &format!(
                "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'running') AND kind IN ({placeholders})"
            ),
            self.store.backend(),
        );
        let mut query = diesel::sql_query(sql).into_boxed();
        if kinds.is_empty() {
            query = query.bind::<Text, _>(String::new());
        }
        for kind in kinds {
            query = query.bind::<Text, _>(kind.clone());
        }
        let mut conn = self.store.conn()?;
        Ok(query.get_result::<N>(&mut conn)?.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn queue() -> (tempfile::TempDir, JobQueue) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let store = Store::open(&url, 4, Arc::new(crate::store::NoIndex)).unwrap();
        store.migrate().unwrap();
        (dir, JobQueue::new(store))
    }

    fn kinds(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_pending_dedupe_key_enqueues_once_and_a_finished_one_allows_the_next() {
        let (_dir, q) = queue();
        let job = NewJob::new("nppes-enrich", serde_json::json!({"id": "a"})).dedupe("nppes-enrich:Practitioner/a");
        assert!(q.enqueue(&job).unwrap().is_some());
        assert_eq!(q.enqueue(&job).unwrap(), None, "a second pending job with the same key");
        let claimed = q.claim("w1", &[], Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!(q.enqueue(&job).unwrap(), None, "still pending while running");
        assert!(q.complete(&claimed).unwrap());
        assert!(
            q.enqueue(&job).unwrap().is_some(),
            "done: the next write may enqueue again"
        );
    }

    #[test]
    fn a_leased_job_is_not_claimed_twice_until_its_lease_runs_out() {
        let (_dir, q) = queue();
        q.enqueue(&NewJob::new("k", serde_json::json!({}))).unwrap();
        let first = q
            .claim("w1", &kinds(&["k"]), Duration::from_millis(200))
            .unwrap()
            .unwrap();
        assert!(q
            .claim("w2", &kinds(&["k"]), Duration::from_secs(60))
            .unwrap()
            .is_none());
        std::thread::sleep(Duration::from_millis(250));
        let again = q.claim("w2", &kinds(&["k"]), Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (first.id, 2));
        // The first worker woke up late: its completion must not count.
        assert!(!q.complete(&first).unwrap());
        assert!(q.complete(&again).unwrap());
        assert_eq!(q.list(Some("k")).unwrap()[0].state, "done");
    }

    #[test]
    fn failures_retry_later_then_bury_the_job_with_its_last_error() {
        let (_dir, q) = queue();
        let mut job = NewJob::new("k", serde_json::json!({}));
        job.max_attempts = 2;
        q.enqueue(&job).unwrap();
        let first = q.claim("w", &[], Duration::from_secs(60)).unwrap().unwrap();
        assert!(!q
            .fail(&first, "503 from NPPES", Duration::from_secs(3600), false)
            .unwrap());
        assert!(
            q.claim("w", &[], Duration::from_secs(60)).unwrap().is_none(),
            "not before its retry time"
        );
        assert_eq!(q.pending(&kinds(&["k"])).unwrap(), 1);
        q.enqueue(&NewJob::new("k", serde_json::json!({"n": 2}))).unwrap();
        let other = q.claim("w", &[], Duration::from_secs(60)).unwrap().unwrap();
        assert_ne!(other.id, first.id);
        // Make the first due again and fail it for the last time.
        q.fail(&other, "x", Duration::ZERO, true).unwrap();
        let mut conn = q.store().conn().unwrap();
        diesel::sql_query("UPDATE jobs SET run_at = 0 WHERE state = 'queued'")
            .execute(&mut conn)
            .unwrap();
        let second = q.claim("w", &[], Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!(second.id, first.id);
        assert!(
            q.fail(&second, "timed out", Duration::ZERO, false).unwrap(),
            "attempts used up"
        );
        let rows = q.list(Some("k")).unwrap();
        let dead: Vec<_> = rows.iter().filter(|r| r.state == "dead").collect();
        assert_eq!(dead.len(), 2);
        assert!(dead.iter().any(|r| r.last_error.as_deref() == Some("timed out")));
    }

    #[test]
    fn claims_only_the_kinds_asked_for() {
        let (_dir, q) = queue();
        q.enqueue(&NewJob::new("a", serde_json::json!({}))).unwrap();
        assert!(q.claim("w", &kinds(&["b"]), Duration::from_secs(60)).unwrap().is_none());
        assert!(q
            .claim("w", &kinds(&["a", "b"]), Duration::from_secs(60))
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_schedule_enqueues_one_job_per_period_however_often_it_is_checked() {
        use chrono::TimeZone;
        let (_dir, q) = queue();
        let weekly = schedule::Schedule {
            name: "nppes-revalidation".into(),
            kind: "nppes-revalidation".into(),
            every: schedule::Every::Week,
            payload: serde_json::json!({}),
        };
        let wednesday = chrono::Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let friday = chrono::Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let next_week = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let schedules = [weekly];
        assert_eq!(
            schedule::enqueue_due(q.store(), &schedules, wednesday).unwrap().len(),
            1
        );
        // Even once that week's job is done, the week is not scheduled again.
        let job = q.claim("w", &[], Duration::from_secs(60)).unwrap().unwrap();
        q.complete(&job).unwrap();
        assert!(schedule::enqueue_due(q.store(), &schedules, friday).unwrap().is_empty());
        assert_eq!(
            schedule::enqueue_due(q.store(), &schedules, next_week).unwrap().len(),
            1
        );
    }
}
