//! The test harness: every test starts the real `providercard` binary on a free loopback port
//! over its own fresh store (a temp SQLite file, or a new PostgreSQL database created from
//! `PROVIDERCARD_TEST_POSTGRES_URL`, which `scripts/test` provides), and talks HTTP to it.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test, removed when dropped.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

fn postgres_admin_url() -> String {
    std::env::var("PROVIDERCARD_TEST_POSTGRES_URL")
        .expect("PostgreSQL tests need PROVIDERCARD_TEST_POSTGRES_URL: run them through scripts/test")
}

fn with_database(url: &str, database: &str) -> String {
    let (server, _) = url.rsplit_once('/').expect("a postgres URL names a database");
    format!("{server}/{database}")
}

impl TestDatabase {
    pub fn new(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("providercard.db").display());
                TestDatabase {
                    url,
                    _dir: Some(dir),
                    postgres_name: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("pc_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(&admin).expect("connect to the test PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create database");
                TestDatabase {
                    url: with_database(&admin, &name),
                    _dir: None,
                    postgres_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_name {
            if let Ok(mut conn) = PgConnection::establish(&postgres_admin_url()) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
            }
        }
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_providercard")
}

pub fn profiles_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles")
}

/// `providercard` with the repository's profiles, the test store and quiet-but-useful logs.
pub fn providercard(database_url: &str) -> Command {
    let mut command = Command::new(binary());
    command
        .env("PROVIDERCARD_PROFILES", profiles_dir())
        .env("PROVIDERCARD_DATABASE_URL", database_url)
        .env_remove("PROVIDERCARD_LISTEN")
        .env("PROVIDERCARD_LOG", "info")
        .env(
            "PROVIDERCARD_CONFIG",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/offline.yaml"),
        );
    command
}

/// A running server and its database.
pub struct TestApp {
    pub base: String,
    pub db: Arc<TestDatabase>,
    pub client: Client,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl TestApp {
    pub fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[])
    }

    pub fn spawn_with(backend: Backend, args: &[&str]) -> TestApp {
        Self::serve(Arc::new(TestDatabase::new(backend)), args)
    }

    /// Another server process on the same database. Writes need no token (`--open-writes`):
    /// the tests of the REST interactions are not about authorization.
    pub fn serve(db: Arc<TestDatabase>, args: &[&str]) -> TestApp {
        let mut open = vec!["--open-writes"];
        open.extend_from_slice(args);
        Self::serve_secured(db, &open)
    }

    /// A server that enforces authorization, as in production: writes need a bearer token.
    pub fn spawn_secured(backend: Backend) -> TestApp {
        Self::spawn_secured_with(backend, &[])
    }

    pub fn spawn_secured_with(backend: Backend, args: &[&str]) -> TestApp {
        Self::serve_secured(Arc::new(TestDatabase::new(backend)), args)
    }

    pub fn serve_secured(db: Arc<TestDatabase>, args: &[&str]) -> TestApp {
        let mut command = providercard(&db.url);
        command.arg("serve").arg("--listen").arg("127.0.0.1:0").args(args);
        Self::start(command, db)
    }

    pub fn start(mut command: Command, db: Arc<TestDatabase>) -> TestApp {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start providercard");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            line.clear();
            let read = stdout.read_line(&mut line).expect("read stdout");
            if read == 0 || Instant::now() > deadline {
                let _ = child.wait();
                panic!("providercard did not start:\n{}", log.lock().unwrap());
            }
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                break url.to_string();
            }
        };
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
        });
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        TestApp {
            base,
            db,
            client,
            child: Some(child),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().expect("GET")
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.fhir_json(reqwest::Method::POST, path, body).send().expect("POST")
    }

    pub fn put(&self, path: &str, body: &Value) -> Response {
        self.fhir_json(reqwest::Method::PUT, path, body).send().expect("PUT")
    }

    pub fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().expect("DELETE")
    }

    pub fn fhir_json(&self, method: reqwest::Method, path: &str, body: &Value) -> RequestBuilder {
        self.request(method, path)
            .header("Content-Type", "application/fhir+json")
            .body(body.to_string())
    }

    /// Reads a resource that must exist.
    pub fn read(&self, path: &str) -> Value {
        let response = self.get(path);
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().expect("JSON")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the process to end; returns its exit status.
    /// SIGKILL: the process dies at once, mid-request or mid-job, cleaning nothing up.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_kill(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "providercard did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs each named test (a `fn(&TestApp)`) once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&$crate::common::TestApp::spawn($crate::common::Backend::Sqlite)) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(&$crate::common::TestApp::spawn($crate::common::Backend::Postgres)) } )*
        }
    };
}

/// Runs each named test (a `fn(Backend)`: it starts its own server or store, with the options
/// it is about) once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Postgres) } )*
        }
    };
}

// ---- fixtures -------------------------------------------------------------------------

pub fn practitioner(family: &str) -> Value {
    json!({
        "resourceType": "Practitioner",
        "active": true,
        "name": [{"family": family, "given": ["Ann"]}],
    })
}

pub fn practitioner_with_npi(family: &str, npi: &str) -> Value {
    let mut p = practitioner(family);
    p["identifier"] = json!([{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}]);
    p
}

pub fn with_id(mut resource: Value, id: &str) -> Value {
    resource["id"] = json!(id);
    resource
}

pub fn new_id() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}

/// Checks an OperationOutcome: an issue of this severity and code whose expression names `path`.
pub fn assert_outcome(body: &Value, severity: &str, code: &str, path: Option<&str>) {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body:#}");
    let issues = body["issue"].as_array().expect("issues");
    let found = issues.iter().any(|i| {
        i["severity"] == severity
            && i["code"] == code
            && i["diagnostics"].as_str().is_some_and(|d| !d.is_empty())
            && path.is_none_or(|p| i["expression"].as_array().is_some_and(|e| e.iter().any(|x| x == p)))
    });
    assert!(found, "no {severity}/{code} issue at {path:?} in {body:#}");
}

/// The URL of a Bundle's `next` link, if it has one.
pub fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_string())
}

pub fn version_of(resource: &Value) -> &str {
    resource["meta"]["versionId"].as_str().expect("meta.versionId")
}
