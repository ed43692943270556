//! Building the integrations from the configuration, once per process: the adapters and
//! their registry, the write hook, the job handlers and schedules; and starting the
//! background work of `serve` (job workers, the scheduler, health checks, alert rules).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::nppes::adapter::Nppes;
use super::nppes::enrichment::{NppesWriteHook, Reference, ENRICH_JOB};
use super::nppes::jobs::{EnrichJob, RevalidateJob, RevalidationJob, REVALIDATE_JOB, REVALIDATION_JOB};
use super::nppes::taxonomy::plan_net_specialties;
use super::nppes::{NuccCodeSet, RegistryClient};
use super::registry::IntegrationRegistry;
use super::resilience::{BreakerConfig, Guard, GuardConfig, RateLimit, RetryPolicy};
use crate::config::{self, Config};
use crate::fhir::FhirServer;
use crate::jobs::schedule::{Every, Schedule};
use crate::jobs::worker::{Handlers, Worker, WorkerSettings};
use crate::jobs::JobQueue;
use crate::ops::alerts::{self, Alerts, Delivery, NewAlert, Severity, WebhookSink};
use crate::ops::rules::Thresholds;

/// The vendored NUCC code set, under --profiles.
pub const NUCC_FILE: &str = "nucc/nucc_taxonomy_251.csv";

pub struct Integrations {
    pub registry: Arc<IntegrationRegistry>,
    pub nppes: Option<Arc<Nppes>>,
    pub codes: Arc<NuccCodeSet>,
    /// The NUCC codes Plan-Net accepts as specialties (enrichment and the bulk import).
    pub plan_net_specialties: Arc<HashSet<String>>,
    pub alerts: Alerts,
    pub queue: JobQueue,
    pub handlers: Arc<Handlers>,
    pub schedules: Vec<Schedule>,
    pub config: Config,
}

/// The resilience settings of one integration's section.
pub fn guard_config(
    timeout: Duration,
    rate_limit: &config::RateLimit,
    retry: &config::Retry,
    breaker: &config::CircuitBreaker,
) -> GuardConfig {
    GuardConfig {
        timeout,
        retry: RetryPolicy {
            max_attempts: retry.max_attempts,
            initial_delay: retry.initial_delay(),
            max_delay: retry.max_delay(),
            jitter: true,
        },
        breaker: BreakerConfig {
            failure_threshold: breaker.failure_threshold,
            cool_down: breaker.open_for(),
        },
        rate_limit: Some(RateLimit {
            requests: rate_limit.requests,
            window: rate_limit.window(),
        }),
    }
}

impl Integrations {
    /// Builds every enabled integration, and sets `fhir`'s write hook (NPI checks always;
    /// NPPES enrichment when NPPES is enabled). Call before `fhir` is shared.
    pub fn build(config: &Config, fhir: &mut FhirServer, profiles: &Path) -> anyhow::Result<Integrations> {
        let store = fhir.store.clone();
        let codes = Arc::new(
            NuccCodeSet::load(&profiles.join(NUCC_FILE)).context("loading the NUCC code set (profiles/nucc/)")?,
        );
        let queue = JobQueue::new(store.clone());
        let alerts = Alerts::new(store.clone());
        let mut registry = IntegrationRegistry::default();
        let mut handlers = Handlers::default();
        // The validator already holds Plan-Net's value sets: asked, not loaded again.
        let plan_net_specialties = Arc::new(plan_net_specialties(&codes, fhir.validator.profiles.terminology()));
        let mut schedules = Vec::new();
        let mut nppes = None;
        let section = &config.integrations.nppes;
        if section.enabled {
            let reference = Reference {
                codes: codes.clone(),
                plan_net_specialties: plan_net_specialties.clone(),
                cache_ttl_ms: section.cache_ttl().as_millis() as i64,
                validator: fhir.validator.clone(),
            };
            let client = RegistryClient::new(&section.base_url, section.timeout())
                .map_err(|e| anyhow::anyhow!("integrations.nppes: {e}"))?;
            let guard = Guard::new(
                "nppes",
                guard_config(
                    section.timeout(),
                    &section.rate_limit,
                    &section.retry,
                    &section.circuit_breaker,
                ),
            )
            .map_err(|e| anyhow::anyhow!("integrations.nppes: {e}"))?;
            let adapter = Arc::new(Nppes::new(
                client,
                guard,
                store.clone(),
                reference.clone(),
                section.timeout(),
            ));
            registry.register(adapter.clone());
            handlers.register(
                ENRICH_JOB,
                Arc::new(EnrichJob {
                    nppes: adapter.clone(),
                    store: store.clone(),
                }),
            );
            handlers.register(
                REVALIDATE_JOB,
                Arc::new(RevalidateJob {
                    nppes: adapter.clone(),
                    store: store.clone(),
                }),
            );
            handlers.register(
                REVALIDATION_JOB,
                Arc::new(RevalidationJob {
                    queue: queue.clone(),
                    batch_size: i64::from(config.jobs.nppes_revalidation.batch_size.max(1)),
                }),
            );
            let every = match config.jobs.nppes_revalidation.schedule {
                config::Schedule::Hourly => Every::Hour,
                config::Schedule::Daily => Every::Day,
                config::Schedule::Weekly => Every::Week,
            };
            schedules.push(Schedule {
                name: REVALIDATION_JOB.into(),
                kind: REVALIDATION_JOB.into(),
                every,
                payload: serde_json::json!({}),
            });
            fhir.write_hook = Some(Arc::new(NppesWriteHook {
                reference: Some(reference),
            }));
            nppes = Some(adapter);
        } else {
            fhir.write_hook = Some(Arc::new(NppesWriteHook { reference: None }));
        }
        let webhook = config
            .alerts
            .sinks
            .webhook
            .as_ref()
            .filter(|w| w.enabled)
            .map(|w| WebhookSink {
                url: w.url.clone(),
                secret: (!w.secret.is_empty()).then(|| w.secret.expose().to_string()),
                timeout: Duration::from_secs(10),
            });
        handlers.register(alerts::DELIVERY_JOB, Arc::new(Delivery::new(alerts.clone(), webhook)));
        // A job that used up its attempts is an operations problem: say so where ops look.
        let dead_alerts = alerts.clone();
        handlers.on_dead(Arc::new(move |job, error| {
            let alert = NewAlert::new(
                alerts::kind::JOB_DEAD,
                format!("job/{}", job.id),
                Severity::Warning,
                format!(
                    "{} job {} failed {} times; last error: {error}",
                    job.kind, job.id, job.attempts
                ),
            );
            if let Err(e) = dead_alerts.raise(&alert) {
                tracing::warn!(error = %e, "could not raise a dead-job alert");
            }
        }));
        Ok(Integrations {
            registry: Arc::new(registry),
            nppes,
            codes,
            plan_net_specialties,
            alerts,
            queue,
            handlers: Arc::new(handlers),
            schedules,
            config: config.clone(),
        })
    }

    pub fn worker(&self) -> Worker {
        Worker::new(
            self.queue.clone(),
            self.handlers.clone(),
            WorkerSettings {
                poll_interval: self.config.jobs.poll_interval(),
                lease: self.config.jobs.lease(),
                ..WorkerSettings::default()
            },
        )
    }

    pub fn thresholds(&self) -> Thresholds {
        let rules = &self.config.alerts.rules;
        Thresholds {
            down_for: rules.down_for(),
            error_rate: rules.error_rate,
            p95_latency: rules.p95_latency(),
            sync_success_rate: rules.sync_success_rate,
            min_samples: 10,
        }
    }

    /// Starts the background work of a serving process; it stops when `shutdown` turns true.
    pub fn spawn_background(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        for _ in 0..self.config.jobs.workers {
            tokio::spawn(self.worker().run(shutdown.clone()));
        }
        let store = self.queue.store().clone();
        tokio::spawn(crate::jobs::schedule::run(
            store.clone(),
            self.schedules.clone(),
            Duration::from_secs(60),
            shutdown.clone(),
        ));
        tokio::spawn(crate::ops::health::run(
            store.clone(),
            self.registry.clone(),
            self.config.integrations.health_check_interval(),
            shutdown.clone(),
        ));
        tokio::spawn(crate::ops::rules::run(
            store,
            self.registry.clone(),
            self.thresholds(),
            self.config.alerts.evaluation_interval(),
            shutdown,
        ));
    }
}
