//! The NPPES jobs:
//! - `nppes-enrich`: the enrichment a write could not wait for (NPPES slow, down or rate
//!   limiting). Retried with backoff, or after the Retry-After / breaker cool-down.
//! - `nppes-revalidation`: scheduled weekly; enqueues one `nppes-revalidate` per stored NPI,
//!   deduplicated, so any number of processes share the work and the rate limit paces it.
//! - `nppes-revalidate`: a fresh lookup of one provider's NPI (never the cache), applied
//!   like an enrichment: still active, data still matching, withdrawn when deactivated,
//!   reinstated when NPPES shows it again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::adapter::{LookupFailure, Nppes, NAME};
use super::enrichment::{apply_stored, npi_of, ENRICH_JOB};
use super::npi::{Npi, NPI_SYSTEM};
use crate::integrations::adapter::ProviderRef;
use crate::integrations::resilience::GuardError;
use crate::jobs::worker::{blocking, JobError, JobHandler};
use crate::jobs::{Job, JobQueue, NewJob};
use crate::ops::metrics;
use crate::store::Store;

pub const REVALIDATION_JOB: &str = "nppes-revalidation";
pub const REVALIDATE_JOB: &str = "nppes-revalidate";

/// How long a job waits on NPPES per attempt (a write waits only its configured timeout).
const JOB_BUDGET: Duration = Duration::from_secs(60);

/// Reads which provider a job is about, and its NPI from the stored resource.
async fn provider_of(store: &Store, job: &Job) -> Result<Option<(ProviderRef, Npi)>, JobError> {
    let resource_type = job.payload["resourceType"].as_str().unwrap_or_default().to_string();
    let id = job.payload["id"].as_str().unwrap_or_default().to_string();
    if resource_type.is_empty() || id.is_empty() {
        return Err(JobError::Fatal(format!("{} job without resourceType and id", job.kind)));
    }
    let (s, t, i) = (store.clone(), resource_type.clone(), id.clone());
    let current = blocking(move || s.read(&t, &i)).await?;
    let Some(current) = current.filter(|c| !c.deleted) else {
        return Ok(None);
    };
    let resource = current.json().map_err(|e| JobError::Fatal(e.to_string()))?;
    let Some(npi) = npi_of(&resource) else { return Ok(None) };
    Ok(Some((
        ProviderRef {
            resource_type,
            id,
            npi: Some(npi.as_str().to_string()),
        },
        npi,
    )))
}

fn retry(error: LookupFailure) -> JobError {
    metrics::record_sync(NAME, false, SystemTime::now());
    if let GuardError::Failed(e) = &error {
        if !e.is_transient() {
            // The registry refused the question itself: asking again cannot help.
            return JobError::Fatal(format!("NPPES: {e}"));
        }
    }
    JobError::Retry {
        after: error.retry_in(),
        reason: format!("NPPES: {error}"),
    }
}

/// Looks up (fresh, or cached when `cached_ok`) and applies the answer, completing the job in
/// the same transaction.
async fn check(nppes: &Nppes, store: &Store, job: &Job, cached_ok: bool) -> Result<(), JobError> {
    let Some((provider, npi)) = provider_of(store, job).await? else {
        return Ok(());
    };
    let answer = if cached_ok {
        nppes.lookup_cached(&npi, JOB_BUDGET).await
    } else {
        nppes.lookup(&npi, JOB_BUDGET).await
    }
    .map_err(retry)?;
    let (s, reference, j) = (store.clone(), nppes.reference.clone(), job.clone());
    let (report, held) = blocking(move || apply_stored(&s, &reference, &provider, &answer, Some(&j))).await?;
    if !held {
        return Err(JobError::LeaseLost);
    }
    metrics::record_sync(NAME, true, SystemTime::now());
    tracing::info!(outcome = %report.outcome, changed = report.changed.len(), "NPPES applied");
    Ok(())
}

pub struct EnrichJob {
    pub nppes: Arc<Nppes>,
    pub store: Store,
}

#[async_trait::async_trait]
impl JobHandler for EnrichJob {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        check(&self.nppes, &self.store, job, true).await
    }
}

pub struct RevalidateJob {
    pub nppes: Arc<Nppes>,
    pub store: Store,
}

#[async_trait::async_trait]
impl JobHandler for RevalidateJob {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        check(&self.nppes, &self.store, job, false).await
    }
}

/// Fans the weekly re-validation out to one job per provider carrying an NPI.
pub struct RevalidationJob {
    pub queue: JobQueue,
    pub batch_size: i64,
}

#[async_trait::async_trait]
impl JobHandler for RevalidationJob {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        let mut enqueued = 0usize;
        for resource_type in ["Practitioner", "Organization"] {
            let mut after: Option<String> = None;
            loop {
                let (queue, size, last) = (self.queue.clone(), self.batch_size, after.clone());
                let batch = blocking(move || {
                    queue
                        .store()
                        .tokens_in_system(resource_type, "identifier", NPI_SYSTEM, last.as_deref(), size)
                })
                .await?;
                let Some((last_id, _)) = batch.last().cloned() else {
                    break;
                };
                let store = self.queue.store().clone();
                // One transaction per batch, not one per job.
                enqueued += blocking(move || {
                    store.write(|tx| {
                        let mut n = 0;
                        let mut previous: Option<&str> = None;
                        for (id, _npi) in &batch {
                            if previous == Some(id.as_str()) {
                                continue;
                            }
                            previous = Some(id.as_str());
                            let job = NewJob::new(REVALIDATE_JOB, json!({"resourceType": resource_type, "id": id}))
                                .dedupe(format!("{REVALIDATE_JOB}:{resource_type}/{id}"));
                            n += usize::from(crate::jobs::enqueue(tx, &job)?.is_some());
                        }
                        Ok(n)
                    })
                })
                .await?;
                after = Some(last_id);
            }
        }
        tracing::info!(enqueued, "NPPES re-validation enqueued");
        Ok(())
    }
}

/// The job kinds `providercard jobs run KIND` drains for a scheduled kind.
pub fn kinds_of(kind: &str) -> Vec<String> {
    match kind {
        REVALIDATION_JOB => vec![REVALIDATION_JOB.into(), REVALIDATE_JOB.into()],
        ENRICH_JOB => vec![ENRICH_JOB.into()],
        other => vec![other.into()],
    }
}
