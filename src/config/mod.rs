//! Typed configuration of the integrations, background jobs and alerts, from YAML files.
//!
//! [`Config::load`] reads each `--config` file, deep-merges later files over earlier ones,
//! substitutes `${VAR}` / `${VAR:-default}` from the environment in string values, rejects
//! unknown keys and wrong types with the key's path, then validates. No file gives the
//! defaults. Durations are stored in the unit the file uses (the field names say which) and
//! read through accessors returning [`Duration`].

mod load;
mod secret;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{ConfigError, MissingVariable, Problem};
pub use secret::{Secret, REDACTED};

/// The whole configuration; every section is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub integrations: Integrations,
    pub jobs: Jobs,
    pub alerts: Alerts,
    pub webhooks: Webhooks,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Integrations {
    /// How often each enabled integration's health check runs, in seconds.
    #[serde(rename = "health_check_interval")]
    pub health_check_interval_secs: u64,
    pub nppes: Nppes,
    pub caqh: Caqh,
    /// Payer directories, by a name of our choosing (`uhc`, ...).
    pub payers: BTreeMap<String, Payer>,
}

impl Default for Integrations {
    fn default() -> Integrations {
        Integrations {
            health_check_interval_secs: 60,
            nppes: Nppes::default(),
            caqh: Caqh::default(),
            payers: BTreeMap::new(),
        }
    }
}

impl Integrations {
    pub fn health_check_interval(&self) -> Duration {
        Duration::from_secs(self.health_check_interval_secs.max(1))
    }
}

/// The NPPES NPI Registry (public, no credentials).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nppes {
    pub enabled: bool,
    /// Always ends with `/` once loaded, so relative paths join under it.
    pub base_url: String,
    /// Per request; also the longest a write waits on NPPES.
    #[serde(rename = "timeout")]
    pub timeout_ms: u64,
    #[serde(rename = "cache_ttl")]
    pub cache_ttl_secs: u64,
    pub rate_limit: RateLimit,
    pub retry: Retry,
    pub circuit_breaker: CircuitBreaker,
}

impl Default for Nppes {
    fn default() -> Nppes {
        Nppes {
            enabled: true,
            base_url: "https://npiregistry.cms.hhs.gov/api/".to_string(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            cache_ttl_secs: 7 * 24 * 3600,
            rate_limit: RateLimit::default(),
            retry: Retry::default(),
            circuit_breaker: CircuitBreaker::default(),
        }
    }
}

impl Nppes {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }
}

/// CAQH ProView roster API. Off by default; when on, the credentials are required.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Caqh {
    pub enabled: bool,
    pub base_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(rename = "timeout")]
    pub timeout_ms: u64,
    pub rate_limit: RateLimit,
    pub retry: Retry,
    pub circuit_breaker: CircuitBreaker,
}

impl Default for Caqh {
    fn default() -> Caqh {
        Caqh {
            enabled: false,
            base_url: "https://proview.caqh.org/RosterAPI/api/".to_string(),
            username: None,
            password: None,
            organization_id: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            rate_limit: RateLimit::default(),
            retry: Retry::default(),
            circuit_breaker: CircuitBreaker::default(),
        }
    }
}

impl Caqh {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// One payer's directory API. Off by default; `base_url` is required when on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Payer {
    pub enabled: bool,
    pub base_url: String,
    pub auth: PayerAuth,
    #[serde(rename = "timeout")]
    pub timeout_ms: u64,
    pub rate_limit: RateLimit,
    pub retry: Retry,
    pub circuit_breaker: CircuitBreaker,
}

impl Default for Payer {
    fn default() -> Payer {
        Payer {
            enabled: false,
            base_url: String::new(),
            auth: PayerAuth::default(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            rate_limit: RateLimit::default(),
            retry: Retry::default(),
            circuit_breaker: CircuitBreaker::default(),
        }
    }
}

impl Payer {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// How we authenticate to a payer. One flat mapping (rather than a tagged enum) so unknown keys
/// are reported with their full path; which fields `type` requires is checked on validation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayerAuth {
    #[serde(rename = "type")]
    pub kind: AuthType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthType {
    /// SMART Backend Services: a signed JWT assertion (`token_url`, `client_id`, `private_key_path`).
    SmartBackend,
    /// OAuth client credentials (`token_url`, `client_id`, `client_secret`).
    ClientCredentials,
    #[default]
    None,
}

const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// At most `requests` per `window` seconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    #[serde(rename = "window")]
    pub window_secs: u64,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            requests: 200,
            window_secs: 300,
        }
    }
}

impl RateLimit {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }
}

/// Exponential back-off from `initial_delay` up to `max_delay`, `max_attempts` tries in all.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retry {
    pub max_attempts: u32,
    #[serde(rename = "initial_delay")]
    pub initial_delay_ms: u64,
    #[serde(rename = "max_delay")]
    pub max_delay_ms: u64,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            max_attempts: 3,
            initial_delay_ms: 500,
            max_delay_ms: 10_000,
        }
    }
}

impl Retry {
    pub fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.initial_delay_ms)
    }

    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms)
    }
}

/// Opens after `failure_threshold` consecutive failures and stays open for `open_for` seconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreaker {
    pub failure_threshold: u32,
    #[serde(rename = "open_for")]
    pub open_for_secs: u64,
}

impl Default for CircuitBreaker {
    fn default() -> CircuitBreaker {
        CircuitBreaker {
            failure_threshold: 5,
            open_for_secs: 60,
        }
    }
}

impl CircuitBreaker {
    pub fn open_for(&self) -> Duration {
        Duration::from_secs(self.open_for_secs)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Jobs {
    pub workers: u32,
    #[serde(rename = "poll_interval")]
    pub poll_interval_ms: u64,
    /// How long a worker holds a job before another may take it over.
    #[serde(rename = "lease")]
    pub lease_secs: u64,
    pub nppes_revalidation: NppesRevalidation,
}

impl Default for Jobs {
    fn default() -> Jobs {
        Jobs {
            workers: 2,
            poll_interval_ms: 1000,
            lease_secs: 300,
            nppes_revalidation: NppesRevalidation::default(),
        }
    }
}

impl Jobs {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NppesRevalidation {
    pub schedule: Schedule,
    pub batch_size: u32,
}

impl Default for NppesRevalidation {
    fn default() -> NppesRevalidation {
        NppesRevalidation {
            schedule: Schedule::Weekly,
            batch_size: 200,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    Hourly,
    Daily,
    Weekly,
}

impl Schedule {
    pub fn period(self) -> Duration {
        Duration::from_secs(match self {
            Schedule::Hourly => 3600,
            Schedule::Daily => 24 * 3600,
            Schedule::Weekly => 7 * 24 * 3600,
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alerts {
    #[serde(rename = "evaluation_interval")]
    pub evaluation_interval_secs: u64,
    pub sinks: AlertSinks,
    pub rules: AlertRules,
}

impl Default for Alerts {
    fn default() -> Alerts {
        Alerts {
            evaluation_interval_secs: 30,
            sinks: AlertSinks::default(),
            rules: AlertRules::default(),
        }
    }
}

impl Alerts {
    pub fn evaluation_interval(&self) -> Duration {
        Duration::from_secs(self.evaluation_interval_secs)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSinks {
    pub log: LogSink,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSink>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSink {
    pub enabled: bool,
}

impl Default for LogSink {
    fn default() -> LogSink {
        LogSink { enabled: true }
    }
}

/// Alerts POSTed to `url`, each signed with HMAC-SHA256 under `secret`. `enabled` (default
/// true) lets an overlay turn off a sink that a base file defines.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSink {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub url: String,
    pub secret: Secret,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// An integration failing for this long raises an alert.
    #[serde(rename = "down_for")]
    pub down_for_secs: u64,
    /// Fraction of failed calls (0 to 1).
    pub error_rate: f64,
    #[serde(rename = "p95_latency")]
    pub p95_latency_ms: u64,
    /// Fraction of successful syncs below which an alert is raised (0 to 1).
    pub sync_success_rate: f64,
}

impl Default for AlertRules {
    fn default() -> AlertRules {
        AlertRules {
            down_for_secs: 300,
            error_rate: 0.10,
            p95_latency_ms: 5000,
            sync_success_rate: 0.90,
        }
    }
}

impl AlertRules {
    pub fn down_for(&self) -> Duration {
        Duration::from_secs(self.down_for_secs)
    }

    pub fn p95_latency(&self) -> Duration {
        Duration::from_millis(self.p95_latency_ms)
    }
}

/// Inbound webhooks: the HMAC-SHA256 key each sender signs with, by sender name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Webhooks {
    pub secrets: BTreeMap<String, Secret>,
}
