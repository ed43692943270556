//! The NPPES integration through the binary: NPI check digits on write, enrichment from the
//! NPI Registry (never overwriting, discrepancies reported, traceable by Provenance), a
//! PractitionerRole with NUCC specialties, the lookup cache, every fault NPPES can show
//! (down, 429 with Retry-After, malformed answers, resets), durable enrichment jobs that
//! survive a SIGKILL, the weekly re-validation (withdrawal and reinstatement), health,
//! metrics, alerts and their webhook, and taxonomy translation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{assert_outcome, providercard, Backend, TestApp, TestDatabase};
use crate::fake_nppes::{FakeNppes, Fault};

const JANE: &str = "1720377294";
const HARBOR: &str = "1568946812";

/// A configuration pointing NPPES at the fake, with short intervals so tests do not wait.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(fake: &FakeNppes, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "integrations:\n  health_check_interval: 1\n  nppes:\n    base_url: {}\n    timeout: 1500\n    \
             retry: {{ max_attempts: 2, initial_delay: 100, max_delay: 500 }}\n    \
             circuit_breaker: {{ failure_threshold: 5, open_for: 2 }}\n\
             jobs:\n  poll_interval: 200\n  lease: 3\n\
             alerts:\n  evaluation_interval: 1\n  rules: {{ down_for: 2 }}\n{extra}",
            fake.base_url()
        );
        std::fs::write(dir.path().join("test.yaml"), yaml).unwrap();
        Setup { dir }
    }

    fn path(&self) -> String {
        self.dir.path().join("test.yaml").display().to_string()
    }

    fn serve(&self, db: Arc<TestDatabase>) -> TestApp {
        TestApp::serve(db, &["--config", &self.path()])
    }
}

fn jane(fake: &FakeNppes) {
    fake.add(
        FakeNppes::individual(JANE, "JANE", "DOE")
            .credential("MD")
            .sex("F")
            .location("100 PEACHTREE ST NW", "ATLANTA", "GA", "303031234", "404-555-0100")
            .taxonomy("207R00000X", "Internal Medicine", true)
            .build(),
    );
}

fn with_npi(npi: &str) -> Value {
    json!({
        "resourceType": "Practitioner",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}],
    })
}

fn created(app: &TestApp, body: &Value) -> Value {
    let response = app.post("Practitioner", body);
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().unwrap()
}

/// Polls `check` until it returns Some or `secs` pass.
fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn search(app: &TestApp, query: &str) -> Vec<Value> {
    let bundle = app.read(query);
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn open_alerts(app: &TestApp, kind: &str) -> Vec<Value> {
    let body: Value = app.get(&format!("api/v1/alerts?kind={kind}")).json().unwrap();
    body["alerts"].as_array().cloned().unwrap_or_default()
}

fn is_enriched(resource: &Value) -> bool {
    resource["name"][0]["family"] == "DOE"
}

fn lookups_of(fake: &FakeNppes, npi: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.param("number") == Some(npi))
        .count()
}

crate::on_both_backends!(
    an_npi_failing_its_check_digit_is_refused_at_the_identifier,
    a_practitioner_written_with_only_an_npi_gets_an_enriched_plan_net_profile,
    what_the_provider_entered_is_kept_and_differences_become_a_discrepancy_alert,
    an_npi_nppes_does_not_know_raises_a_provider_alert_not_an_error,
    when_nppes_is_down_the_write_is_stored_and_enriched_once_nppes_is_back,
    a_429_queues_the_enrichment_and_the_job_honours_retry_after,
    malformed_answers_and_connection_resets_never_fail_a_write,
    weekly_revalidation_withdraws_a_deactivated_npi_and_reinstates_it,
    health_alerts_and_metrics_follow_nppes_going_down_and_coming_back,
);

fn an_npi_failing_its_check_digit_is_refused_at_the_identifier(backend: Backend) {
    let app = TestApp::spawn(backend);
    let mut body = with_npi("1234567890");
    body["identifier"] = json!([
        {"system": "http://example.org/staff", "value": "A1"},
        {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567890"},
    ]);
    let response = app.post("Practitioner", &body);
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let outcome: Value = response.json().unwrap();
    assert_outcome(&outcome, "error", "value", Some("Practitioner.identifier[1].value"));
    assert!(outcome["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("check digit"));
    let short = app.post(
        "Organization",
        &json!({"resourceType": "Organization", "name": "X",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "12345"}]}),
    );
    assert_eq!(short.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_outcome(
        &short.json().unwrap(),
        "error",
        "value",
        Some("Organization.identifier[0].value"),
    );
    assert_eq!(app.read("Practitioner?_summary=count")["total"], 0, "nothing stored");
}

fn a_practitioner_written_with_only_an_npi_gets_an_enriched_plan_net_profile(backend: Backend) {
    let fake = FakeNppes::start();
    jane(&fake);
    let setup = Setup::new(&fake, "");
    let app = setup.serve(Arc::new(TestDatabase::new(backend)));
    let p = created(&app, &with_npi(JANE));
    let id = p["id"].as_str().unwrap();
    assert_eq!(p["meta"]["versionId"], "1", "enriched within the write, not after it");
    assert_eq!(p["name"][0]["family"], "DOE");
    assert_eq!(p["name"][0]["given"][0], "JANE");
    assert_eq!(p["name"][0]["suffix"][0], "MD");
    assert_eq!(p["gender"], "female");
    assert_eq!(p["address"][0]["use"], "work");
    assert_eq!(p["address"][0]["city"], "ATLANTA");
    assert_eq!(p["address"][0]["postalCode"], "30303-1234");
    assert!(p["telecom"].as_array().unwrap().iter().any(|t| t["system"] == "phone"));

    // Traceable to NPPES: a Provenance naming it, the NPI and the retrieval time.
    let provenances = search(&app, &format!("Provenance?target=Practitioner/{id}"));
    let nppes = provenances
        .iter()
        .find(|p| p["agent"][0]["who"]["display"].as_str().unwrap_or("").contains("NPPES"))
        .expect("a Provenance naming NPPES");
    assert_eq!(nppes["entity"][0]["what"]["identifier"]["value"], JANE);
    assert!(nppes["occurredDateTime"].as_str().is_some());
    assert!(nppes["reason"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Practitioner.gender"));

    // A PractitionerRole carrying the NUCC specialty with its display text.
    let roles = search(&app, &format!("PractitionerRole?practitioner=Practitioner/{id}"));
    assert_eq!(roles.len(), 1);
    let coding = &roles[0]["specialty"][0]["coding"][0];
    assert_eq!(coding["system"], "http://nucc.org/provider-taxonomy");
    assert_eq!(coding["code"], "207R00000X");
    assert!(coding["display"].as_str().unwrap().contains("Internal Medicine"));
    assert!(
        roles[0]["meta"]["profile"][0]
            .as_str()
            .unwrap()
            .ends_with("plannet-PractitionerRole"),
        "the role conforms to Plan-Net"
    );
    let validated = app.post(
        "PractitionerRole/$validate",
        &json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": roles[0]}]}),
    );
    let outcome: Value = validated.json().unwrap();
    assert!(
        !outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["severity"] == "error"),
        "{outcome}"
    );

    // Written again within the cache's 7 days: NPPES is not asked again, no second role.
    let asked = lookups_of(&fake, JANE);
    let mut again = p.clone();
    again["active"] = json!(true);
    assert_eq!(app.put(&format!("Practitioner/{id}"), &again).status(), StatusCode::OK);
    assert_eq!(lookups_of(&fake, JANE), asked, "answered from the cache");
    assert_eq!(
        search(&app, &format!("PractitionerRole?practitioner=Practitioner/{id}")).len(),
        1
    );
}

fn what_the_provider_entered_is_kept_and_differences_become_a_discrepancy_alert(backend: Backend) {
    let fake = FakeNppes::start();
    jane(&fake);
    let setup = Setup::new(&fake, "");
    let app = setup.serve(Arc::new(TestDatabase::new(backend)));
    let mut body = with_npi(JANE);
    body["name"] = json!([{"family": "Smith", "given": ["Jane"]}]);
    body["gender"] = json!("female");
    let p = created(&app, &body);
    assert_eq!(p["name"][0]["family"], "Smith", "never overwritten");
    assert_eq!(p["address"][0]["city"], "ATLANTA", "empty elements still filled");
    let id = p["id"].as_str().unwrap();
    let alerts = open_alerts(&app, "nppes-discrepancy");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["subject"], format!("Practitioner/{id}"));
    assert_eq!(alerts[0]["npi"], JANE);
    let d = &alerts[0]["details"]["discrepancies"];
    assert!(d
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["element"].as_str().unwrap().contains("family") && d["provider"] == "Smith" && d["nppes"] == "DOE"));
    // The provider corrects the name: the discrepancy resolves.
    let mut fixed = p.clone();
    fixed["name"][0]["family"] = json!("Doe");
    assert_eq!(app.put(&format!("Practitioner/{id}"), &fixed).status(), StatusCode::OK);
    assert!(open_alerts(&app, "nppes-discrepancy").is_empty());
}

fn an_npi_nppes_does_not_know_raises_a_provider_alert_not_an_error(backend: Backend) {
    let fake = FakeNppes::start();
    let setup = Setup::new(&fake, "");
    let app = setup.serve(Arc::new(TestDatabase::new(backend)));
    let mut body = with_npi("1760485387");
    body["name"] = json!([{"family": "Nobody"}]);
    let p = created(&app, &body);
    assert_eq!(p["name"][0]["family"], "Nobody");
    let alerts = open_alerts(&app, "npi-not-found");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["npi"], "1760485387");
    assert_eq!(
        alerts[0]["subject"],
        format!("Practitioner/{}", p["id"].as_str().unwrap())
    );
    assert!(alerts[0]["firstSeen"].as_str().is_some());
}

/// NPPES down for an hour while providers keep writing, shortened: every write is stored at
/// once (waiting at most the configured timeout), its enrichment is a job, the job retries
/// while NPPES fails, and enriches each provider once NPPES is back.
fn when_nppes_is_down_the_write_is_stored_and_enriched_once_nppes_is_back(backend: Backend) {
    let fake = FakeNppes::start();
    jane(&fake);
    fake.down();
    let setup = Setup::new(&fake, "");
    let app = setup.serve(Arc::new(TestDatabase::new(backend)));
    let mut body = with_npi(JANE);
    body["active"] = json!(true);
    let p = created(&app, &body);
    let id = p["id"].as_str().unwrap().to_string();
    assert!(!is_enriched(&p), "stored as written while NPPES is down");
    let path = format!("Practitioner/{id}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!is_enriched(&app.read(&path)), "nothing to enrich from yet");
    fake.up();
    let enriched = eventually(40, "the enrichment job", || Some(app.read(&path)).filter(is_enriched));
    assert_eq!(enriched["meta"]["versionId"], "2", "one new version: the enrichment");
    assert_eq!(enriched["active"], true);
    assert_eq!(search(&app, &format!("PractitionerRole?practitioner={path}")).len(), 1);
}

fn a_429_queues_the_enrichment_and_the_job_honours_retry_after(backend: Backend) {
    let fake = FakeNppes::start();
    jane(&fake);
    let setup = Setup::new(&fake, "");
    let app = setup.serve(Arc::new(TestDatabase::new(backend)));
    // Retry-After longer than the write's timeout: the write cannot wait for it.
    let limited = Fault::RateLimited { retry_after_secs: 3 };
    fake.set_fault(Some(limited.clone()));
    let p = created(&app, &with_npi(JANE));
    assert!(!is_enriched(&p));
    std::thread::sleep(Duration::from_secs(1));
    fake.set_fault(None);
    let path = format!("Practitioner/{}", p["id"].as_str().unwrap());
    eventually(30, "enrichment after the 429", || {
        Some(app.read(&path)).filter(is_enriched)
    });
    // Whoever got the 429 (the write, the job or a health check), nothing asked NPPES again
    // before Retry-After had passed.
    let requests = fake.requests();
    let first_429 = requests
        .iter()
        .find(|r| r.fault.as_ref() == Some(&limited))
        .expect("a 429 was served")
        .at;
    let next_answered = requests
        .iter()
        .find(|r| r.fault.is_none() && r.at > first_429)
        .expect("NPPES was asked again")
        .at;
    let gap = next_answered.duration_since(first_429);
    assert!(
        gap >= Duration::from_secs(3),
        "asked again after {gap:?}, before Retry-After"
    );
}

fn malformed_answers_and_connection_resets_never_fail_a_write(backend: Backend) {
    let fake = FakeNppes::start();
    jane(&fake);
    fake.add(FakeNppes::individual(HARBOR, "ANN", "HARBOR").sex("F").build());
    let setup = Setup::new(&fake, "");
    let app = setup.serve(Arc::new(TestDatabase::new(backend)));
    fake.fail_next(1, Fault::MalformedJson);
    let first = created(&app, &with_npi(JANE));
    fake.set_fault(Some(Fault::Reset));
    let second = created(&app, &with_npi(HARBOR));
    fake.set_fault(Some(Fault::Html200));
    let mut third_body = with_npi("1760485387");
    third_body["name"] = json!([{"family": "Third"}]);
    let third = app.post("Practitioner", &third_body);
    assert_eq!(third.status(), StatusCode::CREATED);
    fake.set_fault(None);
    for (p, family) in [(&first, "DOE"), (&second, "HARBOR")] {
        let path = format!("Practitioner/{}", p["id"].as_str().unwrap());
        eventually(40, "enrichment after faults", || {
            Some(app.read(&path)).filter(|r| r["name"][0]["family"] == family)
        });
    }
    let log = app.log();
    assert!(!log.contains("panicked"), "{log}");
    // Each job logs in its own span, not nested in the previous job's.
    assert!(!log.lines().any(|l| l.matches("job{").count() > 1), "{log}");
}

fn revalidate(setup: &Setup, db: &TestDatabase) -> std::process::Output {
    providercard(&db.url)
        .args([
            "--config",
            &setup.path(),
            "jobs",
            "run",
            "nppes-revalidation",
            "--timeout-secs",
            "60",
        ])
        .output()
        .unwrap()
}

fn weekly_revalidation_withdraws_a_deactivated_npi_and_reinstates_it(backend: Backend) {
    let fake = FakeNppes::start();
    jane(&fake);
    let setup = Setup::new(&fake, "");
    let db = Arc::new(TestDatabase::new(backend));
    let app = setup.serve(db.clone());
    let p = created(&app, &with_npi(JANE));
    let path = format!("Practitioner/{}", p["id"].as_str().unwrap());
    let by_npi = format!("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|{JANE}");
    assert_eq!(search(&app, &by_npi).len(), 1);

    fake.deactivate(JANE);
    let out = revalidate(&setup, &db);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let withdrawn = app.read(&path);
    assert_eq!(withdrawn["active"], false);
    assert!(withdrawn["meta"]["tag"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["code"] == "withdrawn"));
    assert!(withdrawn["meta"]
        .get("profile")
        .is_none_or(|p| !p.to_string().contains("plan-net")));
    assert!(search(&app, &by_npi).is_empty(), "default searches leave it out");
    assert!(
        app.get(&format!("{path}/_history/1")).status().is_success(),
        "history kept"
    );
    let alerts = open_alerts(&app, "npi-deactivated");
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0]["message"].as_str().unwrap().contains("deactivated"));

    // Run again while still deactivated: nothing new.
    let version = withdrawn["meta"]["versionId"].clone();
    assert!(revalidate(&setup, &db).status.success());
    assert_eq!(app.read(&path)["meta"]["versionId"], version);

    fake.reactivate(JANE);
    assert!(revalidate(&setup, &db).status.success());
    let back = app.read(&path);
    assert_eq!(back["active"], true);
    assert!(back["meta"]
        .get("tag")
        .is_none_or(|t| !t.to_string().contains("withdrawn")));
    assert_eq!(search(&app, &by_npi).len(), 1);
    assert!(open_alerts(&app, "npi-deactivated").is_empty(), "resolved");
}

fn health_alerts_and_metrics_follow_nppes_going_down_and_coming_back(backend: Backend) {
    let fake = FakeNppes::start();
    let setup = Setup::new(&fake, "");
    let app = setup.serve(Arc::new(TestDatabase::new(backend)));
    let health = || -> Value { app.get("api/v1/integrations/health").json().unwrap() };
    let healthy = eventually(20, "a first health check", || {
        Some(health()).filter(|h| h["integrations"]["nppes"]["lastCheck"].is_string())
    });
    assert_eq!(healthy["status"], "healthy");
    let nppes = &healthy["integrations"]["nppes"];
    assert_eq!(nppes["name"], "nppes");
    assert_eq!(nppes["status"], "healthy");
    assert_eq!(nppes["availability"], 100.0);
    assert!(nppes["responseTime"].is_u64());
    assert!(healthy["timestamp"].is_string());

    fake.down();
    let down = eventually(20, "nppes reported down", || {
        Some(health()).filter(|h| h["integrations"]["nppes"]["status"] == "down")
    });
    assert_eq!(down["status"], "down");
    assert!(down["integrations"]["nppes"]["availability"].as_f64().unwrap() < 100.0);
    assert!(down["integrations"]["nppes"]["lastError"].is_string());
    let alert = eventually(20, "the integration-down alert", || {
        open_alerts(&app, "integration-down").into_iter().next()
    });
    assert_eq!(alert["subject"], "nppes");
    assert_eq!(alert["severity"], "critical");

    fake.up();
    eventually(30, "the alert resolved", || {
        open_alerts(&app, "integration-down").is_empty().then_some(())
    });
    let metrics = app.get("metrics").text().unwrap();
    assert!(
        metrics.contains("providercard_integration_request_duration_seconds_bucket{integration=\"nppes\""),
        "{metrics}"
    );
    assert!(metrics.contains("providercard_integration_requests_total{integration=\"nppes\""));
}

#[test]
fn a_worker_killed_mid_job_leaves_the_job_to_another_process_which_does_it_once() {
    let fake = FakeNppes::start();
    jane(&fake);
    fake.down();
    let setup = Setup::new(&fake, "");
    let db = Arc::new(TestDatabase::new(Backend::Sqlite));
    let mut first = setup.serve(db.clone());
    let p = created(&first, &with_npi(JANE));
    let path = format!("Practitioner/{}", p["id"].as_str().unwrap());
    // NPPES comes back slow: the worker's lookup hangs, and the process dies under it.
    fake.set_fault(Some(Fault::Slow(Duration::from_secs(20))));
    fake.up();
    let asked = lookups_of(&fake, JANE);
    eventually(30, "the worker to call NPPES", || {
        (lookups_of(&fake, JANE) > asked).then_some(())
    });
    first.kill();
    fake.set_fault(None);
    let second = setup.serve(db);
    let enriched = eventually(40, "another process to take the job over", || {
        Some(second.read(&path)).filter(is_enriched)
    });
    assert_eq!(enriched["meta"]["versionId"], "2", "done exactly once");
    let roles = search(&second, &format!("PractitionerRole?practitioner={path}"));
    assert_eq!(roles.len(), 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(second.read(&path)["meta"]["versionId"], "2");
}

#[test]
fn two_processes_on_one_postgresql_share_the_jobs_and_do_none_twice() {
    let fake = FakeNppes::start();
    let npis: Vec<String> = (0..12).map(|i| fake_npi(i)).collect();
    for (i, npi) in npis.iter().enumerate() {
        fake.add(FakeNppes::individual(npi, "PAT", &format!("DOC{i}")).sex("M").build());
    }
    fake.down();
    let setup = Setup::new(&fake, "");
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let a = setup.serve(db.clone());
    let b = setup.serve(db);
    let paths: Vec<String> = npis
        .iter()
        .enumerate()
        .map(|(i, npi)| {
            let app = if i % 2 == 0 { &a } else { &b };
            format!("Practitioner/{}", created(app, &with_npi(npi))["id"].as_str().unwrap())
        })
        .collect();
    fake.up();
    for path in &paths {
        let p = eventually(60, "every enrichment", || {
            Some(a.read(path)).filter(|p| p["name"][0]["family"].as_str().is_some_and(|f| f.starts_with("DOC")))
        });
        assert_eq!(p["meta"]["versionId"], "2", "{path} enriched once");
    }
    let jobs = providercard(&a.db.url)
        .args(["--config", &setup.path(), "jobs", "list", "--kind", "nppes-enrich"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&jobs.stdout);
    let rows: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), npis.len(), "one job per write");
    assert!(rows.iter().all(|r| r["state"] == "done"), "{listed}");
}

/// A valid NPI (check digit computed) from a running number.
fn fake_npi(n: usize) -> String {
    crate::fake_nppes::npi_from(&format!("{:09}", 170000000 + n))
}

#[test]
fn alerts_reach_the_webhook_sink_signed_with_its_secret() {
    let received = Arc::new(Mutex::new(Vec::<(String, String, String)>::new()));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut signature, mut key) = (0usize, String::new(), String::new());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-providercard-signature:") {
                    signature = line.split_once(':').unwrap().1.trim().to_string();
                }
                if lower.starts_with("idempotency-key:") {
                    key = line.split_once(':').unwrap().1.trim().to_string();
                }
                line.clear();
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            sink.lock()
                .unwrap()
                .push((signature, key, String::from_utf8(body).unwrap()));
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let fake = FakeNppes::start();
    let setup = Setup::new(
        &fake,
        &format!("  sinks:\n    webhook:\n      url: {url}\n      secret: whsec-test-1\n"),
    );
    let app = setup.serve(Arc::new(TestDatabase::new(Backend::Sqlite)));
    created(&app, &with_npi("1760485387"));
    let (signature, key, body) = eventually(20, "the webhook delivery", || {
        received
            .lock()
            .unwrap()
            .iter()
            .find(|(_, _, b)| b.contains("npi-not-found"))
            .cloned()
    });
    let delivered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(delivered["event"], "fired");
    assert_eq!(key, format!("alert/{}-fired-webhook", delivered["alert"]["id"]));
    assert_eq!(delivered["alert"]["npi"], "1760485387");
    assert_eq!(
        signature,
        ::providercard::ops::alerts::sign("whsec-test-1", body.as_bytes())
    );
    assert!(!app.log().contains("whsec-test-1"), "the secret never reaches the log");
}

#[test]
fn taxonomy_codes_translate_both_ways() {
    let app = TestApp::spawn(Backend::Sqlite);
    let fnp: Value = app.get("api/v1/taxonomy/363LF0000X").json().unwrap();
    assert_eq!(fnp["code"], "363LF0000X");
    assert_eq!(fnp["classification"], "Nurse Practitioner");
    assert_eq!(fnp["specialization"], "Family");
    assert_eq!(fnp["display"], "Family Nurse Practitioner");
    let found: Value = app
        .get("api/v1/taxonomy?text=family%20nurse%20practitioner")
        .json()
        .unwrap();
    assert_eq!(found["codes"][0]["code"], "363LF0000X");
    assert_eq!(found["version"], "25.1");
    let unknown = app.get("api/v1/taxonomy/000000000X");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_outcome(&unknown.json().unwrap(), "error", "not-found", None);
    let empty = app.get("api/v1/taxonomy?text=");
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn a_sync_checks_one_provider_now() {
    let fake = FakeNppes::start();
    jane(&fake);
    let setup = Setup::new(&fake, "");
    let app = setup.serve(Arc::new(TestDatabase::new(Backend::Sqlite)));
    let p = created(&app, &with_npi(JANE));
    let path = format!("Practitioner/{}", p["id"].as_str().unwrap());
    let sync = |path: &str| {
        app.request(
            reqwest::Method::POST,
            &format!("api/v1/integrations/nppes/sync?provider={path}"),
        )
        .send()
        .unwrap()
    };
    let response = sync(&path);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().unwrap()["result"]["outcome"], "unchanged");
    // CMS deactivates the NPI: a sync sees it at once, without waiting for the weekly job.
    fake.deactivate(JANE);
    let body: Value = sync(&path).json().unwrap();
    assert_eq!(body["result"]["outcome"], "withdrawn");
    assert_eq!(app.read(&path)["active"], false);
    assert_eq!(sync("Practitioner/nope").status(), StatusCode::NOT_FOUND);
    assert_eq!(sync("Location/x").status(), StatusCode::BAD_REQUEST);
    let unknown = app
        .request(
            reqwest::Method::POST,
            &format!("api/v1/integrations/caqh/sync?provider={path}"),
        )
        .send()
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[test]
fn the_npi_registry_can_be_searched_through_the_server_within_its_rules() {
    let fake = FakeNppes::start();
    jane(&fake);
    fake.add(FakeNppes::individual(HARBOR, "ANN", "DOERING").sex("F").build());
    let setup = Setup::new(&fake, "");
    let app = setup.serve(Arc::new(TestDatabase::new(Backend::Sqlite)));
    let found: Value = app.get("api/v1/nppes/search?last_name=DOE&state=GA").json().unwrap();
    assert_eq!(found["resultCount"], 1);
    assert_eq!(found["results"][0]["number"], JANE);
    let wildcard: Value = app.get("api/v1/nppes/search?last_name=DOE*").json().unwrap();
    assert_eq!(wildcard["resultCount"], 2);
    // What the registry refuses is refused here, naming the parameter, without a request.
    let asked = fake.request_count();
    let alone = app.get("api/v1/nppes/search?state=GA");
    assert_eq!(alone.status(), StatusCode::BAD_REQUEST);
    assert_outcome(&alone.json().unwrap(), "error", "invalid", Some("state"));
    assert!(fake.request_count() <= asked + 1, "at most a health check went out");
    fake.down();
    let down = app.get("api/v1/nppes/search?last_name=DOE");
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.headers().contains_key("retry-after"));
    assert_outcome(&down.json().unwrap(), "error", "transient", None);
}
