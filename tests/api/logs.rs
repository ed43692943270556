//! 8. Logs: one line per request with a request id, method, path, status and latency; never
//! bodies, query strings, tokens or secrets.

use reqwest::Method;

use crate::common::*;

#[test]
fn each_request_is_one_line_without_bodies_or_secrets() {
    let app = TestApp::spawn(Backend::Sqlite);
    let secret_body = "Body-Marker-7f3a";
    let token = "Bearer-Secret-Token-91c2";
    let response = app
        .request(Method::POST, "Practitioner?marker=Query-Marker-5e1d")
        .header("Content-Type", "application/fhir+json")
        .header("Authorization", format!("Bearer {token}"))
        .body(practitioner(secret_body).to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = app.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&request_id)).collect();
    assert_eq!(lines.len(), 1, "one line for the request:\n{log}");
    let line = lines[0];
    for field in ["method=POST", "path=/Practitioner", "status=201", "latency_ms="] {
        assert!(line.contains(field), "{field} in {line}");
    }
    for secret in [secret_body, token, "Query-Marker-5e1d"] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
}
