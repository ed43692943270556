//! 7. Stores: one schema, two migration trees kept in step; both migrate up, down and up again,
//! keeping what is stored.

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

/// Migration 000010 numbers the search parameters of the index rows: a directory indexed
/// before it is found by the same searches after it, and reverting it gives the rows their
/// names back.
fn index_rows_keep_their_parameters_across_the_numbering_migration(backend: Backend) {
    let db = std::sync::Arc::new(TestDatabase::new(backend));
    let family = format!("Numbered{}", new_id().replace('-', ""));
    let found = |app: &TestApp, query: &str| -> i64 { app.read(query)["total"].as_i64().unwrap() };
    let mut app = TestApp::serve(db.clone(), &[]);
    let mut practitioner = practitioner(&family);
    practitioner["address"] = serde_json::json!([{"city": "Burlington", "state": "VT"}]);
    assert_eq!(app.post("Practitioner", &practitioner).status(), 201);
    assert_eq!(found(&app, &format!("Practitioner?family={family}")), 1);
    app.terminate();

    let old_row = format!(
        "SELECT COUNT(*) AS n FROM search_string WHERE resource_type = 'Practitioner' AND param = 'family' AND exact = '{family}'"
    );
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let reverted_rows = match backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::establish(db.url.trim_start_matches("sqlite://")).unwrap();
            conn.revert_last_migration(migrations("sqlite")).unwrap();
            diesel::RunQueryDsl::get_result::<Count>(diesel::sql_query(&old_row), &mut conn)
                .unwrap()
                .n
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&db.url).unwrap();
            conn.revert_last_migration(migrations("postgres")).unwrap();
            diesel::RunQueryDsl::get_result::<Count>(diesel::sql_query(&old_row), &mut conn)
                .unwrap()
                .n
        }
    };
    assert_eq!(reverted_rows, 1, "reverted, the row has its names back");

    // The server migrates again at start-up: the rows written before are found.
    let app = TestApp::serve(db.clone(), &[]);
    assert_eq!(found(&app, &format!("Practitioner?family={family}")), 1);
    assert_eq!(
        found(&app, &format!("Practitioner?name={family}&address=burlington")),
        1
    );
    assert_eq!(
        found(&app, &format!("Practitioner?family={family}&address-state=ny")),
        0
    );
}

#[test]
fn sqlite_index_rows_keep_their_parameters_across_the_numbering_migration() {
    index_rows_keep_their_parameters_across_the_numbering_migration(Backend::Sqlite);
}

#[test]
fn postgres_index_rows_keep_their_parameters_across_the_numbering_migration() {
    index_rows_keep_their_parameters_across_the_numbering_migration(Backend::Postgres);
}
