//! 4. Versioning and concurrency: every write a version with `meta.versionId`,
//! `meta.lastUpdated`, a weak ETag and `Location`/`Content-Location`; `If-Match` with a stale
//! version is 412 and changes nothing; racing writers never lose an update; `Prefer: return=`.

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;

use crate::common::*;
use crate::on_both_stores;

on_both_stores!(
    every_write_is_a_version_with_etag_and_location,
    a_stale_if_match_is_412_and_changes_nothing,
    a_current_if_match_succeeds,
    racing_writers_never_lose_an_update,
    prefer_return_is_honoured,
);

fn every_write_is_a_version_with_etag_and_location(app: &TestApp) {
    let id = new_id();
    let path = format!("Practitioner/{id}");
    for n in 1..=3 {
        let response = app.put(&path, &with_id(practitioner(&format!("V{n}")), &id));
        assert_eq!(response.headers()["etag"], format!("W/\"{n}\"").as_str());
        let expected = app.url(&format!("{path}/_history/{n}"));
        assert_eq!(response.headers()["location"], expected.as_str());
        assert_eq!(response.headers()["content-location"], expected.as_str());
        assert!(response.headers().contains_key("last-modified"));
        let body: Value = response.json().unwrap();
        assert_eq!(version_of(&body), n.to_string());
    }
    let read = app.get(&path);
    assert_eq!(read.headers()["etag"], "W/\"3\"");
}

fn a_stale_if_match_is_412_and_changes_nothing(app: &TestApp) {
    let id = new_id();
    let path = format!("Practitioner/{id}");
    app.put(&path, &with_id(practitioner("First"), &id));
    app.put(&path, &with_id(practitioner("Second"), &id));
    let stale = app
        .fhir_json(Method::PUT, &path, &with_id(practitioner("Lost"), &id))
        .header("If-Match", "W/\"1\"")
        .send()
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_outcome(&stale.json().unwrap(), "error", "conflict", None);
    let current = app.read(&path);
    assert_eq!(current["name"][0]["family"], "Second");
    assert_eq!(version_of(&current), "2");
    assert_eq!(app.read(&format!("{path}/_history"))["total"], 2);
}

fn a_current_if_match_succeeds(app: &TestApp) {
    let id = new_id();
    let path = format!("Practitioner/{id}");
    app.put(&path, &with_id(practitioner("First"), &id));
    let response = app
        .fhir_json(Method::PUT, &path, &with_id(practitioner("Second"), &id))
        .header("If-Match", "W/\"1\"")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let bad = app
        .fhir_json(Method::PUT, &path, &with_id(practitioner("X"), &id))
        .header("If-Match", "soon")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_outcome(&bad.json().unwrap(), "error", "invalid", Some("If-Match"));
}

/// Writers each update one resource many times at once; every update must become a version.
pub fn race(apps: &[&TestApp], writers_per_app: usize, writes_each: usize) {
    let id = new_id();
    let path = format!("Practitioner/{id}");
    apps[0].put(&path, &with_id(practitioner("Start"), &id));
    let threads: Vec<_> = apps
        .iter()
        .flat_map(|app| (0..writers_per_app).map(|_| (app.client.clone(), app.url(&path))))
        .enumerate()
        .map(|(writer, (client, url))| {
            let id = id.clone();
            std::thread::spawn(move || {
                for n in 0..writes_each {
                    let body = with_id(practitioner(&format!("w{writer}-{n}")), &id);
                    let response = client
                        .put(&url)
                        .header("Content-Type", "application/fhir+json")
                        .body(body.to_string())
                        .send()
                        .unwrap();
                    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let expected = 1 + apps.len() * writers_per_app * writes_each;
    let current = apps[0].read(&path);
    assert_eq!(version_of(&current), expected.to_string(), "no update was lost");
    let history = apps[0].read(&format!("{path}/_history?_count=500"));
    assert_eq!(history["total"], expected);
    let mut versions: Vec<i64> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().unwrap().parse().unwrap())
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        (1..=expected as i64).collect::<Vec<_>>(),
        "versions are 1..N without gaps or repeats"
    );
}

fn racing_writers_never_lose_an_update(app: &TestApp) {
    race(&[app], 6, 10);
}

fn prefer_return_is_honoured(app: &TestApp) {
    let with_prefer = |prefer: &str| {
        app.fhir_json(Method::POST, "Practitioner", &practitioner("Smith"))
            .header("Prefer", prefer)
            .send()
            .unwrap()
    };
    let minimal = with_prefer("return=minimal");
    assert_eq!(minimal.status(), 201);
    assert!(minimal.headers().contains_key("location"));
    assert!(minimal.text().unwrap().is_empty(), "return=minimal sends no body");
    let outcome = with_prefer("return=OperationOutcome");
    assert_eq!(outcome.status(), 201);
    assert_outcome(&outcome.json().unwrap(), "information", "informational", None);
    let representation = with_prefer("return=representation");
    assert_eq!(representation.json::<Value>().unwrap()["resourceType"], "Practitioner");
}

#[test]
fn two_processes_on_one_postgres_never_lose_an_update() {
    let first = TestApp::spawn(Backend::Postgres);
    let second = TestApp::serve(Arc::clone(&first.db), &[]);
    race(&[&first, &second], 4, 10);
}
