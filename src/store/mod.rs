//! The store: every resource kept as its FHIR JSON, with every version in `resource_versions`
//! and the current one in `resources`. The store assigns `meta.versionId` and `meta.lastUpdated`;
//! it knows nothing of HTTP or of FHIR rules beyond versions.
//!
//! Concurrency rule: a write reads the current version and inserts version N+1 under a unique
//! key. When two writers race, the loser's insert fails (PostgreSQL: unique violation; SQLite:
//! busy snapshot) and the whole write is retried from the start by [`Store::write`], so no update
//! is ever lost and `If-Match` is checked against the version really current.

pub mod bulk;
pub mod connection;
pub mod schema;

use std::time::Duration;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::Value;

pub use bulk::{BatchStats, BulkResource, BulkWriter};
pub use connection::{Backend, DbConnection, DbPool};
pub use index::{dialect, Bind, IndexRow, Indexer, NoIndex, SearchRow};
use schema::{resource_versions, resources};

mod index;
mod params;
pub use params::SearchParamIds;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first; the caller's whole unit of work may be retried.
    #[error("concurrent write conflict")]
    Conflict,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("unsupported database URL: use sqlite://PATH or postgres://…")]
    UnsupportedUrl,
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Query(DieselError),
    /// A job's lease ran out while it worked; its transaction is rolled back.
    #[error("the job's lease was lost")]
    LeaseLost,
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
            | DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => StoreError::Conflict,
            DieselError::DatabaseError(_, info) if is_sqlite_busy(info.message()) => StoreError::Conflict,
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_string())
            }
            _ => StoreError::Query(e),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

fn is_sqlite_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

/// One version of one resource as stored.
#[derive(Debug, Clone, Queryable)]
pub struct StoredVersion {
    pub seq: i64,
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: String,
    pub method: String,
    pub deleted: bool,
    pub content: Option<String>,
}

impl StoredVersion {
    /// The resource JSON (None for a deletion).
    pub fn resource(&self) -> Result<Option<Value>, StoreError> {
        self.content
            .as_deref()
            .map(|c| serde_json::from_str(c).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }
}

impl StoredVersion {
    /// The current version seen as a stored version (its `seq` is not known here: 0).
    pub fn from_current(current: &CurrentVersion) -> StoredVersion {
        StoredVersion {
            seq: 0,
            resource_type: current.resource_type.clone(),
            id: current.id.clone(),
            version_id: current.version_id,
            last_updated: current.last_updated.clone(),
            method: "PUT".into(),
            deleted: current.deleted,
            content: current.content.clone(),
        }
    }
}

/// The current state of one resource.
#[derive(Debug, Clone, Queryable)]
pub struct CurrentVersion {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: String,
    pub deleted: bool,
    pub content: Option<String>,
}

impl CurrentVersion {
    /// The resource JSON (`{}` for a deletion's tombstone).
    pub fn json(&self) -> Result<Value, StoreError> {
        serde_json::from_str(self.content.as_deref().unwrap_or("{}")).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// Current rows joined to their version rows. The content is stored once, in the version row:
/// a copy in `resources` made every write carry each resource twice (a fifth of the database
/// after a bulk import).
macro_rules! current_versions {
    () => {
        resources::table
            .inner_join(
                resource_versions::table.on(resource_versions::resource_type
                    .eq(resources::resource_type)
                    .and(resource_versions::id.eq(resources::id))
                    .and(resource_versions::version_id.eq(resources::version_id))),
            )
            // A [`CurrentVersion`]: the current row, and the content its version row holds.
            .select((
                resources::resource_type,
                resources::id,
                resources::version_id,
                resources::last_updated,
                resources::deleted,
                resource_versions::content,
            ))
    };
}

/// A page of history, newest first.
pub struct HistoryPage {
    pub versions: Vec<StoredVersion>,
    pub total: i64,
}

#[derive(Clone)]
pub struct Store {
    pool: DbPool,
    backend: Backend,
    /// Says which search index rows a resource has; every write keeps them current.
    indexer: std::sync::Arc<dyn Indexer>,
    /// The numbers of the indexer's search parameters, registered on first use (after the
    /// migrations have run).
    search_params: std::sync::Arc<std::sync::OnceLock<std::sync::Arc<SearchParamIds>>>,
    /// Writes since the last SQLite WAL checkpoint.
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

const WRITE_ATTEMPTS: u32 = 30;

impl Store {
    /// Opens the database a URL names (`sqlite://PATH` or `postgres://…`).
    pub fn open(url: &str, pool_size: u32, indexer: std::sync::Arc<dyn Indexer>) -> Result<Store, StoreError> {
        let (pool, backend) = connection::open_pool(url, pool_size)?;
        Ok(Store {
            pool,
            backend,
            indexer,
            search_params: Default::default(),
            writes: Default::default(),
        })
    }

    /// The search parameters' numbers, registered the first time they are needed: before any
    /// transaction, on a connection of its own (inside one, SQLite's write lock would be held).
    pub fn search_params(&self) -> Result<std::sync::Arc<SearchParamIds>, StoreError> {
        if let Some(ids) = self.search_params.get() {
            return Ok(ids.clone());
        }
        let mut conn = self.pool.get()?;
        let ids = std::sync::Arc::new(SearchParamIds::register(&mut conn, &self.indexer.parameters())?);
        Ok(self.search_params.get_or_init(|| ids).clone())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A pooled connection, for modules that keep tables of their own (auth, jobs, …).
    pub fn conn(
        &self,
    ) -> Result<diesel::r2d2::PooledConnection<diesel::r2d2::ConnectionManager<DbConnection>>, StoreError> {
        Ok(self.pool.get()?)
    }

    pub fn migrate(&self) -> Result<usize, StoreError> {
        let mut conn = self.pool.get()?;
        connection::run_migrations(&mut conn)
    }

    /// Runs one unit of writing work in a database transaction, retrying it whole when it
    /// lost a race to another writer. `work` must therefore be free of outside effects.
    pub fn write<T, E>(&self, mut work: impl FnMut(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError> + AsStoreConflict,
    {
        let params = self.search_params()?;
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = now_instant();
            let result = write_transaction::<T, TxError<E>>(&mut conn, |c| {
                let mut tx = Tx {
                    conn: c,
                    now: now.clone(),
                    backend: self.backend,
                    indexer: &*self.indexer,
                    params: &params,
                };
                work(&mut tx).map_err(TxError::Work)
            });
            match result {
                Ok(v) => {
                    self.after_write(&mut conn);
                    return Ok(v);
                }
                Err(TxError::Work(e)) if e.is_store_conflict() && attempt < WRITE_ATTEMPTS => {}
                Err(TxError::Work(e)) => return Err(e),
                Err(TxError::Db(e)) => {
                    let e = StoreError::from(e);
                    if !matches!(e, StoreError::Conflict) || attempt >= WRITE_ATTEMPTS {
                        return Err(E::from(e));
                    }
                }
            }
            // Back off a little, with jitter, so racing writers do not collide again in lockstep.
            let jitter = uuid::Uuid::new_v4().as_u128() as u64 % 5;
            std::thread::sleep(Duration::from_millis(u64::from(attempt) * 2 + jitter));
        }
    }

    /// SQLite's automatic checkpoints can never reset the WAL while readers keep overlapping
    /// (measured: a 35 GB WAL beside a 1.5 GB database under a search benchmark). Every so
    /// many writes, one writer waits for a truncating checkpoint.
    fn after_write(&self, conn: &mut DbConnection) {
        use diesel::connection::SimpleConnection;
        const EVERY: u64 = 500;
        if self.backend == Backend::Sqlite
            && self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % EVERY == EVERY - 1
        {
            // `optimize` keeps the planner's statistics current as the directory grows.
            if let Err(error) = conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize;") {
                tracing::warn!(%error, "WAL checkpoint did not complete");
            }
        }
    }

    /// Runs reads that need one consistent view (several index look-ups) in a transaction.
    pub fn snapshot<T>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let params = self.search_params()?;
        let mut conn = self.pool.get()?;
        let now = now_instant();
        let (backend, indexer) = (self.backend, &*self.indexer);
        conn.transaction::<T, StoreError, _>(|c| {
            work(&mut Tx {
                conn: c,
                now,
                backend,
                indexer,
                params: &params,
            })
        })
    }

    /// The current version of a resource, including a tombstone when it was deleted.
    /// <https://hl7.org/fhir/R4/http.html#read>
    pub fn read(&self, resource_type: &str, id: &str) -> Result<Option<CurrentVersion>, StoreError> {
        let mut conn = self.pool.get()?;
        read_current(&mut conn, resource_type, id)
    }

    /// One version of a resource. <https://hl7.org/fhir/R4/http.html#vread>
    pub fn vread(&self, resource_type: &str, id: &str, version_id: i64) -> Result<Option<StoredVersion>, StoreError> {
        let mut conn = self.pool.get()?;
        Ok(resource_versions::table
            .filter(resource_versions::resource_type.eq(resource_type))
            .filter(resource_versions::id.eq(id))
            .filter(resource_versions::version_id.eq(version_id))
            .first::<StoredVersion>(&mut conn)
            .optional()?)
    }

    /// Whether any version of this resource was ever written.
    pub fn exists_ever(&self, resource_type: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.read(resource_type, id)?.is_some())
    }

    /// Instance history (`id` given) or type history, newest first, `count` at most, versions
    /// with `seq < before` only (the paging cursor), `_since` as an instant.
    /// <https://hl7.org/fhir/R4/http.html#history>
    pub fn history(
        &self,
        resource_type: &str,
        id: Option<&str>,
        since: Option<&str>,
        before: Option<i64>,
        count: i64,
    ) -> Result<HistoryPage, StoreError> {
        let mut conn = self.pool.get()?;
        let filtered = || {
            let mut q = resource_versions::table
                .filter(resource_versions::resource_type.eq(resource_type.to_string()))
                .into_boxed();
            if let Some(id) = id {
                q = q.filter(resource_versions::id.eq(id.to_string()));
            }
            if let Some(since) = since {
                q = q.filter(resource_versions::last_updated.ge(since.to_string()));
            }
            q
        };
        let total = filtered().count().get_result::<i64>(&mut conn)?;
        let mut q = filtered();
        if let Some(before) = before {
            q = q.filter(resource_versions::seq.lt(before));
        }
        let versions = q
            .order(resource_versions::seq.desc())
            .limit(count)
            .load::<StoredVersion>(&mut conn)?;
        Ok(HistoryPage { versions, total })
    }

    /// Live resources of a type in id order after `after_id`, for listing.
    pub fn list(
        &self,
        resource_type: &str,
        after_id: Option<&str>,
        count: i64,
    ) -> Result<Vec<CurrentVersion>, StoreError> {
        let mut conn = self.pool.get()?;
        let mut q = current_versions!()
            .filter(resources::resource_type.eq(resource_type.to_string()))
            .filter(resources::deleted.eq(false))
            .into_boxed();
        if let Some(after) = after_id {
            q = q.filter(resources::id.gt(after.to_string()));
        }
        Ok(q.order(resources::id.asc())
            .limit(count)
            .load::<CurrentVersion>(&mut conn)?)
    }

    pub fn count_live(&self, resource_type: &str) -> Result<i64, StoreError> {
        let mut conn = self.pool.get()?;
        Ok(resources::table
            .filter(resources::resource_type.eq(resource_type))
            .filter(resources::deleted.eq(false))
            .count()
            .get_result(&mut conn)?)
    }

    /// `(id, code)` of the live resources of a type carrying a `param` token of `system`
    /// (e.g. every NPI identifier), in id order after `after_id`, `limit` at most: for jobs that
    /// visit every such resource in batches.
    pub fn tokens_in_system(
        &self,
        resource_type: &str,
        param: &str,
        system: &str,
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        use schema::search_token as t;
        let Some(param_id) = self.search_params()?.id(resource_type, param) else {
            return Ok(Vec::new());
        };
        let mut conn = self.pool.get()?;
        let mut q = t::table
            .filter(t::param_id.eq(param_id))
            .filter(t::system.eq(system.to_string()))
            .select((t::id, t::code))
            .into_boxed();
        if let Some(after) = after_id {
            q = q.filter(t::id.gt(after.to_string()));
        }
        Ok(q.order((t::id.asc(), t::code.asc())).limit(limit).load(&mut conn)?)
    }

    /// Is the database answering? Used by health checks.
    pub fn ping(&self) -> Result<(), StoreError> {
        use diesel::connection::SimpleConnection;
        let mut conn = self.pool.get()?;
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }
}

fn read_current(conn: &mut DbConnection, resource_type: &str, id: &str) -> Result<Option<CurrentVersion>, StoreError> {
    Ok(current_versions!()
        .filter(resources::resource_type.eq(resource_type))
        .filter(resources::id.eq(id))
        .first::<CurrentVersion>(conn)
        .optional()?)
}

/// What a write transaction can do. Every method works inside the caller's transaction.
pub struct Tx<'c> {
    conn: &'c mut DbConnection,
    now: String,
    backend: Backend,
    indexer: &'c dyn Indexer,
    params: &'c SearchParamIds,
}

impl Tx<'_> {
    /// The instant this transaction stamps on what it writes.
    pub fn now(&self) -> &str {
        &self.now
    }

    pub fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<CurrentVersion>, StoreError> {
        read_current(self.conn, resource_type, id)
    }

    /// The transaction's connection, for modules with tables of their own (jobs, alerts, the
    /// NPPES cache) whose rows must commit or roll back with the resources written beside them.
    pub fn connection(&mut self) -> &mut DbConnection {
        self.conn
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes `resource` as the next version of `resource_type/id`, stamping `id`,
    /// `meta.versionId` and `meta.lastUpdated`, and replaces its search index rows.
    pub fn put(
        &mut self,
        resource_type: &str,
        id: &str,
        mut resource: Value,
        method: &str,
    ) -> Result<StoredVersion, StoreError> {
        let current = read_current(self.conn, resource_type, id)?;
        let version_id = current.as_ref().map_or(0, |c| c.version_id) + 1;
        stamp(&mut resource, id, version_id, &self.now);
        let content = serde_json::to_string(&resource).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let stored = self.insert_version(
            resource_type,
            id,
            version_id,
            method,
            false,
            Some(content),
            current.is_some(),
        )?;
        let rows = self.indexer.index_rows(resource_type, &resource);
        index::replace_rows(self.conn, self.params, resource_type, id, &rows)?;
        Ok(stored)
    }

    /// Records a deletion as a new version; the resource's history is kept.
    /// Returns None when there was nothing live to delete.
    pub fn delete(&mut self, resource_type: &str, id: &str) -> Result<Option<StoredVersion>, StoreError> {
        let Some(current) = read_current(self.conn, resource_type, id)? else {
            return Ok(None);
        };
        if current.deleted {
            return Ok(None);
        }
        let stored = self.insert_version(resource_type, id, current.version_id + 1, "DELETE", true, None, true)?;
        index::replace_rows(self.conn, self.params, resource_type, id, &[])?;
        Ok(Some(stored))
    }

    #[expect(clippy::too_many_arguments, reason = "one row's columns")]
    fn insert_version(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
        method: &str,
        deleted: bool,
        content: Option<String>,
        exists: bool,
    ) -> Result<StoredVersion, StoreError> {
        diesel::insert_into(resource_versions::table)
            .values((
                resource_versions::resource_type.eq(resource_type),
                resource_versions::id.eq(id),
                resource_versions::version_id.eq(version_id),
                resource_versions::last_updated.eq(&self.now),
                resource_versions::method.eq(method),
                resource_versions::deleted.eq(deleted),
                resource_versions::content.eq(content.as_deref()),
            ))
            .execute(self.conn)?;
        if exists {
            // The version guard makes a stale writer update nothing, which we treat as a race.
            let updated = diesel::update(resources::table.find((resource_type, id)))
                .filter(resources::version_id.eq(version_id - 1))
                .set((
                    resources::version_id.eq(version_id),
                    resources::last_updated.eq(&self.now),
                    resources::deleted.eq(deleted),
                ))
                .execute(self.conn)?;
            if updated != 1 {
                return Err(StoreError::Conflict);
            }
        } else {
            diesel::insert_into(resources::table)
                .values((
                    resources::resource_type.eq(resource_type),
                    resources::id.eq(id),
                    resources::version_id.eq(version_id),
                    resources::last_updated.eq(&self.now),
                    resources::deleted.eq(deleted),
                ))
                .execute(self.conn)?;
        }
        Ok(resource_versions::table
            .filter(resource_versions::resource_type.eq(resource_type))
            .filter(resource_versions::id.eq(id))
            .filter(resource_versions::version_id.eq(version_id))
            .first::<StoredVersion>(self.conn)?)
    }

    /// Ids (and sort keys) a search statement selects; `?` placeholders, in order.
    pub fn search(&mut self, sql: &str, binds: &[Bind]) -> Result<Vec<SearchRow>, StoreError> {
        index::search(self.conn, self.backend, self.params, sql, binds)
    }

    /// A count the search statement selects as `n`.
    pub fn count(&mut self, sql: &str, binds: &[Bind]) -> Result<i64, StoreError> {
        index::count(self.conn, self.backend, self.params, sql, binds)
    }

    /// The current live versions of resources by id (any order).
    pub fn read_many(&mut self, resource_type: &str, ids: &[String]) -> Result<Vec<CurrentVersion>, StoreError> {
        Ok(current_versions!()
            .filter(resources::resource_type.eq(resource_type))
            .filter(resources::id.eq_any(ids))
            .filter(resources::deleted.eq(false))
            .load::<CurrentVersion>(self.conn)?)
    }

    /// References held by the given resources under a parameter: (target type, target id).
    pub fn references_of(
        &mut self,
        resource_type: &str,
        param: &str,
        ids: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        index::references_of(self.conn, self.params, resource_type, param, ids)
    }

    /// Resources of `resource_type` whose `param` refers to one of `targets`.
    pub fn referring(
        &mut self,
        resource_type: &str,
        param: &str,
        target_type: &str,
        targets: &[String],
    ) -> Result<Vec<String>, StoreError> {
        index::referring(self.conn, self.params, resource_type, param, target_type, targets)
    }

    /// Replaces the index rows of one resource (used by `reindex`).
    pub fn reindex(&mut self, resource_type: &str, id: &str, resource: &Value) -> Result<(), StoreError> {
        let rows = self.indexer.index_rows(resource_type, resource);
        index::replace_rows(self.conn, self.params, resource_type, id, &rows)
    }

    /// The backend's query plan for a statement, as text (tests assert indexes are used).
    pub fn explain(&mut self, sql: &str, binds: &[Bind]) -> Result<String, StoreError> {
        index::explain(self.conn, self.backend, self.params, sql, binds)
    }
}

/// Errors a write's work may return: the store tells it whether to retry the whole write.
pub trait AsStoreConflict {
    fn is_store_conflict(&self) -> bool;
}

impl AsStoreConflict for StoreError {
    fn is_store_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict)
    }
}

enum TxError<E> {
    Work(E),
    Db(DieselError),
}

impl<E> From<DieselError> for TxError<E> {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

fn stamp(resource: &mut Value, id: &str, version_id: i64, now: &str) {
    if let Value::Object(map) = resource {
        map.insert("id".into(), Value::String(id.to_string()));
        let meta = map.entry("meta").or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(meta) = meta {
            meta.insert("versionId".into(), Value::String(version_id.to_string()));
            meta.insert("lastUpdated".into(), Value::String(now.to_string()));
        }
    }
}

/// Runs `work` in a write transaction. On SQLite it begins `IMMEDIATE`, taking the write lock
/// at once (waiting on busy_timeout): a deferred transaction that reads first and then writes
/// fails to upgrade when another writer committed in between, which under concurrent large
/// transactions turned 30 % of them into conflicts (measured with bench/search_bench.sh).
fn write_transaction<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    if let DbConnection::Sqlite(sqlite) = &mut *conn {
        AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    } else {
        return conn.transaction(work);
    }
    type Manager = <DbConnection as diesel::Connection>::TransactionManager;
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            Manager::rollback_transaction(conn)?;
            Err(error)
        }
    }
}

/// Milliseconds since the epoch as an instant in that same format.
pub fn instant_of_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// An instant in the one format both stores sort correctly as text.
pub fn now_instant() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
