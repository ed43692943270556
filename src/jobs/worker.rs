//! Workers: claim a job, run its kind's handler, record the outcome. Several run in each
//! `serve` process and any number of processes may share the database; the lease in the
//! jobs table is what keeps them from running the same job twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::{Job, JobQueue};
use crate::store::StoreError;

/// The code that does one kind of job.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync {
    /// Does the job. A handler that writes resources marks the job done in the same
    /// transaction ([`super::complete_in`]) and returns [`JobError::LeaseLost`] when that fails.
    async fn run(&self, job: &Job) -> Result<(), JobError>;
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again later: after `after` when the cause says when (Retry-After, a circuit
    /// breaker's cool-down), otherwise after an exponential backoff.
    #[error("{reason}")]
    Retry { reason: String, after: Option<Duration> },
    /// Trying again cannot help (bad payload, the resource is gone): the job is buried.
    #[error("{0}")]
    Fatal(String),
    /// Another worker holds the job now; this attempt's work was rolled back.
    #[error("the job's lease ran out and another worker took it")]
    LeaseLost,
}

impl JobError {
    pub fn retry(reason: impl Into<String>) -> JobError {
        JobError::Retry {
            reason: reason.into(),
            after: None,
        }
    }
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        // The database being briefly unavailable is worth another try.
        JobError::retry(format!("store: {e}"))
    }
}

/// What became of one claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    Retried,
    Dead,
    LeaseLost,
}

/// Called when a job is buried, so that operations hear of it (an ops alert).
pub type OnDead = Arc<dyn Fn(&Job, &str) + Send + Sync>;

/// Handlers by job kind.
#[derive(Default, Clone)]
pub struct Handlers {
    by_kind: HashMap<String, Arc<dyn JobHandler>>,
    on_dead: Option<OnDead>,
}

impl Handlers {
    pub fn register(&mut self, kind: &str, handler: Arc<dyn JobHandler>) {
        self.by_kind.insert(kind.to_string(), handler);
    }

    pub fn on_dead(&mut self, hook: OnDead) {
        self.on_dead = Some(hook);
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.by_kind.keys().cloned().collect();
        kinds.sort();
        kinds
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long an idle worker waits before looking for work again.
    pub poll_interval: Duration,
    /// How long a claimed job is this worker's; a worker that dies frees it after this.
    pub lease: Duration,
    /// The longest backoff between attempts of a failing job.
    pub max_backoff: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(300),
            max_backoff: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    queue: JobQueue,
    handlers: Arc<Handlers>,
    settings: WorkerSettings,
    id: String,
}

impl Worker {
    pub fn new(queue: JobQueue, handlers: Arc<Handlers>, settings: WorkerSettings) -> Worker {
        // Unique per worker and readable in the table: host process id and a random suffix.
        let id = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Worker {
            queue,
            handlers,
            settings,
            id,
        }
    }

    /// Claims and runs one job of `kinds` (every kind with a handler when empty). None when
    /// no job was ready.
    pub async fn run_one(&self, kinds: &[String]) -> Result<Option<(Job, JobOutcome)>, StoreError> {
        let kinds = if kinds.is_empty() {
            self.handlers.kinds()
        } else {
            kinds.to_vec()
        };
        let (queue, id, lease) = (self.queue.clone(), self.id.clone(), self.settings.lease);
        let claimed = blocking(move || queue.claim(&id, &kinds, lease)).await?;
        let Some(job) = claimed else { return Ok(None) };
        let outcome = self.execute(&job).await?;
        Ok(Some((job, outcome)))
    }

    async fn execute(&self, job: &Job) -> Result<JobOutcome, StoreError> {
        // Instrumented, not entered: an entered span held across an await leaks into whatever
        // else the thread polls, and every later job's span nested inside the previous one.
        let span = tracing::info_span!("job", id = job.id, kind = %job.kind, attempt = job.attempts);
        self.execute_in_span(job).instrument(span).await
    }

    async fn execute_in_span(&self, job: &Job) -> Result<JobOutcome, StoreError> {
        let result = match self.handlers.by_kind.get(&job.kind) {
            Some(handler) => handler.run(job).await,
            None => Err(JobError::Fatal(format!("no handler for job kind {}", job.kind))),
        };
        let queue = self.queue.clone();
        let job_owned = job.clone();
        match result {
            Ok(()) => {
                blocking(move || queue.complete(&job_owned)).await?;
                tracing::info!("job done");
                Ok(JobOutcome::Done)
            }
            Err(JobError::LeaseLost) => {
                tracing::warn!("job lease lost; another worker has it");
                Ok(JobOutcome::LeaseLost)
            }
            Err(error) => {
                let (permanent, delay) = match &error {
                    JobError::Fatal(_) => (true, Duration::ZERO),
                    JobError::Retry { after, .. } => (false, after.unwrap_or_else(|| self.backoff(job.attempts))),
                    JobError::LeaseLost => unreachable!(),
                };
                let message = error.to_string();
                let reason = message.clone();
                let dead = blocking(move || queue.fail(&job_owned, &reason, delay, permanent)).await?;
                if dead {
                    tracing::error!(error = %message, "job dead");
                    if let Some(hook) = self.handlers.on_dead.clone() {
                        // The hook writes an alert: database work, so off the runtime's threads.
                        let (job, message) = (job.clone(), message.clone());
                        blocking(move || {
                            hook(&job, &message);
                            Ok(())
                        })
                        .await?;
                    }
                    Ok(JobOutcome::Dead)
                } else {
                    tracing::warn!(error = %message, retry_in_ms = delay.as_millis() as u64, "job will be retried");
                    Ok(JobOutcome::Retried)
                }
            }
        }
    }

    /// Exponential backoff with jitter: 2, 4, 8 … seconds, at most `max_backoff`.
    fn backoff(&self, attempts: i32) -> Duration {
        let base = Duration::from_secs(1u64 << attempts.clamp(1, 20) as u32).min(self.settings.max_backoff);
        let jitter = uuid::Uuid::new_v4().as_u128() as u64 % (base.as_millis() as u64 / 4 + 1);
        base + Duration::from_millis(jitter)
    }

    /// Runs jobs of `kinds` until none is pending (queued, running elsewhere, or waiting for
    /// a retry), for `providercard jobs run`. Returns the outcomes seen.
    pub async fn drain(&self, kinds: &[String], give_up_after: Duration) -> Result<Vec<JobOutcome>, StoreError> {
        let deadline = tokio::time::Instant::now() + give_up_after;
        let mut outcomes = Vec::new();
        loop {
            match self.run_one(kinds).await? {
                Some((_, outcome)) => outcomes.push(outcome),
                None => {
                    let (queue, kinds) = (self.queue.clone(), kinds.to_vec());
                    let pending = blocking(move || queue.pending(&kinds)).await?;
                    if pending == 0 || tokio::time::Instant::now() >= deadline {
                        return Ok(outcomes);
                    }
                    tokio::time::sleep(self.settings.poll_interval).await;
                }
            }
        }
    }

    /// Works until `shutdown` turns true, sleeping `poll_interval` when there is nothing to do.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let idle = match self.run_one(&[]).await {
                Ok(Some(_)) => false,
                Ok(None) => true,
                Err(error) => {
                    tracing::warn!(%error, "job queue unavailable");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

/// Database work from async code, off the runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Unavailable(format!("blocking task failed: {e}")))?
}
