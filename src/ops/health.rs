//! Health of the integrations: each adapter's health check runs periodically and its result
//! is kept in `integration_checks` (so availability over 30 days survives restarts and is the
//! same whichever process answers), and `GET /api/v1/integrations/health` reports from there.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use serde_json::{json, Value};

use crate::integrations::adapter::HealthCheck;
use crate::integrations::registry::IntegrationRegistry;
use crate::jobs::now_ms;
use crate::store::{dialect, instant_of_ms, Store, StoreError};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// A check slower than this leaves the integration degraded even when it answered.
const SLOW: Duration = Duration::from_secs(5);
/// How many recent checks decide between healthy and degraded.
const RECENT: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Down,
}

#[derive(Debug, Clone, QueryableByName)]
struct CheckRow {
    #[diesel(sql_type = BigInt)]
    checked_at: i64,
    #[diesel(sql_type = Bool)]
    ok: bool,
    #[diesel(sql_type = BigInt)]
    response_ms: i64,
    #[diesel(sql_type = Nullable<Text>)]
    message: Option<String>,
}

/// One integration's line in the health report.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationHealth {
    pub name: String,
    pub status: Status,
    pub last_check: Option<i64>,
    pub response_time_ms: Option<i64>,
    /// Percentage of successful checks over the last 30 days.
    pub availability: Option<f64>,
    pub message: Option<String>,
    pub last_error: Option<String>,
    /// Since when the integration has been failing every check (for the `down` alert rule).
    pub down_since: Option<i64>,
}

pub fn record(store: &Store, integration: &str, check: &HealthCheck) -> Result<(), StoreError> {
    let mut conn = store.conn()?;
    let now = now_ms();
    diesel::sql_query(dialect(
        "INSERT INTO integration_checks (integration, checked_at, ok, response_ms, message) VALUES (?, ?, ?, ?, ?)",
        store.backend(),
    ))
    .bind::<Text, _>(integration)
    .bind::<BigInt, _>(now)
    .bind::<Bool, _>(check.ok)
    .bind::<BigInt, _>(check.response_time.as_millis() as i64)
    .bind::<Nullable<Text>, _>(check.message.as_deref())
    .execute(&mut conn)?;
    // Keep 31 days: enough for availability, bounded whatever the check interval.
    diesel::sql_query(dialect(
        "DELETE FROM integration_checks WHERE integration = ? AND checked_at < ?",
        store.backend(),
    ))
    .bind::<Text, _>(integration)
    .bind::<BigInt, _>(now - 31 * DAY_MS)
    .execute(&mut conn)?;
    Ok(())
}

/// The health of one integration from its recorded checks.
pub fn of(store: &Store, integration: &str) -> Result<IntegrationHealth, StoreError> {
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        total: i64,
        #[diesel(sql_type = BigInt)]
        ok: i64,
    }
    let mut conn = store.conn()?;
    let recent: Vec<CheckRow> = diesel::sql_query(dialect(
        &format!(
            "SELECT checked_at, ok, response_ms, message FROM integration_checks \
             WHERE integration = ? ORDER BY checked_at DESC LIMIT {RECENT}"
        ),
        store.backend(),
    ))
    .bind::<Text, _>(integration)
    .load(&mut conn)?;
    let counts: Counts = diesel::sql_query(dialect(
        "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN ok THEN 1 ELSE 0 END), 0) AS ok \
         FROM integration_checks WHERE integration = ? AND checked_at >= ?",
        store.backend(),
    ))
    .bind::<Text, _>(integration)
    .bind::<BigInt, _>(now_ms() - 30 * DAY_MS)
    .get_result(&mut conn)?;
    let Some(latest) = recent.first() else {
        return Ok(IntegrationHealth {
            name: integration.to_string(),
            status: Status::Degraded,
            last_check: None,
            response_time_ms: None,
            availability: None,
            message: Some("not checked yet".into()),
            last_error: None,
            down_since: None,
        });
    };
    let status = if !latest.ok {
        Status::Down
    } else if recent.iter().all(|c| c.ok) && latest.response_ms <= SLOW.as_millis() as i64 {
        Status::Healthy
    } else {
        Status::Degraded
    };
    let failing: Vec<&CheckRow> = recent.iter().take_while(|c| !c.ok).collect();
    let down_since = if failing.is_empty() {
        None
    } else if failing.len() < recent.len() || recent.len() < RECENT {
        failing.last().map(|c| c.checked_at)
    } else {
        // Failing for longer than the recent checks show: the first failure after the last
        // success is the start of this outage.
        let last_ok: Option<i64> = diesel::sql_query(dialect(
            "SELECT MAX(checked_at) AS checked_at FROM integration_checks WHERE integration = ? AND ok",
            store.backend(),
        ))
        .bind::<Text, _>(integration)
        .get_result::<MaxRow>(&mut conn)?
        .checked_at;
        diesel::sql_query(dialect(
            "SELECT MIN(checked_at) AS checked_at FROM integration_checks WHERE integration = ? AND checked_at > ?",
            store.backend(),
        ))
        .bind::<Text, _>(integration)
        .bind::<BigInt, _>(last_ok.unwrap_or(0))
        .get_result::<MaxRow>(&mut conn)?
        .checked_at
    };
    let last_error = recent.iter().find(|c| !c.ok).and_then(|c| c.message.clone());
    let message = match status {
        Status::Healthy => None,
        Status::Degraded if latest.response_ms > SLOW.as_millis() as i64 => {
            Some(format!("slow: the last check took {} ms", latest.response_ms))
        }
        Status::Degraded => Some("answering, after recent failed checks".into()),
        Status::Down => latest.message.clone(),
    };
    Ok(IntegrationHealth {
        name: integration.to_string(),
        status,
        last_check: Some(latest.checked_at),
        response_time_ms: Some(latest.response_ms),
        availability: (counts.total > 0).then(|| (counts.ok as f64 * 10000.0 / counts.total as f64).round() / 100.0),
        message,
        last_error,
        down_since,
    })
}

#[derive(QueryableByName)]
struct MaxRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    checked_at: Option<i64>,
}

/// The body of `GET /api/v1/integrations/health`: the overall status, when, and per
/// integration its status, last check, response time (ms), availability over 30 days (%),
/// and a message or the last error.
pub fn report(store: &Store, names: &[String]) -> Result<Value, StoreError> {
    let mut integrations = serde_json::Map::new();
    let mut statuses = Vec::new();
    for name in names {
        let h = of(store, name)?;
        statuses.push(h.status);
        let mut entry = json!({ "name": h.name, "status": h.status });
        if let Some(at) = h.last_check {
            entry["lastCheck"] = json!(instant_of_ms(at));
        }
        if let Some(ms) = h.response_time_ms {
            entry["responseTime"] = json!(ms);
        }
        if let Some(a) = h.availability {
            entry["availability"] = json!(a);
        }
        if let Some(m) = h.message {
            entry["message"] = json!(m);
        }
        if let Some(e) = h.last_error {
            entry["lastError"] = json!(e);
        }
        integrations.insert(name.clone(), entry);
    }
    let overall = if statuses.iter().all(|s| *s == Status::Healthy) {
        Status::Healthy
    } else if !statuses.is_empty() && statuses.iter().all(|s| *s == Status::Down) {
        Status::Down
    } else {
        Status::Degraded
    };
    Ok(json!({
        "status": overall,
        "timestamp": instant_of_ms(now_ms()),
        "integrations": integrations,
    }))
}

/// Checks every adapter now and records the results.
pub async fn check_all(store: &Store, registry: &IntegrationRegistry) {
    for adapter in registry.all() {
        let check = adapter.health_check().await;
        if !check.ok {
            tracing::warn!(integration = adapter.name(), message = ?check.message, "health check failed");
        }
        let (s, name) = (store.clone(), adapter.name().to_string());
        if let Err(error) = crate::jobs::worker::blocking(move || record(&s, &name, &check)).await {
            tracing::warn!(%error, "could not record a health check");
        }
    }
}

/// Checks at start and every `interval` until `shutdown`.
pub async fn run(
    store: Store,
    registry: Arc<IntegrationRegistry>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        check_all(&store, &registry).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("health.db").display());
        let store = Store::open(&url, 2, Arc::new(crate::store::NoIndex)).unwrap();
        store.migrate().unwrap();
        (dir, store)
    }

    fn check(ok: bool, ms: u64, message: Option<&str>) -> HealthCheck {
        HealthCheck {
            ok,
            response_time: Duration::from_millis(ms),
            message: message.map(String::from),
        }
    }

    #[test]
    fn status_and_availability_follow_the_recorded_checks() {
        let (_dir, store) = store();
        assert_eq!(of(&store, "nppes").unwrap().status, Status::Degraded, "never checked");
        for _ in 0..3 {
            record(&store, "nppes", &check(true, 120, None)).unwrap();
        }
        let h = of(&store, "nppes").unwrap();
        assert_eq!(
            (h.status, h.availability, h.response_time_ms),
            (Status::Healthy, Some(100.0), Some(120))
        );
        record(&store, "nppes", &check(false, 5000, Some("503 Service Unavailable"))).unwrap();
        let h = of(&store, "nppes").unwrap();
        assert_eq!(h.status, Status::Down);
        assert_eq!(h.availability, Some(75.0));
        assert_eq!(h.last_error.as_deref(), Some("503 Service Unavailable"));
        assert!(h.down_since.is_some());
        record(&store, "nppes", &check(true, 90, None)).unwrap();
        let h = of(&store, "nppes").unwrap();
        assert_eq!(
            (h.status, h.down_since),
            (Status::Degraded, None),
            "recovering: recent failures"
        );
        let body = report(&store, &["nppes".to_string()]).unwrap();
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["integrations"]["nppes"]["availability"], 80.0);
        assert_eq!(body["integrations"]["nppes"]["lastError"], "503 Service Unavailable");
    }
}
