//! 2 and 3. The eight Plan-Net resource types and the REST interactions: read, vread, create,
//! update (create-on-update), conditional create and update, delete (410 afterwards, history
//! kept), instance and type history, and /metadata.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::on_both_stores;

on_both_stores!(
    every_plan_net_type_can_be_created_and_read,
    other_types_are_not_supported_here,
    create_assigns_the_id,
    update_creates_with_the_clients_id,
    vread_returns_each_version,
    conditional_create_matches_by_identifier,
    conditional_update_finds_its_target_by_identifier,
    delete_leaves_410_and_history,
    instance_and_type_history_list_every_version,
    history_pages_with_a_cursor,
    metadata_describes_what_the_server_supports,
);

fn minimal(resource_type: &str) -> Value {
    match resource_type {
        "Practitioner" => practitioner("Smith"),
        "PractitionerRole" => json!({"resourceType": "PractitionerRole", "active": true}),
        "Organization" => {
            json!({"resourceType": "Organization", "active": true, "name": "Acme Clinic"})
        }
        "OrganizationAffiliation" => {
            json!({"resourceType": "OrganizationAffiliation", "active": true})
        }
        "Location" => {
            json!({"resourceType": "Location", "status": "active", "name": "Main St Office"})
        }
        "HealthcareService" => {
            json!({"resourceType": "HealthcareService", "active": true, "name": "Cardiology"})
        }
        "Endpoint" => json!({
            "resourceType": "Endpoint", "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
            "payloadType": [{"text": "any"}], "address": "https://example.org/fhir"
        }),
        "InsurancePlan" => {
            json!({"resourceType": "InsurancePlan", "status": "active", "name": "Acme Gold"})
        }
        other => panic!("no fixture for {other}"),
    }
}

const TYPES: [&str; 8] = [
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "OrganizationAffiliation",
    "Location",
    "HealthcareService",
    "Endpoint",
    "InsurancePlan",
];

fn every_plan_net_type_can_be_created_and_read(app: &TestApp) {
    for resource_type in TYPES {
        let created = app.post(resource_type, &minimal(resource_type));
        assert_eq!(created.status(), 201, "{resource_type}");
        let body: Value = created.json().unwrap();
        let read = app.read(&format!("{resource_type}/{}", body["id"].as_str().unwrap()));
        assert_eq!(read, body, "{resource_type} reads back as created");
    }
}

fn other_types_are_not_supported_here(app: &TestApp) {
    for (method, path) in [
        (Method::GET, "Patient/1"),
        (Method::GET, "Observation"),
        (Method::POST, "Patient"),
    ] {
        let response = app
            .request(method, path)
            .header("Content-Type", "application/fhir+json")
            .body("{}")
            .send()
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let outcome: Value = response.json().unwrap();
        assert_outcome(&outcome, "error", "not-supported", None);
        assert!(outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("not supported here"));
    }
}

fn create_assigns_the_id(app: &TestApp) {
    let response = app.post("Practitioner", &with_id(practitioner("Smith"), "client-chosen"));
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().unwrap();
    let id = body["id"].as_str().unwrap();
    assert_ne!(id, "client-chosen", "the server assigns ids on create");
    assert_eq!(location, app.url(&format!("Practitioner/{id}/_history/1")));
    assert_eq!(version_of(&body), "1");
    assert!(body["meta"]["lastUpdated"].as_str().unwrap().ends_with('Z'));
}

fn update_creates_with_the_clients_id(app: &TestApp) {
    let id = new_id();
    let created = app.put(&format!("Practitioner/{id}"), &with_id(practitioner("Smith"), &id));
    assert_eq!(created.status(), 201, "update-as-create");
    let updated = app.put(&format!("Practitioner/{id}"), &with_id(practitioner("Jones"), &id));
    assert_eq!(updated.status(), 200);
    let body: Value = updated.json().unwrap();
    assert_eq!(version_of(&body), "2");
    assert_eq!(app.read(&format!("Practitioner/{id}"))["name"][0]["family"], "Jones");
}

fn vread_returns_each_version(app: &TestApp) {
    let id = new_id();
    app.put(&format!("Practitioner/{id}"), &with_id(practitioner("One"), &id));
    app.put(&format!("Practitioner/{id}"), &with_id(practitioner("Two"), &id));
    assert_eq!(
        app.read(&format!("Practitioner/{id}/_history/1"))["name"][0]["family"],
        "One"
    );
    assert_eq!(
        app.read(&format!("Practitioner/{id}/_history/2"))["name"][0]["family"],
        "Two"
    );
    assert_eq!(app.get(&format!("Practitioner/{id}/_history/3")).status(), 404);
    assert_eq!(app.get(&format!("Practitioner/{id}/_history/x")).status(), 404);
}

fn conditional_create_matches_by_identifier(app: &TestApp) {
    let npi = "1234567893";
    let search = format!("identifier=http://hl7.org/fhir/sid/us-npi|{npi}");
    let create = || {
        app.fhir_json(Method::POST, "Practitioner", &practitioner_with_npi("Smith", npi))
            .header("If-None-Exist", search.clone())
            .send()
            .unwrap()
    };
    let first = create();
    assert_eq!(first.status(), 201, "no match: created");
    let first: Value = first.json().unwrap();
    let second = create();
    assert_eq!(second.status(), 200, "one match: the existing resource");
    let second: Value = second.json().unwrap();
    assert_eq!(second["id"], first["id"]);
    assert_eq!(version_of(&second), "1", "nothing was written");
    // A second resource with the same NPI makes the condition ambiguous.
    app.post("Practitioner", &practitioner_with_npi("Twin", npi));
    let third = create();
    assert_eq!(third.status(), 412, "several matches: precondition failed");
    assert_outcome(&third.json().unwrap(), "error", "conflict", None);
}

fn conditional_update_finds_its_target_by_identifier(app: &TestApp) {
    let npi = "1497758544";
    let url = format!("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|{npi}");
    let created = app.put(&url, &practitioner_with_npi("Smith", npi));
    assert_eq!(created.status(), 201, "no match: created");
    let id = created.json::<Value>().unwrap()["id"].as_str().unwrap().to_string();
    let updated = app.put(&url, &practitioner_with_npi("Smith-Jones", npi));
    assert_eq!(updated.status(), 200, "one match: updated");
    let updated: Value = updated.json().unwrap();
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(version_of(&updated), "2");
    app.post("Practitioner", &practitioner_with_npi("Twin", npi));
    assert_eq!(
        app.put(&url, &practitioner_with_npi("X", npi)).status(),
        412,
        "several matches"
    );
    let unknown = app.put("Practitioner?nonsense=1", &practitioner("X"));
    assert_eq!(
        unknown.status(),
        400,
        "a criterion the server cannot apply is refused, never ignored"
    );
}

fn delete_leaves_410_and_history(app: &TestApp) {
    let id = new_id();
    let path = format!("Location/{id}");
    app.put(
        &path,
        &json!({"resourceType": "Location", "id": id, "name": "Old Office"}),
    );
    let deleted = app.delete(&path);
    assert_eq!(deleted.status(), 200);
    let gone = app.get(&path);
    assert_eq!(gone.status(), 410);
    assert_outcome(&gone.json().unwrap(), "error", "deleted", None);
    let history: Value = app.read(&format!("{path}/_history"));
    assert_eq!(history["total"], 2, "the creation and the deletion");
    assert_eq!(history["entry"][0]["request"]["method"], "DELETE");
    assert_eq!(
        app.read(&format!("{path}/_history/1"))["name"],
        "Old Office",
        "old versions stay readable"
    );
    assert_eq!(app.get(&format!("{path}/_history/2")).status(), 410);
    assert_eq!(app.delete(&path).status(), 200, "deleting again is harmless");
    assert_eq!(app.read(&format!("{path}/_history"))["total"], 2, "and writes nothing");
    assert_eq!(app.delete("Location/never-was").status(), 404);
    // Writing again brings it back as a new version.
    let back = app.put(
        &path,
        &json!({"resourceType": "Location", "id": id, "name": "New Office"}),
    );
    assert_eq!(back.status(), 201);
    assert_eq!(version_of(&back.json().unwrap()), "3");
}

fn instance_and_type_history_list_every_version(app: &TestApp) {
    let id = new_id();
    for family in ["A", "B", "C"] {
        app.put(&format!("Practitioner/{id}"), &with_id(practitioner(family), &id));
    }
    let history = app.read(&format!("Practitioner/{id}/_history"));
    assert_eq!(history["type"], "history");
    let families: Vec<&str> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["name"][0]["family"].as_str().unwrap())
        .collect();
    assert_eq!(families, ["C", "B", "A"], "newest first");
    assert_eq!(history["entry"][2]["response"]["etag"], "W/\"1\"");
    app.post("Organization", &minimal("Organization"));
    let type_history = app.read("Practitioner/_history");
    assert_eq!(type_history["total"], 3, "only Practitioner versions");
    assert_eq!(app.get("Practitioner/nobody/_history").status(), 404);
    let since = app.get("Practitioner/_history?_since=not-a-date");
    assert_eq!(since.status(), 400);
    assert_outcome(&since.json().unwrap(), "error", "invalid", Some("_since"));
}

fn history_pages_with_a_cursor(app: &TestApp) {
    let id = new_id();
    for n in 0..5 {
        app.put(&format!("Endpoint/{id}"), &with_id(minimal("Endpoint"), &id));
        let _ = n;
    }
    let mut versions = Vec::new();
    let mut next = Some(app.url(&format!("Endpoint/{id}/_history?_count=2")));
    while let Some(url) = next {
        let page: Value = app.client.get(&url).send().unwrap().json().unwrap();
        for entry in page["entry"].as_array().unwrap() {
            versions.push(entry["response"]["etag"].as_str().unwrap().to_string());
        }
        next = next_link(&page);
        if versions.len() == 2 {
            // A write between pages must not shift what the next page holds.
            app.put(&format!("Endpoint/{id}"), &with_id(minimal("Endpoint"), &id));
        }
    }
    assert_eq!(versions, ["W/\"5\"", "W/\"4\"", "W/\"3\"", "W/\"2\"", "W/\"1\""]);
}

fn metadata_describes_what_the_server_supports(app: &TestApp) {
    let statement = app.read("metadata");
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.0.1");
    assert_eq!(statement["kind"], "instance");
    let rest = &statement["rest"][0];
    let types: Vec<&str> = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    // The eight Plan-Net types, and Provenance (the audit trail, read-only).
    assert_eq!(types.len(), 9);
    assert!(types.contains(&"Provenance"));
    for t in TYPES {
        assert!(types.contains(&t), "{t}");
    }
    let system: Vec<&str> = rest["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(system, ["transaction", "batch"]);
    // Every interaction it claims answers; one it does not claim (conditional delete) is refused.
    assert_eq!(rest["resource"][0]["conditionalDelete"], "not-supported");
    assert_eq!(app.delete("Practitioner?identifier=x").status(), 405);
}
