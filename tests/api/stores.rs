//! 7. Stores: one schema, two migration trees kept in step; both migrate up, down and up again.

use std::collections::BTreeSet;
use std::path::Path;

use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};

use crate::common::*;

fn migration_names(dialect: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_migration_trees_have_the_same_migrations() {
    let sqlite = migration_names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, migration_names("postgres"));
    for name in sqlite {
        for dialect in ["sqlite", "postgres"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dialect)
                .join(&name);
            assert!(
                dir.join("up.sql").exists() && dir.join("down.sql").exists(),
                "{dialect}/{name}"
            );
        }
    }
}

fn migrations(dialect: &str) -> FileBasedMigrations {
    FileBasedMigrations::from_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect)).unwrap()
}

#[test]
fn sqlite_migrations_run_up_down_and_up_again() {
    let db = TestDatabase::new(Backend::Sqlite);
    let mut conn = SqliteConnection::establish(db.url.trim_start_matches("sqlite://")).unwrap();
    conn.run_pending_migrations(migrations("sqlite")).unwrap();
    conn.revert_all_migrations(migrations("sqlite")).unwrap();
    conn.run_pending_migrations(migrations("sqlite")).unwrap();
}

#[test]
fn postgres_migrations_run_up_down_and_up_again() {
    let db = TestDatabase::new(Backend::Postgres);
    let mut conn = PgConnection::establish(&db.url).unwrap();
    conn.run_pending_migrations(migrations("postgres")).unwrap();
    conn.revert_all_migrations(migrations("postgres")).unwrap();
    conn.run_pending_migrations(migrations("postgres")).unwrap();
}
