//! 5. Formats: FHIR JSON and XML in and out, `_format`, `_pretty`, `Accept` negotiation,
//! 406 and 415; a resource written as XML reads back as the equal JSON.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::on_both_stores;

on_both_stores!(
    xml_written_reads_back_as_equal_json,
    accept_and_format_choose_the_response_format,
    pretty_json_is_indented,
    unacceptable_formats_are_406,
    unsupported_content_types_are_415,
);

const XML_PRACTITIONER: &str = r#"<Practitioner xmlns="http://hl7.org/fhir">
  <active value="true"/>
  <name><family value="Organa"/><given value="Leia"/></name>
  <telecom><system value="phone"/><value value="555-0100"/></telecom>
</Practitioner>"#;

fn xml_written_reads_back_as_equal_json(app: &TestApp) {
    let created = app
        .request(Method::POST, "Practitioner")
        .header("Content-Type", "application/fhir+xml")
        .header("Accept", "application/fhir+json")
        .body(XML_PRACTITIONER)
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let body: Value = created.json().unwrap();
    let mut read = app.read(&format!("Practitioner/{}", body["id"].as_str().unwrap()));
    read.as_object_mut().unwrap().remove("meta");
    read.as_object_mut().unwrap().remove("id");
    assert_eq!(
        read,
        json!({
            "resourceType": "Practitioner",
            "active": true,
            "name": [{"family": "Organa", "given": ["Leia"]}],
            "telecom": [{"system": "phone", "value": "555-0100"}],
        })
    );
}

fn accept_and_format_choose_the_response_format(app: &TestApp) {
    let id = app
        .post("Practitioner", &practitioner("Smith"))
        .json::<Value>()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("Practitioner/{id}");
    let xml = app
        .request(Method::GET, &path)
        .header("Accept", "application/fhir+xml")
        .send()
        .unwrap();
    assert!(xml.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+xml"));
    let text = xml.text().unwrap();
    assert!(
        text.contains("<Practitioner xmlns=\"http://hl7.org/fhir\">") && text.contains("<family value=\"Smith\"/>"),
        "{text}"
    );
    let by_param = app.get(&format!("{path}?_format=xml"));
    assert!(by_param.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+xml"));
    let json_over_accept = app
        .request(Method::GET, &format!("{path}?_format=json"))
        .header("Accept", "application/fhir+xml")
        .send()
        .unwrap();
    assert!(
        json_over_accept.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json"),
        "_format wins over Accept"
    );
    let default = app.get(&path);
    assert!(default.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+json"));
    let errors_too = app
        .request(Method::GET, "Practitioner/nobody")
        .header("Accept", "application/fhir+xml")
        .send()
        .unwrap();
    assert_eq!(errors_too.status(), 404);
    assert!(
        errors_too.text().unwrap().contains("<OperationOutcome"),
        "errors follow the negotiated format"
    );
}

fn pretty_json_is_indented(app: &TestApp) {
    let text = app.get("metadata?_pretty=true").text().unwrap();
    assert!(text.contains("\n  \""), "indented");
    assert!(!app.get("metadata").text().unwrap().contains('\n'));
}

fn unacceptable_formats_are_406(app: &TestApp) {
    let response = app
        .request(Method::GET, "metadata")
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(response.status(), 406);
    assert_outcome(&response.json().unwrap(), "error", "not-supported", None);
    assert_eq!(app.get("metadata?_format=turtle").status(), 406);
}

fn unsupported_content_types_are_415(app: &TestApp) {
    let response = app
        .request(Method::POST, "Practitioner")
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_outcome(&response.json().unwrap(), "error", "not-supported", None);
}
