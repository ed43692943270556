//! NPI Registry answers kept in the database (`nppes_cache`) for the configured time, so that
//! repeated writes of a provider do not each cost one of NPPES's few requests, and so that a
//! write's transaction can enrich from an answer fetched before it began.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::client::Lookup;
use super::model::NppesRecord;
use crate::jobs::now_ms;
use crate::store::{dialect, Backend, DbConnection, StoreError};

/// An answer and when NPPES gave it.
#[derive(Debug, Clone)]
pub struct Cached {
    pub lookup: Lookup,
    /// Milliseconds since the epoch.
    pub fetched_at: i64,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = Nullable<Text>)]
    record: Option<String>,
    #[diesel(sql_type = BigInt)]
    fetched_at: i64,
}

/// The answer for `npi` fetched less than `ttl_ms` ago, if any.
pub fn get(conn: &mut DbConnection, backend: Backend, npi: &str, ttl_ms: i64) -> Result<Option<Cached>, StoreError> {
    let rows = diesel::sql_query(dialect(
        "SELECT outcome, record, fetched_at FROM nppes_cache WHERE npi = ? AND fetched_at > ?",
        backend,
    ))
    .bind::<Text, _>(npi)
    .bind::<BigInt, _>(now_ms() - ttl_ms)
    .load::<Row>(conn)?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let corrupt = |e: String| StoreError::Corrupt(format!("nppes_cache {npi}: {e}"));
    let lookup = match row.outcome.as_str() {
        "found" => {
            let raw =
                serde_json::from_str(row.record.as_deref().unwrap_or("null")).map_err(|e| corrupt(e.to_string()))?;
            Lookup::Found(Box::new(
                NppesRecord::from_raw(raw).map_err(|e| corrupt(e.to_string()))?,
            ))
        }
        "not_found" => Lookup::NotFound,
        "deactivated" => Lookup::Deactivated {
            message: row.record.unwrap_or_default(),
        },
        other => return Err(corrupt(format!("unknown outcome {other}"))),
    };
    Ok(Some(Cached {
        lookup,
        fetched_at: row.fetched_at,
    }))
}

/// Keeps `cached` as the answer for `npi`, replacing an older one.
pub fn put(conn: &mut DbConnection, backend: Backend, npi: &str, cached: &Cached) -> Result<(), StoreError> {
    let (outcome, record) = match &cached.lookup {
        Lookup::Found(record) => ("found", Some(record.raw.to_string())),
        Lookup::NotFound => ("not_found", None),
        Lookup::Deactivated { message } => ("deactivated", Some(message.clone())),
    };
    diesel::sql_query(dialect(
        "INSERT INTO nppes_cache (npi, outcome, record, fetched_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (npi) DO UPDATE SET outcome = excluded.outcome, record = excluded.record, \
         fetched_at = excluded.fetched_at",
        backend,
    ))
    .bind::<Text, _>(npi)
    .bind::<Text, _>(outcome)
    .bind::<Nullable<Text>, _>(record.as_deref())
    .bind::<BigInt, _>(cached.fetched_at)
    .execute(conn)?;
    Ok(())
}
