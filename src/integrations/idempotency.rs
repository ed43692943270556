//! Idempotency keys: `{provider}-{event}-{integration}`, kept with the first result for 24
//! hours, so that a repeated push (a retried job, a client resending) returns what the first
//! one did instead of pushing again. The table's primary key decides between racing processes.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde::{de::DeserializeOwned, Serialize};

use crate::jobs::now_ms;
use crate::store::{dialect, Backend, DbConnection, Store, StoreError};

pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

pub fn key(provider: &str, event: &str, integration: &str) -> String {
    format!("{provider}-{event}-{integration}")
}

#[derive(QueryableByName)]
struct ResultRow {
    #[diesel(sql_type = Text)]
    result: String,
}

/// The result stored under `key`, if it has not expired.
pub fn recall<T: DeserializeOwned>(store: &Store, key: &str) -> Result<Option<T>, StoreError> {
    stored(&mut *store.conn()?, store.backend(), key, now_ms())
}

/// The result stored under `key` that was still live at `at` (Unix milliseconds).
fn stored<T: DeserializeOwned>(
    conn: &mut DbConnection,
    backend: Backend,
    key: &str,
    at: i64,
) -> Result<Option<T>, StoreError> {
    let row = diesel::sql_query(dialect(
        "SELECT result FROM idempotency_keys WHERE key = ? AND expires_at > ?",
        backend,
    ))
    .bind::<Text, _>(key)
    .bind::<BigInt, _>(at)
    .load::<ResultRow>(conn)?;
    row.first()
        .map(|r| serde_json::from_str(&r.result).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

/// Stores the first result under `key` and returns the one that is stored: ours, or the
/// result a racing process stored first.
pub fn remember<T: Serialize + DeserializeOwned>(
    store: &Store,
    key: &str,
    result: &T,
    ttl: Duration,
) -> Result<T, StoreError> {
    let now = now_ms();
    let json = serde_json::to_string(result).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store.write(|tx| {
        let backend = tx.backend();
        // An expired key is free again.
        diesel::sql_query(dialect(
            "DELETE FROM idempotency_keys WHERE key = ? AND expires_at <= ?",
            backend,
        ))
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(now)
        .execute(tx.connection())?;
        diesel::sql_query(dialect(
            "INSERT INTO idempotency_keys (key, result, created_at, expires_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
            backend,
        ))
        .bind::<Text, _>(key)
        .bind::<Text, _>(&json)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(now + ttl.as_millis() as i64)
        .execute(tx.connection())?;
        // Read back in the same transaction, as of the write's instant: by the clock's now a
        // short TTL may already have run out.
        stored(tx.connection(), backend, key, now)?
            .ok_or_else(|| StoreError::Corrupt(format!("idempotency key {key} was not stored")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_first_result_under_a_key_is_the_one_returned_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("idem.db").display());
        let store = Store::open(&url, 2, Arc::new(crate::store::NoIndex)).unwrap();
        store.migrate().unwrap();
        let k = key("Practitioner/p1", "push-v3", "uhc");
        assert_eq!(k, "Practitioner/p1-push-v3-uhc");
        assert_eq!(recall::<String>(&store, &k).unwrap(), None);
        assert_eq!(
            remember(&store, &k, &"submission-1".to_string(), DEFAULT_TTL).unwrap(),
            "submission-1"
        );
        assert_eq!(
            remember(&store, &k, &"submission-2".to_string(), DEFAULT_TTL).unwrap(),
            "submission-1"
        );
        let short = key("Practitioner/p1", "push-v4", "uhc");
        remember(&store, &short, &"a".to_string(), Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(recall::<String>(&store, &short).unwrap(), None, "expired");
        assert_eq!(remember(&store, &short, &"b".to_string(), DEFAULT_TTL).unwrap(), "b");
    }
}
