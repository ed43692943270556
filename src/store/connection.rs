//! Opening either store: one connection enum, one pool, the SQLite pragmas on every connection,
//! and migrations (serialised by an advisory lock on PostgreSQL so processes starting together
//! do not race).

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(diesel::SqliteConnection),
    Postgres(diesel::PgConnection),
}

/// Which database a URL names. Unknown schemes are refused rather than read as a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite://") || url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// The path diesel's SQLite connection wants: `sqlite://data/x.db` → `data/x.db`.
fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

pub type DbPool = Pool<ConnectionManager<DbConnection>>;

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            // WAL lets readers run beside the writer; busy_timeout makes writers queue rather
            // than fail at once; foreign_keys for completeness.
            // busy_timeout first, so that the pragmas after it wait rather than fail while
            // another connection holds the lock.
            c.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

pub fn open_pool(url: &str, max_size: u32) -> Result<(DbPool, Backend), StoreError> {
    let backend = Backend::of_url(url)?;
    let manager_url = match backend {
        Backend::Sqlite => {
            let path = sqlite_path(url);
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::Unavailable(e.to_string()))?;
                }
            }
            path.to_string()
        }
        Backend::Postgres => url.to_string(),
    };
    let pool = Pool::builder()
        .max_size(max_size)
        .connection_timeout(std::time::Duration::from_secs(10))
        .connection_customizer(Box::new(SqlitePragmas))
        .build(ConnectionManager::<DbConnection>::new(manager_url))
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok((pool, backend))
}

/// Applies pending migrations; returns how many ran.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let migration_error = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
    match conn {
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.len())
            .map_err(migration_error),
        DbConnection::Postgres(c) => {
            // A fixed key: every providercard process migrating the same database takes turns.
            c.batch_execute("SELECT pg_advisory_lock(7263001)")?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len())
                .map_err(migration_error);
            c.batch_execute("SELECT pg_advisory_unlock(7263001)")?;
            result
        }
    }
}
