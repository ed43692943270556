//! 6. Bad input changes nothing: each malformed request answers the right 4xx with an
//! OperationOutcome (severity, code, diagnostics, and the element path in `expression`), and
//! the stored resource and its history read back unchanged.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::on_both_stores;

on_both_stores!(
    malformed_json_is_400,
    malformed_xml_is_400,
    an_unknown_element_is_400_at_its_path,
    a_wrong_datatype_is_400_at_its_path,
    a_wrong_resource_type_is_400,
    an_id_differing_from_the_url_is_400,
    a_missing_id_on_update_is_400,
    an_invalid_id_is_400,
    an_unsupported_type_is_404,
);

/// A stored Practitioner at version 2, and a check that it is still exactly that.
struct Stored {
    path: String,
    id: String,
    body: Value,
}

impl Stored {
    fn new(app: &TestApp) -> Stored {
        let id = new_id();
        let path = format!("Practitioner/{id}");
        app.put(&path, &with_id(practitioner("First"), &id));
        let body = app.put(&path, &with_id(practitioner("Second"), &id)).json().unwrap();
        Stored { path, id, body }
    }

    fn assert_unchanged(&self, app: &TestApp) {
        assert_eq!(app.read(&self.path), self.body, "the stored resource is unchanged");
        assert_eq!(
            app.read(&format!("{}/_history", self.path))["total"],
            2,
            "its history is unchanged"
        );
    }
}

fn put_raw(app: &TestApp, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let response = app
        .request(Method::PUT, path)
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("an OperationOutcome in JSON, got {text}")),
    )
}

fn malformed_json_is_400(app: &TestApp) {
    let stored = Stored::new(app);
    let (status, outcome) = put_raw(
        app,
        &stored.path,
        "application/fhir+json",
        r#"{"resourceType": "Practitioner", "id": "#,
    );
    assert_eq!(status, 400);
    assert_outcome(&outcome, "error", "structure", Some("Resource"));
    stored.assert_unchanged(app);
}

fn malformed_xml_is_400(app: &TestApp) {
    let stored = Stored::new(app);
    let body = format!(
        r#"<Practitioner xmlns="http://hl7.org/fhir"><id value="{}"/><active value="true"></Practitioner>"#,
        stored.id
    );
    let (status, outcome) = put_raw(app, &stored.path, "application/fhir+xml", &body);
    assert_eq!(status, 400);
    assert_outcome(&outcome, "error", "structure", Some("Resource"));
    stored.assert_unchanged(app);
}

fn an_unknown_element_is_400_at_its_path(app: &TestApp) {
    let stored = Stored::new(app);
    let mut body = with_id(practitioner("Changed"), &stored.id);
    body["name"][0]["nickname"] = json!("Annie");
    let response = app.put(&stored.path, &body);
    assert_eq!(response.status(), 400);
    assert_outcome(
        &response.json().unwrap(),
        "error",
        "structure",
        Some("Practitioner.name[0].nickname"),
    );
    stored.assert_unchanged(app);
}

fn a_wrong_datatype_is_400_at_its_path(app: &TestApp) {
    let stored = Stored::new(app);
    let mut body = with_id(practitioner("Changed"), &stored.id);
    body["active"] = json!("yes");
    let response = app.put(&stored.path, &body);
    assert_eq!(response.status(), 400);
    assert_outcome(
        &response.json().unwrap(),
        "error",
        "structure",
        Some("Practitioner.active"),
    );
    let mut body = with_id(practitioner("Changed"), &stored.id);
    body["birthDate"] = json!("31/12/1970");
    let response = app.put(&stored.path, &body);
    assert_eq!(response.status(), 400);
    assert_outcome(
        &response.json().unwrap(),
        "error",
        "structure",
        Some("Practitioner.birthDate"),
    );
    stored.assert_unchanged(app);
}

fn a_wrong_resource_type_is_400(app: &TestApp) {
    let stored = Stored::new(app);
    let body = json!({"resourceType": "Organization", "id": stored.id, "name": "Not a person"});
    let response = app.put(&stored.path, &body);
    assert_eq!(response.status(), 400);
    assert_outcome(
        &response.json().unwrap(),
        "error",
        "invalid",
        Some("Practitioner.resourceType"),
    );
    stored.assert_unchanged(app);
}

fn an_id_differing_from_the_url_is_400(app: &TestApp) {
    let stored = Stored::new(app);
    let response = app.put(&stored.path, &with_id(practitioner("Changed"), "someone-else"));
    assert_eq!(response.status(), 400);
    assert_outcome(&response.json().unwrap(), "error", "invalid", Some("Practitioner.id"));
    stored.assert_unchanged(app);
}

fn a_missing_id_on_update_is_400(app: &TestApp) {
    let stored = Stored::new(app);
    let response = app.put(&stored.path, &practitioner("Changed"));
    assert_eq!(response.status(), 400);
    assert_outcome(&response.json().unwrap(), "error", "required", Some("Practitioner.id"));
    stored.assert_unchanged(app);
}

fn an_invalid_id_is_400(app: &TestApp) {
    let id = "has_underscore";
    let response = app.put(&format!("Practitioner/{id}"), &with_id(practitioner("X"), id));
    assert_eq!(response.status(), 400);
    assert_outcome(&response.json().unwrap(), "error", "invalid", Some("id"));
    assert_eq!(app.get(&format!("Practitioner/{id}")).status(), 404);
}

fn an_unsupported_type_is_404(app: &TestApp) {
    let response = app.put("Patient/p1", &json!({"resourceType": "Patient", "id": "p1"}));
    assert_eq!(response.status(), 404);
    assert_outcome(&response.json().unwrap(), "error", "not-supported", None);
}

#[test]
fn a_body_over_the_size_limit_is_413_and_changes_nothing() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--max-body-bytes", "2000"]);
    let stored = Stored::new(&app);
    let mut body = with_id(practitioner("Changed"), &stored.id);
    body["name"][0]["text"] = json!("x".repeat(5000));
    let response = app.put(&stored.path, &body);
    assert_eq!(response.status(), 413);
    assert_outcome(&response.json().unwrap(), "error", "too-costly", None);
    stored.assert_unchanged(&app);
}
