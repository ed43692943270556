//! 3 (continued). batch and transaction Bundles posted to the base: a transaction is
//! all-or-nothing, resolves `urn:uuid:` fullUrls and rewrites references to them, and answers
//! an entry per request; a batch runs each entry on its own.

use serde_json::{json, Value};

use crate::common::*;
use crate::on_both_stores;

on_both_stores!(
    a_transaction_creates_linked_resources_and_rewrites_references,
    a_transaction_with_one_bad_entry_changes_nothing,
    a_transaction_that_fails_in_the_database_changes_nothing,
    a_batch_reports_each_entry_on_its_own,
    only_batch_and_transaction_bundles_are_accepted,
);

fn a_transaction_creates_linked_resources_and_rewrites_references(app: &TestApp) {
    let existing = new_id();
    app.put(
        &format!("Location/{existing}"),
        &json!({"resourceType": "Location", "id": existing, "name": "Old"}),
    );
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0f6c3b4e-1a2b-4c5d-8e9f-000000000001",
                "resource": practitioner("Kenobi"),
                "request": {"method": "POST", "url": "Practitioner"}
            },
            {
                "fullUrl": "urn:uuid:0f6c3b4e-1a2b-4c5d-8e9f-000000000002",
                "resource": {
                    "resourceType": "PractitionerRole", "active": true,
                    "practitioner": {"reference": "urn:uuid:0f6c3b4e-1a2b-4c5d-8e9f-000000000001"},
                    "location": [{"reference": format!("Location/{existing}")}]
                },
                "request": {"method": "POST", "url": "PractitionerRole"}
            },
            {
                "resource": {"resourceType": "Location", "id": existing, "name": "Renamed"},
                "request": {"method": "PUT", "url": format!("Location/{existing}")}
            },
            {"request": {"method": "GET", "url": format!("Location/{existing}")}}
        ]
    });
    let response = app.post("", &bundle);
    assert_eq!(response.status(), 200);
    let result: Value = response.json().unwrap();
    assert_eq!(result["type"], "transaction-response");
    let entries = result["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "one response per entry, in order");
    assert_eq!(entries[0]["response"]["status"], "201 Created");
    assert_eq!(entries[1]["response"]["status"], "201 Created");
    assert_eq!(entries[2]["response"]["status"], "200 OK");
    assert_eq!(entries[3]["response"]["status"], "200 OK");
    assert_eq!(
        entries[3]["resource"]["name"], "Renamed",
        "reads see the transaction's writes"
    );
    let practitioner_location = entries[0]["response"]["location"].as_str().unwrap();
    let practitioner_id = practitioner_location.split('/').nth(1).unwrap();
    let role_id = entries[1]["response"]["location"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap();
    let role = app.read(&format!("PractitionerRole/{role_id}"));
    assert_eq!(
        role["practitioner"]["reference"],
        format!("Practitioner/{practitioner_id}"),
        "urn:uuid reference rewritten"
    );
    assert_eq!(
        app.read(&format!("Practitioner/{practitioner_id}"))["name"][0]["family"],
        "Kenobi"
    );
}

fn a_transaction_with_one_bad_entry_changes_nothing(app: &TestApp) {
    let id = new_id();
    app.put(
        &format!("Location/{id}"),
        &json!({"resourceType": "Location", "id": id, "name": "Kept"}),
    );
    let mut bad = practitioner("Bad");
    bad["gender"] = json!(42);
    let bundle = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Location", "id": id, "name": "Changed"}, "request": {"method": "PUT", "url": format!("Location/{id}")}},
            {"resource": practitioner("Good"), "request": {"method": "POST", "url": "Practitioner"}},
            {"resource": bad, "request": {"method": "POST", "url": "Practitioner"}}
        ]
    });
    let response = app.post("", &bundle);
    assert_eq!(response.status(), 400);
    assert_outcome(
        &response.json().unwrap(),
        "error",
        "structure",
        Some("Bundle.entry[2].resource.gender"),
    );
    assert_eq!(app.read(&format!("Location/{id}"))["name"], "Kept");
    assert_eq!(app.read(&format!("Location/{id}/_history"))["total"], 1);
    assert_eq!(app.read("Practitioner")["total"], 0, "no Practitioner was created");
}

fn a_transaction_that_fails_in_the_database_changes_nothing(app: &TestApp) {
    let id = new_id();
    app.put(
        &format!("Location/{id}"),
        &json!({"resourceType": "Location", "id": id, "name": "Kept"}),
    );
    let bundle = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"resource": practitioner("Good"), "request": {"method": "POST", "url": "Practitioner"}},
            {"resource": {"resourceType": "Location", "id": id, "name": "Changed"},
             "request": {"method": "PUT", "url": format!("Location/{id}"), "ifMatch": "W/\"7\""}}
        ]
    });
    let response = app.post("", &bundle);
    assert_eq!(
        response.status(),
        412,
        "the stale If-Match of entry 1 fails the whole transaction"
    );
    assert_eq!(app.read(&format!("Location/{id}"))["name"], "Kept");
    assert_eq!(
        app.read("Practitioner")["total"],
        0,
        "the create in the same transaction was rolled back"
    );
}

fn a_batch_reports_each_entry_on_its_own(app: &TestApp) {
    let bundle = json!({
        "resourceType": "Bundle", "type": "batch",
        "entry": [
            {"resource": practitioner("Good"), "request": {"method": "POST", "url": "Practitioner"}},
            {"resource": {"resourceType": "Practitioner", "active": "no"}, "request": {"method": "POST", "url": "Practitioner"}},
            {"request": {"method": "GET", "url": "Practitioner/nobody"}},
            {"request": {"method": "GET", "url": "Patient/1"}}
        ]
    });
    let response = app.post("", &bundle);
    assert_eq!(response.status(), 200);
    let result: Value = response.json().unwrap();
    assert_eq!(result["type"], "batch-response");
    let statuses: Vec<&str> = result["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201 Created", "400", "404", "404"]);
    assert_outcome(
        &result["entry"][1]["response"]["outcome"],
        "error",
        "structure",
        Some("Practitioner.active"),
    );
    assert_eq!(app.read("Practitioner")["total"], 1, "the good entry was kept");
}

fn only_batch_and_transaction_bundles_are_accepted(app: &TestApp) {
    let response = app.post("", &json!({"resourceType": "Bundle", "type": "collection"}));
    assert_eq!(response.status(), 400);
    assert_outcome(&response.json().unwrap(), "error", "value", Some("Bundle.type"));
    let response = app.post(
        "",
        &json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": practitioner("X")}]}),
    );
    assert_eq!(response.status(), 400);
    assert_outcome(
        &response.json().unwrap(),
        "error",
        "required",
        Some("Bundle.entry[0].request.method"),
    );
}
