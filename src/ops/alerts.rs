//! Alerts, for operations (an integration down, its error rate or latency too high, syncs
//! failing) and about providers (NPI not found in NPPES, deactivated, differing from NPPES).
//!
//! An alert is a row in `alerts`, open until its condition clears. Raising an alert that is
//! already open only updates `last_seen`, so a condition fires once however often it is seen,
//! by however many processes. Firing and resolving each enqueue a delivery job in the same
//! transaction: the log sink writes at once; the webhook sink is a job, so a webhook that is
//! down gets its deliveries later instead of losing them.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::integrations::idempotency;
use crate::jobs::worker::{JobError, JobHandler};
use crate::jobs::{enqueue_on, now_ms, Job, NewJob};
use crate::store::{dialect, instant_of_ms, Backend, DbConnection, Store, StoreError};

pub const DELIVERY_JOB: &str = "alert-delivery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Kinds of alert, named as operators and providers' staff read them.
pub mod kind {
    pub const INTEGRATION_DOWN: &str = "integration-down";
    pub const ERROR_RATE: &str = "integration-error-rate";
    pub const LATENCY: &str = "integration-latency";
    pub const SYNC_SUCCESS: &str = "integration-sync-success";
    pub const JOB_DEAD: &str = "job-dead";
    pub const NPI_NOT_FOUND: &str = "npi-not-found";
    pub const NPI_DEACTIVATED: &str = "npi-deactivated";
    pub const NPPES_DISCREPANCY: &str = "nppes-discrepancy";
}

#[derive(Debug, Clone)]
pub struct NewAlert {
    pub kind: String,
    /// The integration's name or the resource (`Practitioner/123`) the alert is about.
    pub subject: String,
    pub npi: Option<String>,
    pub severity: Severity,
    pub message: String,
    pub details: Option<Value>,
}

impl NewAlert {
    pub fn new(kind: &str, subject: impl Into<String>, severity: Severity, message: impl Into<String>) -> NewAlert {
        NewAlert {
            kind: kind.to_string(),
            subject: subject.into(),
            npi: None,
            severity,
            message: message.into(),
            details: None,
        }
    }

    pub fn npi(mut self, npi: impl Into<String>) -> NewAlert {
        self.npi = Some(npi.into());
        self
    }

    pub fn details(mut self, details: Value) -> NewAlert {
        self.details = Some(details);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    /// The condition is new: the alert fired.
    Fired(i64),
    /// Already open: only `last_seen` moved.
    Ongoing(i64),
}

#[derive(Debug, Clone, QueryableByName)]
pub struct Alert {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub npi: Option<String>,
    #[diesel(sql_type = Text)]
    pub severity: String,
    #[diesel(sql_type = Text)]
    pub message: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub details: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub first_seen: i64,
    #[diesel(sql_type = BigInt)]
    pub last_seen: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub resolved_at: Option<i64>,
}

impl Alert {
    /// The JSON of `GET /api/v1/alerts` and of webhook deliveries.
    pub fn to_json(&self) -> Value {
        let instant = instant_of_ms;
        let mut v = json!({
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "message": self.message,
            "firstSeen": instant(self.first_seen),
            "lastSeen": instant(self.last_seen),
            "status": if self.resolved_at.is_some() { "resolved" } else { "open" },
        });
        if let Some(npi) = &self.npi {
            v["npi"] = json!(npi);
        }
        if let Some(details) = self
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
        {
            v["details"] = details;
        }
        if let Some(at) = self.resolved_at {
            v["resolvedAt"] = json!(instant(at));
        }
        v
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Raises `alert` on `conn` (inside the caller's transaction when it has one).
pub fn raise_on(conn: &mut DbConnection, backend: Backend, alert: &NewAlert) -> Result<Raised, StoreError> {
    let now = now_ms();
    let details = alert.details.as_ref().map(Value::to_string);
    let open = diesel::sql_query(dialect(
        "UPDATE alerts SET last_seen = ?, message = ?, details = ? \
         WHERE kind = ? AND subject = ? AND resolved_at IS NULL RETURNING id",
        backend,
    ))
    .bind::<BigInt, _>(now)
    .bind::<Text, _>(&alert.message)
    .bind::<Nullable<Text>, _>(details.as_deref())
    .bind::<Text, _>(&alert.kind)
    .bind::<Text, _>(&alert.subject)
    .load::<IdRow>(conn)?;
    if let Some(row) = open.first() {
        return Ok(Raised::Ongoing(row.id));
    }
    let inserted = diesel::sql_query(dialect(
        "INSERT INTO alerts (kind, subject, npi, severity, message, details, first_seen, last_seen) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        backend,
    ))
    .bind::<Text, _>(&alert.kind)
    .bind::<Text, _>(&alert.subject)
    .bind::<Nullable<Text>, _>(alert.npi.as_deref())
    .bind::<Text, _>(alert.severity.as_str())
    .bind::<Text, _>(&alert.message)
    .bind::<Nullable<Text>, _>(details.as_deref())
    .bind::<BigInt, _>(now)
    .bind::<BigInt, _>(now)
    .load::<IdRow>(conn)?;
    let Some(row) = inserted.first() else {
        // Another process opened it between the two statements.
        return Ok(Raised::Ongoing(0));
    };
    tracing::warn!(alert = row.id, kind = %alert.kind, subject = %alert.subject, message = %alert.message, "alert fired");
    enqueue_on(conn, backend, &delivery(row.id, "fired"))?;
    Ok(Raised::Fired(row.id))
}

/// Resolves the open alert of `kind` about `subject`, if there is one.
pub fn resolve_on(conn: &mut DbConnection, backend: Backend, kind: &str, subject: &str) -> Result<bool, StoreError> {
    let resolved = diesel::sql_query(dialect(
        "UPDATE alerts SET resolved_at = ? WHERE kind = ? AND subject = ? AND resolved_at IS NULL RETURNING id",
        backend,
    ))
    .bind::<BigInt, _>(now_ms())
    .bind::<Text, _>(kind)
    .bind::<Text, _>(subject)
    .load::<IdRow>(conn)?;
    for row in &resolved {
        tracing::info!(alert = row.id, %kind, %subject, "alert resolved");
        enqueue_on(conn, backend, &delivery(row.id, "resolved"))?;
    }
    Ok(!resolved.is_empty())
}

fn delivery(alert_id: i64, event: &str) -> NewJob {
    NewJob::new(DELIVERY_JOB, json!({ "alert": alert_id, "event": event }))
}

/// The alerts table seen from operations.
#[derive(Clone)]
pub struct Alerts {
    store: Store,
}

impl Alerts {
    pub fn new(store: Store) -> Alerts {
        Alerts { store }
    }

    pub fn raise(&self, alert: &NewAlert) -> Result<Raised, StoreError> {
        self.store.write(|tx| {
            let backend = tx.backend();
            raise_on(tx.connection(), backend, alert)
        })
    }

    pub fn resolve(&self, kind: &str, subject: &str) -> Result<bool, StoreError> {
        self.store.write(|tx| {
            let backend = tx.backend();
            resolve_on(tx.connection(), backend, kind, subject)
        })
    }

    /// Open alerts, oldest first; of one kind when `kind` is given.
    pub fn open(&self, kind: Option<&str>) -> Result<Vec<Alert>, StoreError> {
        let columns = "id, kind, subject, npi, severity, message, details, first_seen, last_seen, resolved_at";
        let mut conn = self.store.conn()?;
        Ok(match kind {
            Some(kind) => diesel::sql_query(dialect(
                &format!("SELECT {columns} FROM alerts WHERE resolved_at IS NULL AND kind = ? ORDER BY first_seen, id"),
                self.store.backend(),
            ))
            .bind::<Text, _>(kind)
            .load(&mut conn)?,
            None => diesel::sql_query(format!(
                "SELECT {columns} FROM alerts WHERE resolved_at IS NULL ORDER BY first_seen, id"
            ))
            .load(&mut conn)?,
        })
    }

    pub fn get(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        let mut conn = self.store.conn()?;
        Ok(diesel::sql_query(dialect(
            "SELECT id, kind, subject, npi, severity, message, details, first_seen, last_seen, resolved_at \
             FROM alerts WHERE id = ?",
            self.store.backend(),
        ))
        .bind::<BigInt, _>(id)
        .load::<Alert>(&mut conn)?
        .into_iter()
        .next())
    }
}

/// Where alerts go besides the log: an HTTP endpoint that receives each firing and resolution
/// as JSON, signed with HMAC-SHA256 over the body (`X-ProviderCard-Signature: sha256=<hex>`)
/// when a secret is configured, so the receiver can tell the delivery is ours.
#[derive(Clone)]
pub struct WebhookSink {
    pub url: String,
    pub secret: Option<String>,
    pub timeout: Duration,
}

/// Delivers one alert event to the webhook sink (the `alert-delivery` job).
pub struct Delivery {
    alerts: Alerts,
    webhook: Option<WebhookSink>,
    http: reqwest::Client,
}

impl Delivery {
    pub fn new(alerts: Alerts, webhook: Option<WebhookSink>) -> Delivery {
        let timeout = webhook.as_ref().map_or(Duration::from_secs(10), |w| w.timeout);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("a reqwest client with a timeout builds");
        Delivery { alerts, webhook, http }
    }
}

pub const SIGNATURE_HEADER: &str = "X-ProviderCard-Signature";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[async_trait::async_trait]
impl JobHandler for Delivery {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let Some(webhook) = &self.webhook else { return Ok(()) };
        let id = job.payload["alert"]
            .as_i64()
            .ok_or_else(|| JobError::Fatal("alert-delivery without an alert id".into()))?;
        let event = job.payload["event"].as_str().unwrap_or("fired").to_string();
        let alerts = self.alerts.clone();
        let alert = crate::jobs::worker::blocking(move || alerts.get(id))
            .await?
            .ok_or_else(|| JobError::Fatal(format!("alert {id} is gone")))?;
        // One key per alert event: a delivery retried after the receiver took it (its answer
        // lost) is not sent twice by us, and the receiver can drop duplicates by the header.
        let key = idempotency::key(&format!("alert/{id}"), &event, "webhook");
        let (store, k) = (self.alerts.store.clone(), key.clone());
        if crate::jobs::worker::blocking(move || idempotency::recall::<String>(&store, &k))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let body = serde_json::to_vec(&json!({ "event": event, "alert": alert.to_json() })).expect("JSON");
        let mut request = self
            .http
            .post(&webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &key);
        if let Some(secret) = &webhook.secret {
            request = request.header(SIGNATURE_HEADER, sign(secret, &body));
        }
        match request.body(body).send().await {
            Ok(response) if response.status().is_success() => {
                let (store, status) = (self.alerts.store.clone(), response.status().as_u16().to_string());
                crate::jobs::worker::blocking(move || {
                    idempotency::remember(&store, &key, &status, idempotency::DEFAULT_TTL)
                })
                .await?;
                Ok(())
            }
            Ok(response) => Err(JobError::retry(format!("alert webhook answered {}", response.status()))),
            // Without the URL: it may carry a token in its query string.
            Err(error) => Err(JobError::retry(format!(
                "alert webhook unreachable: {}",
                error.without_url()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn alerts() -> (tempfile::TempDir, Alerts, crate::jobs::JobQueue) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("alerts.db").display());
        let store = Store::open(&url, 2, Arc::new(crate::store::NoIndex)).unwrap();
        store.migrate().unwrap();
        (dir, Alerts::new(store.clone()), crate::jobs::JobQueue::new(store))
    }

    #[test]
    fn an_alert_fires_once_while_its_condition_lasts_and_again_after_it_cleared() {
        let (_dir, alerts, jobs) = alerts();
        let down = NewAlert::new(
            kind::INTEGRATION_DOWN,
            "nppes",
            Severity::Critical,
            "NPPES down for 6 minutes",
        );
        let first = alerts.raise(&down).unwrap();
        assert!(matches!(first, Raised::Fired(_)));
        assert!(matches!(alerts.raise(&down).unwrap(), Raised::Ongoing(_)));
        assert_eq!(alerts.open(None).unwrap().len(), 1);
        assert!(alerts.resolve(kind::INTEGRATION_DOWN, "nppes").unwrap());
        assert!(
            !alerts.resolve(kind::INTEGRATION_DOWN, "nppes").unwrap(),
            "nothing open to resolve"
        );
        assert!(alerts.open(None).unwrap().is_empty());
        assert!(matches!(alerts.raise(&down).unwrap(), Raised::Fired(_)));
        // fired, resolved, fired: three deliveries.
        assert_eq!(jobs.list(Some(DELIVERY_JOB)).unwrap().len(), 3);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
