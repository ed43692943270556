//! The NPPES integration: the NPI Registry client behind the resilience layers, the lookup
//! cache, and the adapter the registry, health checks and syncs see.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::cache::{self, Cached};
use super::client::{Lookup, RegistryClient, RegistryError};
use super::enrichment::Reference;
use super::npi::{npis_in, Npi};
use crate::integrations::adapter::{
    AuthType, Capabilities, Finding, HealthCheck, IntegrationAdapter, IntegrationError, IntegrationKind, ProviderRef,
    SyncReport,
};
use crate::integrations::resilience::{Guard, GuardError, Transient};
use crate::jobs::now_ms;
use crate::jobs::worker::blocking;
use crate::store::Store;

pub const NAME: &str = "nppes";

impl Transient for RegistryError {
    fn is_transient(&self) -> bool {
        RegistryError::is_transient(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        RegistryError::retry_after(self)
    }
}

/// Why a lookup has no answer: what the caller should tell the job queue.
pub type LookupFailure = GuardError<RegistryError>;

pub struct Nppes {
    client: RegistryClient,
    guard: Guard,
    store: Store,
    /// The NUCC code set, the specialties Plan-Net accepts, the validator, the cache TTL.
    pub reference: Reference,
    /// The longest a write waits for NPPES.
    pub write_budget: Duration,
}

impl Nppes {
    pub fn new(
        client: RegistryClient,
        guard: Guard,
        store: Store,
        reference: Reference,
        write_budget: Duration,
    ) -> Nppes {
        Nppes {
            client,
            guard,
            store,
            reference,
            write_budget,
        }
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Asks the registry now (through the guard, within `budget`) and caches the answer.
    pub async fn lookup(&self, npi: &Npi, budget: Duration) -> Result<Cached, LookupFailure> {
        let lookup = self.guard.call("lookup", budget, || self.client.lookup(npi)).await?;
        let cached = Cached {
            lookup,
            fetched_at: now_ms(),
        };
        let (store, key, value) = (self.store.clone(), npi.as_str().to_string(), cached.clone());
        let stored = blocking(move || {
            let mut conn = store.conn()?;
            cache::put(&mut conn, store.backend(), &key, &value)
        })
        .await;
        if let Err(error) = stored {
            tracing::warn!(%error, "could not cache an NPPES answer");
        }
        Ok(cached)
    }

    /// An NPI Registry search (paged within the registry's limits: 1,200 records at most).
    pub async fn search(
        &self,
        criteria: &super::client::SearchCriteria,
        max_records: usize,
    ) -> Result<Vec<super::model::NppesRecord>, LookupFailure> {
        // Up to six pages, each allowed the configured timeout.
        let budget = self.write_budget * 6;
        self.guard
            .call("search", budget, || self.client.search(criteria, max_records))
            .await
    }

    /// The cached answer when fresh, else a lookup.
    pub async fn lookup_cached(&self, npi: &Npi, budget: Duration) -> Result<Cached, LookupFailure> {
        if let Some(cached) = self.cached(npi).await {
            return Ok(cached);
        }
        self.lookup(npi, budget).await
    }

    async fn cached(&self, npi: &Npi) -> Option<Cached> {
        let (store, key, ttl) = (self.store.clone(), npi.as_str().to_string(), self.cache_ttl_ms());
        blocking(move || {
            let mut conn = store.conn()?;
            cache::get(&mut conn, store.backend(), &key, ttl)
        })
        .await
        .ok()
        .flatten()
    }

    pub fn cache_ttl_ms(&self) -> i64 {
        self.reference.cache_ttl_ms
    }

    /// Before a write of a Practitioner or Organization (or a Bundle of them): fetches the
    /// answers for the NPIs it carries that are not cached, all within the write budget, so
    /// that the write's transaction can enrich from the cache. What does not arrive in time
    /// is left to the enrichment job the write enqueues.
    pub async fn prefetch(&self, body: &Value) {
        let npis = npis_of_write(body);
        if npis.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.write_budget;
        let lookups = npis.iter().map(|npi| async move {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if let Err(error) = self.lookup_cached(npi, remaining).await {
                tracing::info!(npi = npi.as_str(), %error, "NPPES did not answer within the write's budget");
            }
        });
        futures_util::future::join_all(lookups).await;
    }
}

/// The valid NPIs of the Practitioners and Organizations a request body writes.
fn npis_of_write(body: &Value) -> Vec<Npi> {
    let mut resources = vec![body];
    if body["resourceType"] == "Bundle" {
        resources = body["entry"]
            .as_array()
            .map(|entries| entries.iter().map(|e| &e["resource"]).collect())
            .unwrap_or_default();
    }
    let mut npis: Vec<Npi> = resources
        .into_iter()
        .filter(|r| matches!(r["resourceType"].as_str(), Some("Practitioner" | "Organization")))
        .flat_map(|r| npis_in(r))
        .filter_map(|(_, value)| Npi::parse(&value).ok())
        .collect();
    npis.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    npis.dedup_by(|a, b| a.as_str() == b.as_str());
    npis
}

fn unavailable(error: LookupFailure) -> IntegrationError {
    IntegrationError::Unavailable {
        integration: NAME.to_string(),
        retry_in: error.retry_in(),
        reason: error.to_string(),
    }
}

/// An NPI that passes its check digit and that NPPES will never issue: asking for it costs one
/// request and proves the registry answers, whatever the directory holds.
const PROBE_NPI: &str = "1234567893";

#[async_trait::async_trait]
impl IntegrationAdapter for Nppes {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> &str {
        "NPI Registry API 2.1"
    }

    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Registry
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read: true,
            write: false,
            bidirectional: false,
            webhooks: false,
            batch: false,
            auth: AuthType::None,
        }
    }

    async fn health_check(&self) -> HealthCheck {
        let started = Instant::now();
        let npi = Npi::parse(PROBE_NPI).expect("the probe NPI is valid");
        let result = self
            .guard
            .call("health", self.write_budget, || self.client.lookup(&npi))
            .await;
        HealthCheck {
            ok: result.is_ok(),
            response_time: started.elapsed(),
            message: result.err().map(|e| e.to_string()),
        }
    }

    async fn fetch_provider(&self, provider: &ProviderRef) -> Result<Option<Value>, IntegrationError> {
        let npi = provider_npi(provider)?;
        match self.lookup(&npi, self.write_budget).await.map_err(unavailable)?.lookup {
            Lookup::Found(record) => Ok(Some(record.raw.clone())),
            Lookup::NotFound | Lookup::Deactivated { .. } => Ok(None),
        }
    }

    async fn sync_provider(&self, provider: &ProviderRef) -> Result<SyncReport, IntegrationError> {
        // The re-validation job does the work (fresh lookup, enrichment, withdrawal or
        // reinstatement) in one transaction; a sync is one such check on demand.
        let npi = provider_npi(provider)?;
        let cached = self.lookup(&npi, self.write_budget).await.map_err(unavailable)?;
        let (store, p, reference) = (self.store.clone(), provider.clone(), self.reference.clone());
        let report = blocking(move || super::enrichment::apply_answer(&store, &reference, &p, &cached))
            .await
            .map_err(IntegrationError::Store)?;
        crate::ops::metrics::record_sync(NAME, true, std::time::SystemTime::now());
        Ok(report)
    }

    async fn validate_provider(
        &self,
        provider: &ProviderRef,
        resource: &Value,
    ) -> Result<Vec<Finding>, IntegrationError> {
        let npi = provider_npi(provider)?;
        let cached = self.lookup_cached(&npi, self.write_budget).await.map_err(unavailable)?;
        Ok(match cached.lookup {
            Lookup::Found(record) => {
                let mut copy = resource.clone();
                let enrichment = match provider.resource_type.as_str() {
                    "Organization" => super::mapping::enrich_organization(&mut copy, &record),
                    _ => super::mapping::enrich_practitioner(&mut copy, &record),
                };
                enrichment
                    .discrepancies
                    .into_iter()
                    .map(|d| Finding {
                        message: format!("{} differs from NPPES", d.element),
                        element: d.element,
                        ours: Some(d.provider_value),
                        theirs: Some(d.nppes_value),
                    })
                    .chain(enrichment.filled.into_iter().map(|element| Finding {
                        message: format!("{element} is empty here and known to NPPES"),
                        element,
                        ours: None,
                        theirs: None,
                    }))
                    .collect()
            }
            Lookup::NotFound => vec![Finding {
                element: format!("{}.identifier", provider.resource_type),
                ours: Some(npi.as_str().to_string()),
                theirs: None,
                message: "NPPES has no provider with this NPI".into(),
            }],
            Lookup::Deactivated { message } => vec![Finding {
                element: format!("{}.identifier", provider.resource_type),
                ours: Some(npi.as_str().to_string()),
                theirs: None,
                message,
            }],
        })
    }
}

fn provider_npi(provider: &ProviderRef) -> Result<Npi, IntegrationError> {
    let raw = provider.npi.as_deref().ok_or_else(|| IntegrationError::Refused {
        integration: NAME.into(),
        reason: format!("{} has no NPI", provider.reference()),
    })?;
    Npi::parse(raw).map_err(|e| IntegrationError::Refused {
        integration: NAME.into(),
        reason: e.to_string(),
    })
}
