//! Schedules: a job kind that must run once per period (the weekly NPPES re-validation).
//! Every process runs the scheduler; the first to insert a period's row in
//! `job_schedule_runs` enqueues that period's job, in the same transaction, and the primary
//! key turns every other process's attempt into a no-op.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::Value;

use super::{enqueue, NewJob};
use crate::store::{dialect, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    Hour,
    Day,
    Week,
}

impl Every {
    pub fn parse(s: &str) -> Option<Every> {
        match s {
            "hourly" => Some(Every::Hour),
            "daily" => Some(Every::Day),
            "weekly" => Some(Every::Week),
            _ => None,
        }
    }

    /// The name of the period an instant falls in: `2026-11-25T10`, `2026-11-25` or the ISO
    /// week `2026-W48`.
    pub fn period(self, at: DateTime<Utc>) -> String {
        match self {
            Every::Hour => at.format("%Y-%m-%dT%H").to_string(),
            Every::Day => at.format("%Y-%m-%d").to_string(),
            Every::Week => {
                let week = at.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub kind: String,
    pub every: Every,
    pub payload: Value,
}

/// Enqueues the current period's job of each schedule not yet enqueued by any process.
/// Returns the ids of the jobs this call enqueued.
pub fn enqueue_due(store: &Store, schedules: &[Schedule], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
    let mut enqueued = Vec::new();
    for schedule in schedules {
        let period = schedule.every.period(now);
        if let Some(id) = enqueue_period(store, schedule, &period)? {
            tracing::info!(schedule = %schedule.name, %period, job = id, "scheduled job enqueued");
            enqueued.push(id);
        }
    }
    Ok(enqueued)
}

fn enqueue_period(store: &Store, schedule: &Schedule, period: &str) -> Result<Option<i64>, StoreError> {
    #[derive(QueryableByName)]
    struct Claimed {
        #[diesel(sql_type = Text)]
        #[allow(dead_code)]
        schedule: String,
    }
    store.write(|tx| {
        let backend = tx.backend();
        let claimed = diesel::sql_query(dialect(
            "INSERT INTO job_schedule_runs (schedule, period, job_id) VALUES (?, ?, 0) \
             ON CONFLICT DO NOTHING RETURNING schedule",
            backend,
        ))
        .bind::<Text, _>(&schedule.name)
        .bind::<Text, _>(period)
        .load::<Claimed>(tx.connection())?;
        if claimed.is_empty() {
            return Ok(None);
        }
        let job = NewJob::new(&schedule.kind, schedule.payload.clone())
            .dedupe(format!("schedule:{}:{period}", schedule.name));
        let id = enqueue(tx, &job)?;
        if let Some(id) = id {
            diesel::sql_query(dialect(
                "UPDATE job_schedule_runs SET job_id = ? WHERE schedule = ? AND period = ?",
                backend,
            ))
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(&schedule.name)
            .bind::<Text, _>(period)
            .execute(tx.connection())?;
        }
        Ok(id)
    })
}

/// Checks the schedules at start and then every `interval` until `shutdown`.
pub async fn run(
    store: Store,
    schedules: Vec<Schedule>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (s, list) = (store.clone(), schedules.clone());
        match super::worker::blocking(move || enqueue_due(&s, &list, Utc::now())).await {
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not check job schedules"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn weeks_are_iso_weeks_so_a_year_boundary_does_not_split_one() {
        let monday = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        let sunday = Utc.with_ymd_and_hms(2026, 11, 29, 23, 59, 59).unwrap();
        assert_eq!(Every::Week.period(monday), "2026-W48");
        assert_eq!(Every::Week.period(sunday), "2026-W48");
        let new_year = Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(Every::Week.period(new_year), "2026-W53");
    }
}
