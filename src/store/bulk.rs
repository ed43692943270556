//! The store's fast path for bulk imports (the NPPES monthly file: tens of millions of
//! resources). A batch is written in one transaction with the same rows [`Tx::put`] would write
//! one resource at a time: a version row, the current row and the search index rows. What makes
//! it fast: one read of the current versions per batch, the FHIRPath indexing done in parallel
//! before the transaction opens, multi-row `INSERT`s on SQLite and `COPY … FROM STDIN` on
//! PostgreSQL, and resources whose content did not change are skipped, so re-importing the same
//! file rewrites nothing.
//!
//! An import names itself; each batch may carry a checkpoint (the position in the source file)
//! that is upserted in the batch's own transaction, so after a crash [`BulkWriter::checkpoint`]
//! says exactly where to resume: no batch is half written and none is lost.
//!
//! [`Tx::put`]: super::Tx::put

use std::collections::HashMap;
use std::io::Write;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, PooledConnection};
use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text};
use serde_json::Value;

use super::connection::{Backend, DbConnection};
use super::index::{dialect, IndexRow};
use super::schema::bulk_import_checkpoints;
use super::SearchParamIds;
use super::{now_instant, stamp, Indexer, Store, StoreError};

/// One resource of an import, written as the next version of `resource_type/id`.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResource {
    pub resource_type: &'static str,
    pub id: String,
    pub resource: Value,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Resources written for the first time.
    pub inserted: usize,
    /// Resources given a new version (their content changed, or they had been deleted).
    pub updated: usize,
    /// Resources whose content was already current: nothing written.
    pub unchanged: usize,
    /// Search index rows inserted.
    pub index_rows: usize,
}

/// Writes an import's batches; holds one pooled connection for the whole import (its pragmas
/// are the import's, see [`Store::bulk_writer`]).
pub struct BulkWriter {
    name: String,
    backend: Backend,
    indexer: std::sync::Arc<dyn Indexer>,
    search_params: std::sync::Arc<SearchParamIds>,
    conn: PooledConnection<ConnectionManager<DbConnection>>,
    /// The committed checkpoint: read when the writer is made, then set after each commit.
    checkpoint: Option<String>,
    batches: u64,
    /// `begin_bulk` dropped the search indexes and `finish_bulk` has not recreated them yet.
    bulk_mode: bool,
    /// SQLite only, when the pool had a connection to spare.
    #[allow(dead_code, reason = "held for its thread, which stops when it is dropped")]
    wal_checkpointer: Option<WalCheckpointer>,
}

/// Bound parameters stay below both stores' limits (SQLite's bundled default is 32766,
/// PostgreSQL's protocol allows 65535), so one statement carries as many rows as fit.
const MAX_BINDS: usize = 32_000;
/// Ids per `IN (…)` list when reading current versions or deleting old index rows.
const IDS_PER_STATEMENT: usize = 1_000;
/// A batch that lost a race to another writer is retried whole (it has no outside effects).
const ATTEMPTS: u32 = 5;
/// The import's SQLite page cache (KiB, as SQLite's negative `cache_size`): the default 2 MiB
/// holds a sliver of the search index B-trees, and every insert lands at a random place in them.
const SQLITE_IMPORT_CACHE_KIB: i64 = 256 * 1024;
/// SQLite's default `cache_size`, restored before the connection goes back to the pool.
const SQLITE_DEFAULT_CACHE_KIB: i64 = 2_000;
/// PostgreSQL's `maintenance_work_mem` while an import rebuilds the search indexes (the
/// default 64 MB spills the sort of a large table to disk).
const POSTGRES_IMPORT_SORT_MEMORY: &str = "512MB";
/// Batches between truncating WAL checkpoints: without one the WAL of an import grows to
/// the size of everything written whenever a reader keeps the automatic checkpoint from
/// resetting it.
const SQLITE_CHECKPOINT_EVERY: u64 = 20;
/// How often an SQLite import's [`WalCheckpointer`] copies what was committed (a batch commits
/// in about half a second).
const SQLITE_BACKGROUND_CHECKPOINT: std::time::Duration = std::time::Duration::from_millis(100);
/// Helper threads SQLite's sorter may use while the writer builds indexes (at most; one per
/// core). The sort of a large index spills to sorted runs that the helpers sort and merge in
/// parallel: at a million providers search_string_norm was built in 46 s instead of 66 s; at
/// 200,000 the sort fits in the cache and nothing changes.
const SQLITE_MAX_SORTER_THREADS: usize = 4;
/// SQLite's default `wal_autocheckpoint` (pages), restored after an import.
const SQLITE_DEFAULT_AUTOCHECKPOINT: i64 = 1_000;

impl Store {
    /// A writer for the import called `name` (e.g. `nppes:npidata_pfile_20050523-20251109.csv`),
    /// with its last checkpoint read back.
    ///
    /// On SQLite the writer's connection gets a 256 MiB page cache and sorter threads for the import; `synchronous`
    /// stays `NORMAL`, which in WAL mode already skips the fsync at each commit (a power loss may
    /// lose the last batches, never corrupt the file, and the checkpoint goes with its batch).
    /// On PostgreSQL, `synchronous_commit` is off for the same reason and index builds get
    /// more sort memory. Dropping the writer restores both.
    pub fn bulk_writer(&self, name: &str) -> Result<BulkWriter, StoreError> {
        let search_params = self.search_params()?;
        let mut conn = self.pool.get()?;
        // With no connection to spare (a pool of one), the writer checkpoints as usual.
        let wal_checkpointer = match self.backend {
            Backend::Sqlite => self.pool.try_get().map(WalCheckpointer::start),
            _ => None,
        };
        {
            use diesel::connection::SimpleConnection;
            match &mut *conn {
                DbConnection::Sqlite(c) => {
                    let threads = std::thread::available_parallelism()
                        .map_or(1, |n| n.get())
                        .min(SQLITE_MAX_SORTER_THREADS);
                    c.batch_execute(&format!(
                        "PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}; PRAGMA threads = {threads}"
                    ))?;
                    if wal_checkpointer.is_some() {
                        c.batch_execute("PRAGMA wal_autocheckpoint = 0")?;
                    }
                }
                // A batch's commit need not wait for its WAL flush: a crash may lose the last
                // batches, but each with its checkpoint, so the import resumes before them.
                // Index builds sort in memory instead of in temporary files.
                DbConnection::Postgres(c) => c.batch_execute(&format!(
                    "SET synchronous_commit = off; SET maintenance_work_mem = '{POSTGRES_IMPORT_SORT_MEMORY}'"
                ))?,
            }
        }
        let checkpoint = bulk_import_checkpoints::table
            .find(name)
            .select(bulk_import_checkpoints::position)
            .first::<String>(&mut *conn)
            .optional()?;
        Ok(BulkWriter {
            name: name.to_string(),
            backend: self.backend,
            indexer: self.indexer.clone(),
            search_params,
            conn,
            checkpoint,
            batches: 0,
            bulk_mode: false,
            wal_checkpointer,
        })
    }
}

/// Copies an SQLite import's WAL into the database file on a thread and connection of its own,
/// so that the writer, the import's bottleneck, no longer stops after its commits to copy pages
/// and sync the file. PASSIVE checkpoints never block the writer; the writer's own TRUNCATE
/// checkpoint every [`SQLITE_CHECKPOINT_EVERY`] batches then finds the WAL mostly copied.
struct WalCheckpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WalCheckpointer {
    fn start(mut conn: PooledConnection<ConnectionManager<DbConnection>>) -> WalCheckpointer {
        use diesel::connection::SimpleConnection;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(SQLITE_BACKGROUND_CHECKPOINT)
            {
                if let Err(error) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::warn!(%error, "background WAL checkpoint did not complete");
                }
            }
        });
        WalCheckpointer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BulkWriter {
    fn drop(&mut self) {
        if self.bulk_mode {
            // An import that stopped on an error still leaves a searchable directory.
            if let Err(error) = self.finish_bulk() {
                tracing::error!(%error, "recreating the search indexes after a bulk import failed");
            }
        }
        use diesel::connection::SimpleConnection;
        // The pool's other users did not ask for the import's settings.
        let _ = match &mut *self.conn {
            DbConnection::Sqlite(c) => c.batch_execute(&format!(
                "PRAGMA cache_size = -{SQLITE_DEFAULT_CACHE_KIB}; PRAGMA threads = 0; \
                 PRAGMA wal_autocheckpoint = {SQLITE_DEFAULT_AUTOCHECKPOINT}"
            )),
            DbConnection::Postgres(c) => c.batch_execute("RESET synchronous_commit; RESET maintenance_work_mem"),
        };
    }
}

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    #[allow(dead_code, reason = "only whether a row exists matters")]
    n: i32,
}

#[derive(QueryableByName)]
struct IndexDefinition {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    definition: String,
}

fn dropped_indexes(conn: &mut DbConnection) -> Result<Vec<IndexDefinition>, StoreError> {
    Ok(diesel::sql_query("SELECT name, definition FROM bulk_dropped_indexes ORDER BY name").load(conn)?)
}

/// Recreates the `*_owner` indexes [`BulkWriter::begin_bulk`] dropped, if it did: deleting a
/// resource's index rows reads them.
fn recreate_owner_indexes(conn: &mut DbConnection, backend: Backend) -> Result<(), StoreError> {
    for index in dropped_indexes(conn)?.iter().filter(|i| i.name.ends_with("_owner")) {
        execute(conn, backend, &index.definition, &[])?;
        execute(
            conn,
            backend,
            "DELETE FROM bulk_dropped_indexes WHERE name = ?",
            &[Val::Text(&index.name)],
        )?;
    }
    Ok(())
}

/// One version to write.
struct Planned {
    resource_type: &'static str,
    id: String,
    version_id: i64,
    /// The stamped resource, as stored.
    content: String,
    stamped: Value,
    /// The key had a current row before this batch (its old index rows must go).
    existed: bool,
    /// The last version of its key in the batch: only it becomes current and gets index rows.
    last: bool,
}

/// What the batch found current for a key: version, tombstone, content.
type Current = (i64, bool, Option<String>);

impl BulkWriter {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The position the last committed batch recorded, if the import has not been cleared.
    pub fn checkpoint(&self) -> Option<String> {
        self.checkpoint.clone()
    }

    /// Forgets the import's checkpoint: call it when the import has completed.
    pub fn clear_checkpoint(&mut self) -> Result<(), StoreError> {
        diesel::delete(bulk_import_checkpoints::table.find(&self.name)).execute(&mut *self.conn)?;
        self.checkpoint = None;
        Ok(())
    }

    /// Before a first import into an empty directory: drops the secondary indexes of the search
    /// tables, recording their definitions in `bulk_dropped_indexes` in the same transaction.
    /// Measured (debug build, 13 index rows per practitioner, recreation included): SQLite
    /// loaded 100,000 2.1 times and 200,000 2.4 times faster, the gain growing with the size;
    /// PostgreSQL 100,000 only 1.1 times. The `*_owner` indexes go too, and come back (sorted in
    /// one pass) with the first batch that replaces a resource's rows, which they serve: a first
    /// import's providers file only adds. Returns whether the import runs without them: false
    /// (nothing done) when any search table has rows; true too when an interrupted import left
    /// them dropped. [`BulkWriter::finish_bulk`] recreates them, as does dropping the writer.
    pub fn begin_bulk(&mut self) -> Result<bool, StoreError> {
        let (backend, tables) = (self.backend, SEARCH_TABLES.map(|t| format!("'{t}'")).join(", "));
        let dropped = in_transaction(&mut self.conn, |conn| {
            if !dropped_indexes(conn)?.is_empty() {
                return Ok(true);
            }
            for table in SEARCH_TABLES {
                let sql = format!("SELECT 1 AS n FROM {table} LIMIT 1");
                if !diesel::sql_query(sql).load::<One>(conn)?.is_empty() {
                    return Ok(false);
                }
            }
            let sql = match backend {
                Backend::Sqlite => format!(
                    "SELECT name, sql AS definition FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
                     AND tbl_name IN ({tables})"
                ),
                Backend::Postgres => format!(
                    "SELECT CAST(indexname AS TEXT) AS name, indexdef AS definition FROM pg_indexes \
                     WHERE schemaname = current_schema() AND tablename IN ({tables})"
                ),
            };
            for index in diesel::sql_query(sql).load::<IndexDefinition>(conn)? {
                execute(
                    conn,
                    backend,
                    "INSERT INTO bulk_dropped_indexes (name, definition) VALUES (?, ?)",
                    &[Val::Text(&index.name), Val::Text(&index.definition)],
                )?;
                // Names come from the catalogue, not from input; quoted all the same.
                execute(conn, backend, &format!("DROP INDEX \"{}\"", index.name), &[])?;
            }
            Ok(true)
        })?;
        self.bulk_mode = dropped;
        Ok(dropped)
    }

    /// Whether search indexes are recorded as dropped by [`BulkWriter::begin_bulk`] (this
    /// import's or an interrupted one's).
    pub fn indexes_dropped(&mut self) -> Result<bool, StoreError> {
        Ok(!dropped_indexes(&mut self.conn)?.is_empty())
    }

    /// Leaves the indexes [`BulkWriter::begin_bulk`] dropped when this writer is dropped: the
    /// import goes on with another writer, whose `begin_bulk` finds them still dropped (they stay
    /// recorded) and whose `finish_bulk` recreates them once, after the last file.
    pub fn keep_indexes_dropped(&mut self) {
        self.bulk_mode = false;
    }

    /// Recreates the indexes [`BulkWriter::begin_bulk`] dropped (by this writer or by an
    /// import that was interrupted) and refreshes the planner's statistics. Does nothing when
    /// none are recorded as dropped.
    pub fn finish_bulk(&mut self) -> Result<(), StoreError> {
        let backend = self.backend;
        let recreated = in_transaction(&mut self.conn, |conn| {
            let indexes = dropped_indexes(conn)?;
            for index in &indexes {
                execute(conn, backend, &index.definition, &[])?;
            }
            execute(conn, backend, "DELETE FROM bulk_dropped_indexes", &[])?;
            Ok(!indexes.is_empty())
        })?;
        self.bulk_mode = false;
        if recreated {
            use diesel::connection::SimpleConnection;
            let tables = SEARCH_TABLES.join(", ");
            match backend {
                // Statistics from a sample of each index: exact ones cost a full scan of each.
                Backend::Sqlite => self
                    .conn
                    .batch_execute("PRAGMA analysis_limit = 1000; PRAGMA optimize")?,
                // VACUUM too: until it marks the freshly written pages all-visible, an index-only
                // scan still reads the table for each row. At 1M providers a chained search took
                // 1.3 times as long before it (the vacuum: 34 s, 4 % of that import).
                Backend::Postgres => self
                    .conn
                    .batch_execute(&format!("VACUUM (ANALYZE) resources, {tables}"))?,
            }
        }
        Ok(())
    }

    /// Writes a batch in one transaction (with `checkpoint`, if given, as the import's position).
    pub fn write_batch(
        &mut self,
        batch: Vec<BulkResource>,
        checkpoint: Option<&str>,
    ) -> Result<BatchStats, StoreError> {
        let mut prepared = prepare(&mut self.conn, self.backend, &*self.indexer, batch)?;
        self.commit(&mut prepared, checkpoint)
    }

    /// Writes a batch [`Store::prepare_bulk_batch`] prepared, in one transaction (with
    /// `checkpoint`, if given, as the import's position). When a version it planned from is no
    /// longer current (another writer, or an earlier batch committed after it was prepared),
    /// the batch is planned again (in place) and retried. The caller keeps the batch, to free
    /// it where that costs the import least.
    pub fn commit(&mut self, prepared: &mut PreparedBatch, checkpoint: Option<&str>) -> Result<BatchStats, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_commit(prepared, checkpoint) {
                Err(StoreError::Conflict) if attempt < ATTEMPTS => {
                    std::thread::sleep(std::time::Duration::from_millis(u64::from(attempt) * 20));
                    let batch = std::mem::take(&mut prepared.batch);
                    *prepared = prepare(&mut self.conn, self.backend, &*self.indexer, batch)?;
                }
                Ok(()) => {
                    if let Some(position) = checkpoint {
                        self.checkpoint = Some(position.to_string());
                    }
                    self.after_batch();
                    return Ok(prepared.stats);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn after_batch(&mut self) {
        use diesel::connection::SimpleConnection;
        self.batches += 1;
        if self.backend == Backend::Sqlite && self.batches % SQLITE_CHECKPOINT_EVERY == 0 {
            if let Err(error) = self.conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)") {
                tracing::warn!(%error, "WAL checkpoint did not complete");
            }
        }
        // PostgreSQL plans each batch's read of current versions from statistics autovacuum
        // gathers too late for a table growing this fast: on a store that started empty it
        // took `resource_type` to select a few rows, used the primary key for it alone and
        // filtered the ids over every row of the type (38 ms instead of 6 ms per thousand ids
        // at 100,000 roles, growing with the table). Analyzed after batches 1, 2, 4, 8, … the
        // statistics keep up at a cost of ~0.1 s a time.
        if self.backend == Backend::Postgres && self.batches.is_power_of_two() {
            if let Err(error) = self.conn.batch_execute("ANALYZE resources, resource_versions") {
                tracing::warn!(%error, "ANALYZE after a batch did not complete");
            }
        }
    }

    fn try_commit(&mut self, prepared: &PreparedBatch, checkpoint: Option<&str>) -> Result<(), StoreError> {
        let PreparedBatch {
            batch,
            read,
            planned,
            rows,
            now,
            ..
        } = prepared;
        let (conn, backend, name) = (&mut *self.conn, self.backend, self.name.as_str());
        let params = &*self.search_params;
        in_transaction(conn, |conn| {
            let now_current = read_current(conn, backend, &keys_of(batch), false)?;
            if &versions_of(&now_current) != read {
                return Err(StoreError::Conflict);
            }
            insert_versions(conn, planned, now)?;
            upsert_current(conn, planned, now)?;
            if planned.iter().any(|p| p.existed && p.last) {
                recreate_owner_indexes(conn, backend)?;
            }
            delete_index_rows(conn, backend, params, planned)?;
            insert_index_rows(conn, params, planned, rows)?;
            if let Some(position) = checkpoint {
                save_checkpoint(conn, backend, name, position)?;
            }
            Ok(())
        })
    }
}

/// A batch planned and indexed, ready for [`BulkWriter::commit`]: the versions it read, the
/// versions it will write and their search index rows. Preparing takes no lock, so an import
/// prepares its next batch while the previous one commits.
pub struct PreparedBatch {
    batch: Vec<BulkResource>,
    /// The versions current when the batch was planned; the commit checks they still are.
    read: Vec<ReadVersion>,
    planned: Vec<Planned>,
    rows: Vec<Vec<IndexRow>>,
    stats: BatchStats,
    now: String,
}

impl Store {
    /// Plans and indexes `batch` on a connection of its own, for [`BulkWriter::commit`].
    pub fn prepare_bulk_batch(&self, batch: Vec<BulkResource>) -> Result<PreparedBatch, StoreError> {
        let mut conn = self.pool.get()?;
        prepare(&mut conn, self.backend, &*self.indexer, batch)
    }
}

/// Reads the batch's current versions, decides what to write and computes the index rows, all
/// outside a transaction.
fn prepare(
    conn: &mut DbConnection,
    backend: Backend,
    indexer: &dyn Indexer,
    batch: Vec<BulkResource>,
) -> Result<PreparedBatch, StoreError> {
    let now = now_instant();
    let current = read_current(conn, backend, &keys_of(&batch), true)?;
    let read = versions_of(&current);
    let (mut planned, mut stats) = plan(&batch, &current, &now)?;
    drop(current);
    let rows = index_in_parallel(indexer, &planned)?;
    stats.index_rows = rows.iter().map(Vec::len).sum();
    // Freed here rather than by the committing thread, which is the import's bottleneck.
    for p in &mut planned {
        p.stamped = Value::Null;
    }
    Ok(PreparedBatch {
        batch,
        read,
        planned,
        rows,
        stats,
        now,
    })
}

fn keys_of(batch: &[BulkResource]) -> Vec<(&'static str, &str)> {
    batch.iter().map(|r| (r.resource_type, r.id.as_str())).collect()
}

/// Runs `work` in a transaction: `BEGIN IMMEDIATE` on SQLite, so the batch takes the write lock
/// up front instead of failing to upgrade a read lock halfway through.
fn in_transaction<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        DbConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    let rollback = |conn: &mut DbConnection| {
        let result = match conn {
            DbConnection::Sqlite(c) => AnsiTransactionManager::rollback_transaction(c),
            DbConnection::Postgres(c) => AnsiTransactionManager::rollback_transaction(c),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "rolling back a bulk batch failed");
        }
    };
    match work(conn) {
        Ok(value) => {
            let committed = match conn {
                DbConnection::Sqlite(c) => AnsiTransactionManager::commit_transaction(c),
                DbConnection::Postgres(c) => AnsiTransactionManager::commit_transaction(c),
            };
            if let Err(e) = committed {
                // A failed commit may leave the transaction open; it must not reach the pool so.
                if conn_in_transaction(conn) {
                    rollback(conn);
                }
                return Err(e.into());
            }
            Ok(value)
        }
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

fn conn_in_transaction(conn: &mut DbConnection) -> bool {
    use diesel::connection::TransactionManagerStatus;
    let status = match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c),
        DbConnection::Postgres(c) => AnsiTransactionManager::transaction_manager_status_mut(c),
    };
    match status {
        TransactionManagerStatus::Valid(v) => v.transaction_depth().is_some(),
        TransactionManagerStatus::InError => true,
    }
}

/// A value bound into a multi-row statement.
#[derive(Clone, Copy)]
enum Val<'a> {
    Text(&'a str),
    NullableText(Option<&'a str>),
    Integer(i32),
    BigInt(i64),
    Bool(bool),
    Double(f64),
}

/// Executes `sql` (with `?` placeholders) with `vals` bound in order.
fn execute(conn: &mut DbConnection, backend: Backend, sql: &str, vals: &[Val<'_>]) -> Result<usize, StoreError> {
    let mut query = diesel::sql_query(dialect(sql, backend)).into_boxed();
    for val in vals {
        query = match *val {
            Val::Text(v) => query.bind::<Text, _>(v),
            Val::NullableText(v) => query.bind::<Nullable<Text>, _>(v),
            Val::Integer(v) => query.bind::<Integer, _>(v),
            Val::BigInt(v) => query.bind::<BigInt, _>(v),
            Val::Bool(v) => query.bind::<Bool, _>(v),
            Val::Double(v) => query.bind::<Double, _>(v),
        };
    }
    Ok(query.execute(conn)?)
}

/// `INSERT INTO {head} VALUES (…), (…) {tail}` over `rows` (each `columns` values long);
/// returns the rows the statements reported. Statements carry a fixed number of rows (one of
/// [`ROWS_PER_INSERT`]), so their SQL repeats and the connection's cache of prepared
/// statements keeps them: a batch's thousands of index rows are bound into a few statements
/// compiled once per import, not parsed again for every chunk (parsing was a twentieth of the
/// committing thread's time).
fn insert_rows<'a>(
    conn: &mut DbConnection,
    head: &str,
    tail: &str,
    columns: usize,
    rows: &[Vec<Val<'a>>],
) -> Result<usize, StoreError> {
    let mut affected = 0;
    let mut rest = rows;
    for per_statement in ROWS_PER_INSERT {
        let per_statement = per_statement.min(MAX_BINDS / columns).max(1);
        if rest.len() < per_statement {
            continue;
        }
        let whole = rest.len() - rest.len() % per_statement;
        for chunk in rest[..whole].chunks(per_statement) {
            let vals: Vec<Val<'a>> = chunk.iter().flatten().copied().collect();
            let insert = RowsInsert {
                head,
                tail,
                columns,
                vals: &vals,
            };
            affected += match conn {
                DbConnection::Sqlite(c) => c.execute_returning_count(&insert)?,
                DbConnection::Postgres(c) => c.execute_returning_count(&insert)?,
            };
        }
        rest = &rest[whole..];
    }
    Ok(affected)
}

/// Rows per multi-row `INSERT`, largest first (the last, one, takes any rest), each capped by
/// [`MAX_BINDS`]: three statements per table whatever a batch's size.
const ROWS_PER_INSERT: [usize; 3] = [1_024, 32, 1];

/// `INSERT INTO {head} VALUES (…), (…) {tail}` with `vals` bound, `columns` to a row: a
/// statement the connection caches by its text (diesel's `sql_query` never caches, as it cannot
/// know its text repeats).
struct RowsInsert<'q, 'a> {
    head: &'q str,
    tail: &'q str,
    columns: usize,
    vals: &'q [Val<'a>],
}

impl diesel::query_builder::QueryId for RowsInsert<'_, '_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for RowsInsert<'_, '_>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<Integer>
        + diesel::sql_types::HasSqlType<BigInt>
        + diesel::sql_types::HasSqlType<Bool>
        + diesel::sql_types::HasSqlType<Double>,
    str: diesel::serialize::ToSql<Text, DB>,
    i32: diesel::serialize::ToSql<Integer, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    bool: diesel::serialize::ToSql<Bool, DB>,
    f64: diesel::serialize::ToSql<Double, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("INSERT INTO ");
        out.push_sql(self.head);
        out.push_sql(" VALUES ");
        for (i, row) in self.vals.chunks(self.columns).enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            for (j, val) in row.iter().enumerate() {
                if j > 0 {
                    out.push_sql(", ");
                }
                // The query builder writes each placeholder (`?` or `$n`).
                match val {
                    Val::Text(v) => out.push_bind_param::<Text, str>(v)?,
                    Val::NullableText(v) => out.push_bind_param::<Nullable<Text>, Option<&str>>(v)?,
                    Val::Integer(v) => out.push_bind_param::<Integer, i32>(v)?,
                    Val::BigInt(v) => out.push_bind_param::<BigInt, i64>(v)?,
                    Val::Bool(v) => out.push_bind_param::<Bool, bool>(v)?,
                    Val::Double(v) => out.push_bind_param::<Double, f64>(v)?,
                }
            }
            out.push_sql(")");
        }
        out.push_sql(" ");
        out.push_sql(self.tail);
        Ok(())
    }
}

/// The current rows of `keys` (one statement per type and thousand ids). `with_content` false
/// reads versions only, for the check inside the transaction.
fn read_current<'k>(
    conn: &mut DbConnection,
    backend: Backend,
    keys: &[(&'static str, &'k str)],
    with_content: bool,
) -> Result<HashMap<(&'static str, &'k str), Current>, StoreError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = BigInt)]
        version_id: i64,
        #[diesel(sql_type = Bool)]
        deleted: bool,
        #[diesel(sql_type = Nullable<Text>)]
        content: Option<String>,
    }
    let mut by_type: HashMap<&'static str, Vec<&'k str>> = HashMap::new();
    for (resource_type, id) in keys {
        by_type.entry(resource_type).or_default().push(id);
    }
    // The content lives once, in the current version's row.
    let (content, join) = if with_content {
        (
            "v.content",
            "JOIN resource_versions v ON v.resource_type = r.resource_type AND v.id = r.id \
             AND v.version_id = r.version_id",
        )
    } else {
        ("NULL AS content", "")
    };
    let mut found = HashMap::with_capacity(keys.len());
    for (resource_type, mut ids) in by_type {
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT r.id AS id, r.version_id AS version_id, r.deleted AS deleted, {content} FROM resources r {join} \
                 WHERE r.resource_type = ? AND r.id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut query = diesel::sql_query(dialect(&sql, backend))
                .into_boxed()
                .bind::<Text, _>(resource_type);
            for id in chunk {
                query = query.bind::<Text, _>(*id);
            }
            for row in query.load::<Row>(conn)? {
                // Key by the caller's &str so the map borrows the batch, not the rows.
                let id = chunk[chunk.binary_search(&row.id.as_str()).map_err(|_| corrupt_id(&row.id))?];
                found.insert((resource_type, id), (row.version_id, row.deleted, row.content));
            }
        }
    }
    Ok(found)
}

/// A key's version and whether it is a tombstone, as read.
type ReadVersion = (&'static str, String, i64, bool);

/// The versions (and tombstones) of a read, comparable across two reads.
fn versions_of(read: &HashMap<(&'static str, &str), Current>) -> Vec<ReadVersion> {
    let mut versions: Vec<_> = read.iter().map(|(k, c)| (k.0, k.1.to_string(), c.0, c.1)).collect();
    versions.sort_unstable();
    versions
}

fn corrupt_id(id: &str) -> StoreError {
    StoreError::Corrupt(format!("the store answered an id it was not asked for: {id}"))
}

/// Whether two versions of a resource say the same, the store's stamps (`id`, `meta.versionId`,
/// `meta.lastUpdated`) aside. Compared in place: copying each resource to strip its stamps was
/// a measurable part of a batch.
fn same_content(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            fn meta<'m>(
                object: &'m serde_json::Map<String, Value>,
                empty: &'m serde_json::Map<String, Value>,
            ) -> &'m serde_json::Map<String, Value> {
                object.get("meta").and_then(Value::as_object).unwrap_or(empty)
            }
            let empty = serde_json::Map::new();
            fields_equal(a, b, &["id", "meta"])
                && fields_equal(meta(a, &empty), meta(b, &empty), &["versionId", "lastUpdated"])
        }
        _ => a == b,
    }
}

/// `a` and `b` have the same fields with the same values, `skipped` fields aside.
fn fields_equal(a: &serde_json::Map<String, Value>, b: &serde_json::Map<String, Value>, skipped: &[&str]) -> bool {
    let kept = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| !skipped.contains(&k.as_str())).count();
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !skipped.contains(&k.as_str()))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// What a key's content is as the batch goes: the stored version, or one planned earlier in the
/// batch.
enum Live {
    Stored(Value),
    Planned(usize),
}

/// Decides, in batch order, which resources need a new version and stamps them.
fn plan<'b>(
    batch: &'b [BulkResource],
    current: &HashMap<(&'static str, &'b str), Current>,
    now: &str,
) -> Result<(Vec<Planned>, BatchStats), StoreError> {
    let mut stats = BatchStats::default();
    // The state of each key as the batch goes: a key may appear more than once.
    let mut state: HashMap<(&'static str, &str), (i64, Option<Live>)> = HashMap::new();
    let mut planned: Vec<Planned> = Vec::new();
    for resource in batch {
        let key = (resource.resource_type, resource.id.as_str());
        let (version, live) = match state.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let (version, live) = match current.get(&key) {
                    Some((version, false, Some(content))) => {
                        let stored: Value =
                            serde_json::from_str(content).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        (*version, Some(Live::Stored(stored)))
                    }
                    Some((version, _, _)) => (*version, None),
                    None => (0, None),
                };
                entry.insert((version, live))
            }
        };
        let unchanged = match live {
            Some(Live::Stored(stored)) => same_content(stored, &resource.resource),
            Some(Live::Planned(i)) => same_content(&planned[*i].stamped, &resource.resource),
            None => false,
        };
        if unchanged {
            stats.unchanged += 1;
            continue;
        }
        if *version == 0 {
            stats.inserted += 1;
        } else {
            stats.updated += 1;
        }
        *version += 1;
        let mut stamped = resource.resource.clone();
        stamp(&mut stamped, key.1, *version, now);
        let content = serde_json::to_string(&stamped).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Some(Live::Planned(previous)) = live {
            planned[*previous].last = false;
        }
        *live = Some(Live::Planned(planned.len()));
        planned.push(Planned {
            resource_type: key.0,
            id: key.1.to_string(),
            version_id: *version,
            content,
            stamped,
            existed: current.contains_key(&key),
            last: true,
        });
    }
    // A key written twice in a batch counts as inserted (or updated) and then updated.
    Ok((planned, stats))
}

/// The index rows of each planned version that becomes current (empty for the others), computed
/// over the available cores: FHIRPath evaluation is most of a batch's work.
fn index_in_parallel(indexer: &dyn Indexer, planned: &[Planned]) -> Result<Vec<Vec<IndexRow>>, StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk_size = planned.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = planned
            .chunks(chunk_size)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|p| {
                            if p.last {
                                distinct(indexer.index_rows(p.resource_type, &p.stamped))
                            } else {
                                Vec::new()
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut rows = Vec::with_capacity(planned.len());
        for handle in handles {
            // A panicking indexer fails the batch (nothing is written yet), not the process.
            rows.extend(
                handle
                    .join()
                    .map_err(|_| StoreError::Corrupt("computing search index rows panicked".into()))?,
            );
        }
        Ok(rows)
    })
}

/// Drops repeated rows as `index::replace_rows` does (rows are few per resource).
fn distinct(rows: Vec<IndexRow>) -> Vec<IndexRow> {
    let mut seen: Vec<IndexRow> = Vec::with_capacity(rows.len());
    for row in rows {
        if !seen.contains(&row) {
            seen.push(row);
        }
    }
    seen
}

fn insert_versions(conn: &mut DbConnection, planned: &[Planned], now: &str) -> Result<(), StoreError> {
    let rows: Vec<Vec<Val<'_>>> = planned
        .iter()
        .map(|p| {
            vec![
                Val::Text(p.resource_type),
                Val::Text(&p.id),
                Val::BigInt(p.version_id),
                Val::Text(now),
                Val::Text("PUT"),
                Val::Bool(false),
                Val::NullableText(Some(&p.content)),
            ]
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let written = match conn {
        DbConnection::Postgres(pg) => {
            use super::schema::resource_versions as v;
            // `seq` is left to its identity default, as the one-at-a-time insert leaves it.
            let columns = (
                v::resource_type,
                v::id,
                v::version_id,
                v::last_updated,
                v::method,
                v::deleted,
                v::content,
            );
            diesel::copy_from(v::table)
                .from_raw_data(columns, |out: &mut dyn Write| write_copy(out, &rows))
                .execute(pg)?
        }
        DbConnection::Sqlite(_) => insert_rows(
            conn,
            "resource_versions (resource_type, id, version_id, last_updated, method, deleted, content)",
            "",
            7,
            &rows,
        )?,
    };
    expect_count("resource_versions", written, rows.len())
}

fn expect_count(table: &str, got: usize, expected: usize) -> Result<(), StoreError> {
    if got == expected {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!("{table}: wrote {got} rows of {expected}")))
    }
}

/// Inserts or updates the current row of each key; the guard makes a row that another writer
/// moved past our version count as not written, which fails the batch as a conflict.
fn upsert_current(conn: &mut DbConnection, planned: &[Planned], now: &str) -> Result<(), StoreError> {
    let rows: Vec<Vec<Val<'_>>> = planned
        .iter()
        .filter(|p| p.last)
        .map(|p| {
            vec![
                Val::Text(p.resource_type),
                Val::Text(&p.id),
                Val::BigInt(p.version_id),
                Val::Text(now),
                Val::Bool(false),
            ]
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let written = insert_rows(
        conn,
        "resources (resource_type, id, version_id, last_updated, deleted)",
        "ON CONFLICT (resource_type, id) DO UPDATE SET version_id = excluded.version_id, \
         last_updated = excluded.last_updated, deleted = excluded.deleted \
         WHERE resources.version_id < excluded.version_id",
        5,
        &rows,
    )?;
    if written != rows.len() {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

const SEARCH_TABLES: [&str; 6] = [
    "search_token",
    "search_string",
    "search_reference",
    "search_date",
    "search_uri",
    "search_number",
];

/// Deletes the index rows of keys that had a current row before the batch.
fn delete_index_rows(
    conn: &mut DbConnection,
    backend: Backend,
    params: &SearchParamIds,
    planned: &[Planned],
) -> Result<(), StoreError> {
    let mut by_type: HashMap<&'static str, Vec<&str>> = HashMap::new();
    for p in planned.iter().filter(|p| p.existed && p.last) {
        by_type.entry(p.resource_type).or_default().push(p.id.as_str());
    }
    for (resource_type, ids) in by_type {
        let param_ids = params.of_type(resource_type);
        if param_ids.is_empty() {
            continue;
        }
        let param_list = vec!["?"; param_ids.len()].join(", ");
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut vals: Vec<Val> = chunk.iter().map(|id| Val::Text(id)).collect();
            vals.extend(param_ids.iter().map(|p| Val::Integer(*p)));
            let list = vec!["?"; chunk.len()].join(", ");
            for table in SEARCH_TABLES {
                let sql = format!("DELETE FROM {table} WHERE id IN ({list}) AND param_id IN ({param_list})");
                execute(conn, backend, &sql, &vals)?;
            }
        }
    }
    Ok(())
}

/// The index rows of one search table, as bound values (`param_id` and `id` first).
fn table_rows<'a>(
    table: &str,
    params: &SearchParamIds,
    planned: &'a [Planned],
    rows: &'a [Vec<IndexRow>],
) -> Result<Vec<Vec<Val<'a>>>, StoreError> {
    let mut out = Vec::new();
    for (p, rows) in planned.iter().zip(rows) {
        let written_by = params.written_by(p.resource_type);
        let param = |code: &str| written_by.id(code).map(Val::Integer);
        for row in rows {
            let id = Val::Text(&p.id);
            let values = match (table, row) {
                (
                    "search_token",
                    IndexRow::Token {
                        param: param_code,
                        system,
                        code,
                        text,
                    },
                ) => {
                    vec![
                        param(param_code)?,
                        id,
                        Val::Text(system),
                        Val::Text(code),
                        Val::Text(text),
                    ]
                }
                (
                    "search_string",
                    IndexRow::String {
                        param: code,
                        norm,
                        exact,
                    },
                ) => {
                    vec![param(code)?, id, Val::Text(norm), Val::Text(exact)]
                }
                (
                    "search_reference",
                    IndexRow::Reference {
                        param: code,
                        target_type,
                        target_id,
                        url,
                    },
                ) => vec![
                    param(code)?,
                    id,
                    Val::Text(target_type),
                    Val::Text(target_id),
                    Val::Text(url),
                ],
                ("search_date", IndexRow::Date { param: code, low, high }) => {
                    vec![param(code)?, id, Val::Text(low), Val::Text(high)]
                }
                ("search_uri", IndexRow::Uri { param: code, uri }) => vec![param(code)?, id, Val::Text(uri)],
                (
                    "search_number",
                    IndexRow::Number {
                        param: param_code,
                        value,
                        system,
                        code,
                    },
                ) => vec![
                    param(param_code)?,
                    id,
                    Val::Double(*value),
                    Val::Text(system),
                    Val::Text(code),
                ],
                _ => continue,
            };
            out.push(values);
        }
    }
    Ok(out)
}

fn columns_of(table: &str) -> &'static str {
    match table {
        "search_token" => "param_id, id, system, code, text",
        "search_string" => "param_id, id, norm, exact",
        "search_reference" => "param_id, id, target_type, target_id, url",
        "search_date" => "param_id, id, low, high",
        "search_uri" => "param_id, id, uri",
        "search_number" => "param_id, id, value, system, code",
        _ => unreachable!("not a search table: {table}"),
    }
}

fn insert_index_rows(
    conn: &mut DbConnection,
    params: &SearchParamIds,
    planned: &[Planned],
    rows: &[Vec<IndexRow>],
) -> Result<(), StoreError> {
    for table in SEARCH_TABLES {
        let values = table_rows(table, params, planned, rows)?;
        if values.is_empty() {
            continue;
        }
        let columns = columns_of(table);
        let written = match conn {
            DbConnection::Postgres(pg) => copy_rows(pg, table, &values)?,
            DbConnection::Sqlite(_) => {
                insert_rows(conn, &format!("{table} ({columns})"), "", values[0].len(), &values)?
            }
        };
        expect_count(table, written, values.len())?;
    }
    Ok(())
}

/// `COPY table FROM STDIN` (all its columns, in schema order: what `columns_of` lists).
fn copy_rows(pg: &mut diesel::PgConnection, table: &str, rows: &[Vec<Val<'_>>]) -> Result<usize, StoreError> {
    use super::schema::{search_date, search_number, search_reference, search_string, search_token, search_uri};
    macro_rules! copy_into {
        ($table:ident) => {
            diesel::copy_from($table::table)
                .from_raw_data($table::table, |out: &mut dyn Write| write_copy(out, rows))
                .execute(pg)?
        };
    }
    Ok(match table {
        "search_token" => copy_into!(search_token),
        "search_string" => copy_into!(search_string),
        "search_reference" => copy_into!(search_reference),
        "search_date" => copy_into!(search_date),
        "search_uri" => copy_into!(search_uri),
        "search_number" => copy_into!(search_number),
        _ => unreachable!("not a search table: {table}"),
    })
}

/// Rows in COPY's text format. Text rather than binary: the columns are text already (JSON, ids,
/// codes), so binary would save nothing but the escaping, and text keeps one writer for every
/// table. A double goes in Rust's shortest round-trip form, which PostgreSQL reads back exactly.
fn write_copy(out: &mut dyn Write, rows: &[Vec<Val<'_>>]) -> Result<(), diesel::result::Error> {
    for row in rows {
        let mut line = CopyLine::new(out);
        for val in row {
            match val {
                Val::Text(v) | Val::NullableText(Some(v)) => line.text(v)?,
                Val::NullableText(None) => line.raw("\\N")?,
                Val::Integer(v) => line.raw(&v.to_string())?,
                Val::BigInt(v) => line.raw(&v.to_string())?,
                Val::Bool(v) => line.raw(if *v { "t" } else { "f" })?,
                Val::Double(v) => line.raw(&v.to_string())?,
            }
        }
        line.end()?;
    }
    Ok(())
}

/// One line of COPY's text format: tab-separated fields with `\`, tab, newline and carriage
/// return escaped.
struct CopyLine<'w> {
    out: &'w mut dyn Write,
    first: bool,
}

impl<'w> CopyLine<'w> {
    fn new(out: &'w mut dyn Write) -> Self {
        CopyLine { out, first: true }
    }

    fn separator(&mut self) -> Result<(), diesel::result::Error> {
        if !std::mem::take(&mut self.first) {
            self.out.write_all(b"\t").map_err(io_error)?;
        }
        Ok(())
    }

    fn raw(&mut self, value: &str) -> Result<(), diesel::result::Error> {
        self.separator()?;
        self.out.write_all(value.as_bytes()).map_err(io_error)
    }

    fn text(&mut self, value: &str) -> Result<(), diesel::result::Error> {
        self.separator()?;
        let bytes = value.as_bytes();
        let mut start = 0;
        for (i, b) in bytes.iter().enumerate() {
            let escaped: &[u8] = match b {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => continue,
            };
            self.out.write_all(&bytes[start..i]).map_err(io_error)?;
            self.out.write_all(escaped).map_err(io_error)?;
            start = i + 1;
        }
        self.out.write_all(&bytes[start..]).map_err(io_error)
    }

    fn end(self) -> Result<(), diesel::result::Error> {
        self.out.write_all(b"\n").map_err(io_error)
    }
}

fn io_error(e: std::io::Error) -> diesel::result::Error {
    diesel::result::Error::SerializationError(Box::new(e))
}

fn save_checkpoint(conn: &mut DbConnection, backend: Backend, name: &str, position: &str) -> Result<(), StoreError> {
    let at = chrono::Utc::now().timestamp_millis();
    execute(
        conn,
        backend,
        "INSERT INTO bulk_import_checkpoints (name, position, updated_at) VALUES (?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        &[Val::Text(name), Val::Text(position), Val::BigInt(at)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
