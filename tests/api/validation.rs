//! Issue 5: profile validation. A write that breaks a Plan-Net rule is refused with 422 and
//! every issue's path; `$validate` says the same without storing anything; what the server
//! stores and serves claims the Plan-Net profile it conforms to. The invalid corpus in
//! conformance/invalid is rejected file by file, and every IG example accepted.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::on_both_stores;

on_both_stores!(
    a_write_breaking_its_claimed_profile_is_422_and_changes_nothing,
    inactive_resources_cannot_claim_plan_net,
    conforming_resources_are_served_with_their_plan_net_profile,
    validate_reports_every_issue_and_stores_nothing,
    a_withdrawn_record_keeps_its_history_but_leaves_the_public_view,
);

const PLAN_NET: &str = "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/";

fn example(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(profiles_dir().join("plan-net/example").join(name)).unwrap()).unwrap()
}

fn a_write_breaking_its_claimed_profile_is_422_and_changes_nothing(app: &TestApp) {
    let role = example("PractitionerRole-HansSoloRole1.json");
    assert_eq!(app.put("PractitionerRole/HansSoloRole1", &role).status(), 201);
    let before = app.read("PractitionerRole/HansSoloRole1");
    let mut broken = role.clone();
    broken.as_object_mut().unwrap().remove("telecom");
    broken.as_object_mut().unwrap().remove("endpoint");
    broken["specialty"] = json!([{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "NOT-A-CODE"}]}]);
    let response = app.put("PractitionerRole/HansSoloRole1", &broken);
    assert_eq!(response.status(), 422);
    let outcome: Value = response.json().unwrap();
    assert_outcome(&outcome, "error", "invariant", Some("PractitionerRole"));
    assert!(outcome.to_string().contains("pd-1"), "{outcome:#}");
    assert_outcome(&outcome, "error", "code-invalid", Some("PractitionerRole.specialty[0]"));
    assert_eq!(app.read("PractitionerRole/HansSoloRole1"), before, "nothing changed");
}

fn inactive_resources_cannot_claim_plan_net(app: &TestApp) {
    let mut practitioner = example("Practitioner-HansSolo.json");
    practitioner["active"] = json!(false);
    let response = app.put("Practitioner/HansSolo", &practitioner);
    assert_eq!(response.status(), 422, "Plan-Net fixes active = true");
    assert_outcome(&response.json().unwrap(), "error", "value", Some("Practitioner.active"));
    assert_eq!(app.get("Practitioner/HansSolo").status(), 404);
}

fn conforming_resources_are_served_with_their_plan_net_profile(app: &TestApp) {
    let mut network = example("Organization-AcmeofCTStdNet.json");
    network["meta"].as_object_mut().unwrap().remove("profile");
    app.put("Organization/AcmeofCTStdNet", &network);
    let served = app.read("Organization/AcmeofCTStdNet");
    assert_eq!(
        served["meta"]["profile"],
        json!([format!("{PLAN_NET}plannet-Network")]),
        "a network is a Network"
    );
    let mut organization = example("Organization-Acme.json");
    organization["meta"].as_object_mut().unwrap().remove("profile");
    app.put("Organization/Acme", &organization);
    assert_eq!(
        app.read("Organization/Acme")["meta"]["profile"],
        json!([format!("{PLAN_NET}plannet-Organization")])
    );
    // Not conforming, not claiming: stored, but it does not claim what it is not.
    let bare = app
        .post(
            "PractitionerRole",
            &json!({"resourceType": "PractitionerRole", "active": true}),
        )
        .json::<Value>()
        .unwrap();
    assert!(bare["meta"].get("profile").is_none(), "{bare:#}");
}

fn validate_reports_every_issue_and_stores_nothing(app: &TestApp) {
    let validate = |path: &str, body: &Value| -> Value {
        let response = app.fhir_json(Method::POST, path, body).send().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().unwrap()
    };
    let good = validate("Practitioner/$validate", &example("Practitioner-HansSolo.json"));
    assert_outcome(&good, "information", "informational", None);
    let mut bad = example("Practitioner-HansSolo.json");
    bad["identifier"][0]["value"] = json!("1234567890");
    let outcome = validate("Practitioner/$validate", &bad);
    assert!(
        outcome.to_string().contains("us-core-17"),
        "NPI check digit: {outcome:#}"
    );
    let mut gender = example("Practitioner-HansSolo.json");
    gender["gender"] = json!("M");
    // A code outside a required enumeration is already a structure error.
    assert_outcome(
        &validate("Practitioner/$validate", &gender),
        "error",
        "structure",
        Some("Practitioner.gender"),
    );
    assert_eq!(
        app.get("Practitioner/HansSolo").status(),
        404,
        "$validate stores nothing"
    );
    // A profile named in the request is checked even when the resource claims none.
    let mut unclaimed = json!({"resourceType": "PractitionerRole", "active": true});
    let plain = validate("PractitionerRole/$validate", &unclaimed);
    assert_outcome(&plain, "information", "informational", None);
    let profiled = validate(
        &format!("PractitionerRole/$validate?profile={PLAN_NET}plannet-PractitionerRole"),
        &unclaimed,
    );
    assert_outcome(&profiled, "error", "invariant", Some("PractitionerRole"));
    // Parameters form, mode=update with an id that differs from the URL.
    unclaimed["id"] = json!("other");
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": unclaimed}, {"name": "mode", "valueCode": "update"}]});
    let update = validate("PractitionerRole/mine/$validate", &parameters);
    assert_outcome(&update, "error", "invalid", Some("PractitionerRole.id"));
    let delete = validate(
        "PractitionerRole/nobody/$validate?mode=delete",
        &json!({"resourceType": "Parameters"}),
    );
    assert_outcome(&delete, "error", "not-found", None);
    let structure = validate(
        "Practitioner/$validate",
        &json!({"resourceType": "Practitioner", "nickname": "x"}),
    );
    assert_outcome(&structure, "error", "structure", Some("Practitioner.nickname"));
}

#[test]
fn every_file_of_the_invalid_corpus_is_rejected_and_every_example_accepted() {
    let app = TestApp::spawn(Backend::Sqlite);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/invalid");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus has {} files", files.len());
    let mut missed = Vec::new();
    for file in &files {
        let body = std::fs::read(file).unwrap();
        // The type comes from the file name's rule subject when the JSON cannot say.
        let resource_type = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["resourceType"].as_str().map(str::to_string))
            .filter(|t| providercard::fhir::types::is_supported(t))
            .unwrap_or_else(|| "Practitioner".into());
        let response = app
            .request(Method::POST, &format!("{resource_type}/$validate"))
            .header("Content-Type", "application/fhir+json")
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let outcome: Value = response.json().unwrap();
        let rejected = outcome["issue"]
            .as_array()
            .is_some_and(|issues| issues.iter().any(|i| i["severity"] == "error"));
        if !rejected || status >= 500 {
            missed.push(file.file_name().unwrap().to_string_lossy().to_string());
        }
    }
    assert!(missed.is_empty(), "accepted broken files: {missed:?}");
    for entry in std::fs::read_dir(profiles_dir().join("plan-net/example")).unwrap() {
        let example: Value = serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let t = example["resourceType"].as_str().unwrap().to_string();
        let outcome: Value = app
            .fhir_json(Method::POST, &format!("{t}/$validate"), &example)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_outcome(&outcome, "information", "informational", None);
    }
}

fn a_withdrawn_record_keeps_its_history_but_leaves_the_public_view(app: &TestApp) {
    app.put("Practitioner/HansSolo", &example("Practitioner-HansSolo.json"));
    let cli = |args: &[&str]| {
        let output = providercard(&app.db.url).args(args).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    cli(&[
        "withdraw",
        "Practitioner/HansSolo",
        "--reason",
        "NPI deactivated by NPPES",
    ]);
    let withdrawn = app.read("Practitioner/HansSolo");
    assert_eq!(withdrawn["active"], false);
    assert!(
        withdrawn["meta"].get("profile").is_none(),
        "it no longer claims Plan-Net: {withdrawn:#}"
    );
    assert_eq!(
        app.read("Practitioner/HansSolo/_history")["total"],
        2,
        "kept with its history"
    );
    assert!(
        app.read("Practitioner?name=solo").get("entry").is_none(),
        "default searches leave it out"
    );
    let tagged = app.read("Practitioner?_tag=https://providercard.dev/fhir/CodeSystem/directory-status|withdrawn");
    assert_eq!(tagged["total"], 1, "a search that asks about the tag finds it");
    cli(&["reinstate", "Practitioner/HansSolo"]);
    let back = app.read("Practitioner/HansSolo");
    assert_eq!(back["active"], true);
    assert_eq!(
        back["meta"]["profile"],
        json!([format!("{PLAN_NET}plannet-Practitioner")]),
        "it conforms again"
    );
    assert_eq!(app.read("Practitioner?name=solo")["total"], 1);
}

#[test]
fn require_plan_net_refuses_what_does_not_conform_even_unclaimed() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--require-plan-net"]);
    let response = app.post(
        "PractitionerRole",
        &json!({"resourceType": "PractitionerRole", "active": true}),
    );
    assert_eq!(response.status(), 422);
    assert!(response.text().unwrap().contains("pd-1"));
    let mut role = example("PractitionerRole-HansSoloRole1.json");
    role["meta"].as_object_mut().unwrap().remove("profile");
    assert_eq!(
        app.put("PractitionerRole/HansSoloRole1", &role).status(),
        201,
        "a conforming resource is accepted"
    );
}
