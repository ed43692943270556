//! 1. Run: `providercard serve` on an embedded SQLite file it creates and migrates, `--listen`
//! or its environment variable, `--demo` with the IG's examples, `migrate` on either store,
//! and a graceful stop on SIGTERM.

use std::sync::Arc;

use crate::common::*;

#[test]
fn serve_creates_and_migrates_its_sqlite_file() {
    let db = Arc::new(TestDatabase::new(Backend::Sqlite));
    let path = db.url.trim_start_matches("sqlite://").to_string();
    assert!(!std::path::Path::new(&path).exists());
    let app = TestApp::serve(db, &[]);
    assert!(std::path::Path::new(&path).exists(), "the SQLite file is created");
    let created = app.post("Practitioner", &practitioner("Smith"));
    assert_eq!(created.status(), 201);
}

#[test]
fn the_listen_address_can_come_from_the_environment() {
    let db = Arc::new(TestDatabase::new(Backend::Sqlite));
    let mut command = providercard(&db.url);
    command.arg("serve").env("PROVIDERCARD_LISTEN", "127.0.0.1:0");
    let app = TestApp::start(command, db);
    assert_eq!(app.get("metadata").status(), 200);
}

#[test]
fn demo_loads_every_plan_net_example() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--demo"]);
    let examples = std::fs::read_dir(profiles_dir().join("plan-net/example")).unwrap();
    let mut count = 0;
    for file in examples {
        let example: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file.unwrap().path()).unwrap()).unwrap();
        let path = format!(
            "{}/{}",
            example["resourceType"].as_str().unwrap(),
            example["id"].as_str().unwrap()
        );
        let served = app.read(&path);
        assert_eq!(served["id"], example["id"]);
        count += 1;
    }
    assert_eq!(count, 49, "the Plan-Net 1.2.0 package has 49 examples");
    assert_eq!(app.read("Practitioner/HansSolo")["name"][0]["family"], "Solo");
}

#[test]
fn demo_twice_on_the_same_store_writes_nothing_new() {
    let db = Arc::new(TestDatabase::new(Backend::Sqlite));
    let mut first = TestApp::serve(db.clone(), &["--demo"]);
    assert_eq!(first.get("metadata").status(), 200);
    assert!(first.terminate().success());
    let second = TestApp::serve(db, &["--demo"]);
    assert_eq!(version_of(&second.read("Practitioner/HansSolo")), "1");
}

fn migrate_then_serve(backend: Backend) {
    let db = Arc::new(TestDatabase::new(backend));
    let output = providercard(&db.url).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let applied = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        !applied.starts_with("0 ") && applied.contains("migration(s) applied"),
        "{applied}"
    );
    let again = providercard(&db.url).arg("migrate").output().unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 migration(s) applied"),
        "migrating twice is a no-op"
    );
    let app = TestApp::serve(db, &[]);
    assert_eq!(
        app.post(
            "Location",
            &serde_json::json!({"resourceType": "Location", "name": "Main St"})
        )
        .status(),
        201
    );
}

#[test]
fn migrate_prepares_a_sqlite_store() {
    migrate_then_serve(Backend::Sqlite);
}

#[test]
fn migrate_prepares_a_postgres_store() {
    migrate_then_serve(Backend::Postgres);
}

#[test]
fn an_unknown_database_scheme_is_refused() {
    let output = providercard("mysql://localhost/x").arg("migrate").output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unsupported database URL"));
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let mut app = TestApp::spawn(Backend::Sqlite);
    assert_eq!(app.get("metadata").status(), 200);
    let status = app.terminate();
    assert!(status.success(), "exit status {status:?}");
}
