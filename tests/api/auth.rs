//! 9. Who may write: SMART Backend Services tokens from client assertions signed here with
//! freshly made RSA and EC P-384 keys; scopes over every type a request touches; 401 and 403
//! with OperationOutcomes; public reads; rate limits; open-writes mode; the Provenance of
//! every write; and no secret in the log.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

crate::on_both_backends!(
    smart_configuration_advertises_the_token_endpoint,
    an_rs384_assertion_buys_a_token_that_can_write,
    an_es384_assertion_buys_a_token_that_can_write,
    a_token_grants_what_was_asked_and_is_held,
    an_expired_assertion_is_refused,
    an_assertion_for_another_audience_is_refused,
    an_assertion_living_longer_than_five_minutes_is_refused,
    a_replayed_assertion_is_refused,
    a_wrong_algorithm_is_refused,
    an_unknown_client_is_refused,
    a_revoked_client_gets_no_token_and_its_tokens_stop_working,
    malformed_token_requests_get_oauth_errors,
    a_client_with_a_jwks_url_is_verified_with_its_published_key,
    a_write_without_a_token_is_401_with_a_challenge,
    a_bad_or_expired_token_is_401_invalid_token,
    a_token_without_the_scope_is_403,
    a_transaction_with_one_type_outside_the_scopes_fails_whole,
    reads_stay_public_unless_configured_otherwise,
    a_client_over_its_rate_limit_gets_429_with_retry_after,
    an_address_over_its_rate_limit_gets_429_with_retry_after,
    open_mode_accepts_anonymous_writes_and_metadata_says_so,
    every_write_leaves_a_readable_provenance,
    provenance_is_read_only,
    the_clients_command_registers_lists_and_refuses_private_keys,
    cors_is_off_by_default_and_on_for_configured_origins,
    a_request_slower_than_the_timeout_gets_503,
    no_token_assertion_or_key_reaches_the_log,
);

// ---- keys, clients, assertions ---------------------------------------------------------

/// A key pair made for one test.
struct Keys {
    algorithm: Algorithm,
    private_pem: String,
    public_pem: String,
}

fn es384_keys() -> Keys {
    use p384::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let secret = p384::SecretKey::random(&mut rsa::rand_core::OsRng);
    Keys {
        algorithm: Algorithm::ES384,
        private_pem: secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: secret.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    }
}

fn rs384_keys() -> Keys {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    Keys {
        algorithm: Algorithm::RS384,
        private_pem: private.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: private.to_public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    }
}

impl Keys {
    fn encoding_key(&self) -> EncodingKey {
        match self.algorithm {
            Algorithm::ES384 => EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap(),
        }
    }
}

/// A registered client and its keys.
struct Client {
    id: String,
    keys: Keys,
}

/// Runs `providercard clients ARGS…` on the app's database; returns stdout, or panics.
fn clients_command(app: &TestApp, args: &[&str]) -> String {
    let output = providercard(&app.db.url).arg("clients").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "clients {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn register(app: &TestApp, name: &str, scopes: &str, keys: Keys) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("public.pem");
    std::fs::write(&path, &keys.public_pem).unwrap();
    let out = clients_command(
        app,
        &["add", name, "--scope", scopes, "--public-key", path.to_str().unwrap()],
    );
    Client {
        id: out.trim().to_string(),
        keys,
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A client assertion as the SMART spec wants it, with a field or two to change.
struct Assertion {
    claims: Value,
    header: Header,
}

impl Assertion {
    fn for_client(app: &TestApp, client: &Client) -> Assertion {
        let now = unix_now();
        let mut header = Header::new(client.keys.algorithm);
        header.kid = Some("key-1".into());
        Assertion {
            claims: json!({
                "iss": client.id,
                "sub": client.id,
                "aud": app.url("auth/token"),
                "exp": now + 240,
                "iat": now,
                "jti": uuid::Uuid::new_v4().to_string(),
            }),
            header,
        }
    }

    fn set(mut self, claim: &str, value: Value) -> Assertion {
        self.claims[claim] = value;
        self
    }

    fn sign_with(&self, keys: &Keys) -> String {
        jsonwebtoken::encode(&self.header, &self.claims, &keys.encoding_key()).unwrap()
    }
}

fn token_request(app: &TestApp, assertion: &str, scope: &str) -> Response {
    app.request(Method::POST, "auth/token")
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ])
        .send()
        .unwrap()
}

/// A token for `client` with `scope`; the exchange must succeed.
fn token(app: &TestApp, client: &Client, scope: &str) -> String {
    let assertion = Assertion::for_client(app, client).sign_with(&client.keys);
    let response = token_request(app, &assertion, scope);
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// An OAuth error with this status and `error` code; returns its `error_description`.
fn assert_oauth_error(response: Response, status: u16, code: &str) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"], code, "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(!description.is_empty(), "{body}");
    description.to_string()
}

fn write_with(app: &TestApp, method: Method, path: &str, body: &Value, token: &str) -> Response {
    app.fhir_json(method, path, body).bearer_auth(token).send().unwrap()
}

fn location(name: &str) -> Value {
    json!({"resourceType": "Location", "name": name})
}

// ---- tokens ----------------------------------------------------------------------------

fn smart_configuration_advertises_the_token_endpoint(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let config = app.read(".well-known/smart-configuration");
    assert_eq!(config["token_endpoint"], app.url("auth/token"));
    assert_eq!(
        config["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(
        config["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS384", "ES384"])
    );
    assert_eq!(config["grant_types_supported"], json!(["client_credentials"]));
    let capabilities = config["capabilities"].as_array().unwrap();
    assert!(capabilities.contains(&json!("client-confidential-asymmetric")));
    let scopes = config["scopes_supported"].as_array().unwrap();
    assert!(scopes.contains(&json!("system/Practitioner.write")));
}

fn an_rs384_assertion_buys_a_token_that_can_write(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme RSA", "system/Practitioner.write", rs384_keys());
    let assertion = Assertion::for_client(&app, &client).sign_with(&client.keys);
    let response = token_request(&app, &assertion, "system/Practitioner.write");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["scope"], "system/Practitioner.write");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap();
    let created = write_with(&app, Method::POST, "Practitioner", &practitioner("Rsa"), token);
    assert_eq!(created.status(), 201);
}

fn an_es384_assertion_buys_a_token_that_can_write(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme EC", "system/Location.cud", es384_keys());
    let token = token(&app, &client, "system/Location.cud");
    let created = write_with(&app, Method::POST, "Location", &location("Main St"), &token);
    assert_eq!(created.status(), 201);
    let id = new_id();
    let path = format!("Location/{id}");
    let mut body = location("Elm St");
    body["id"] = json!(id);
    assert_eq!(write_with(&app, Method::PUT, &path, &body, &token).status(), 201);
    let deleted = app.request(Method::DELETE, &path).bearer_auth(&token).send().unwrap();
    assert_eq!(deleted.status(), 200);
}

fn a_token_grants_what_was_asked_and_is_held(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(
        &app,
        "Acme",
        "system/Practitioner.write system/Location.cud",
        es384_keys(),
    );
    let assertion = Assertion::for_client(&app, &client).sign_with(&client.keys);
    let response = token_request(
        &app,
        &assertion,
        "system/Practitioner.write system/Organization.write system/Location.c",
    );
    let body: Value = response.json().unwrap();
    assert_eq!(body["scope"], "system/Practitioner.write system/Location.c");
    let token = body["access_token"].as_str().unwrap();
    // Location.d was held but not asked for, so this token cannot delete.
    let id = new_id();
    let mut loc = location("X");
    loc["id"] = json!(id);
    write_with(&app, Method::PUT, &format!("Location/{id}"), &loc, token);
    let delete = app
        .request(Method::DELETE, &format!("Location/{id}"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(delete.status(), 403);

    let assertion = Assertion::for_client(&app, &client).sign_with(&client.keys);
    assert_oauth_error(
        token_request(&app, &assertion, "system/Organization.write"),
        400,
        "invalid_scope",
    );
}

fn an_expired_assertion_is_refused(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme", "system/*.write", es384_keys());
    let assertion = Assertion::for_client(&app, &client)
        .set("exp", json!(unix_now() - 120))
        .sign_with(&client.keys);
    assert_oauth_error(token_request(&app, &assertion, "system/*.write"), 400, "invalid_client");
}

fn an_assertion_for_another_audience_is_refused(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme", "system/*.write", es384_keys());
    for aud in [json!("https://other.example/auth/token"), json!(app.url("metadata"))] {
        let assertion = Assertion::for_client(&app, &client)
            .set("aud", aud)
            .sign_with(&client.keys);
        assert_oauth_error(token_request(&app, &assertion, "system/*.write"), 400, "invalid_client");
    }
}

fn an_assertion_living_longer_than_five_minutes_is_refused(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme", "system/*.write", es384_keys());
    let assertion = Assertion::for_client(&app, &client)
        .set("exp", json!(unix_now() + 3600))
        .sign_with(&client.keys);
    assert_oauth_error(token_request(&app, &assertion, "system/*.write"), 400, "invalid_client");
}

fn a_replayed_assertion_is_refused(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme", "system/*.write", es384_keys());
    let assertion = Assertion::for_client(&app, &client);
    let signed = assertion.sign_with(&client.keys);
    assert_eq!(token_request(&app, &signed, "system/*.write").status(), 200);
    let replay = assert_oauth_error(token_request(&app, &signed, "system/*.write"), 400, "invalid_client");
    assert!(replay.contains("jti"), "{replay}");
    // The same jti signed again, with another exp, is a replay as well.
    let resigned = Assertion {
        claims: assertion.claims.clone(),
        header: assertion.header.clone(),
    }
    .set("exp", json!(unix_now() + 200))
    .sign_with(&client.keys);
    assert_oauth_error(token_request(&app, &resigned, "system/*.write"), 400, "invalid_client");
    // Another server process on the same database, at the same public URL, refuses a replay
    // of what the first one accepted.
    let other = TestApp::serve_secured(Arc::clone(&app.db), &["--base-url", &app.base]);
    let fresh = Assertion::for_client(&app, &client).sign_with(&client.keys);
    assert_eq!(token_request(&app, &fresh, "system/*.write").status(), 200);
    let replay = assert_oauth_error(token_request(&other, &fresh, "system/*.write"), 400, "invalid_client");
    assert!(replay.contains("jti"), "{replay}");
}

fn a_wrong_algorithm_is_refused(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme", "system/*.write", rs384_keys());
    // RS256: the right key, an algorithm SMART does not allow.
    let mut rs256 = Assertion::for_client(&app, &client);
    rs256.header = Header::new(Algorithm::RS256);
    assert_oauth_error(
        token_request(&app, &rs256.sign_with(&client.keys), "system/*.write"),
        400,
        "invalid_client",
    );
    // HS256 keyed with the public key: the classic algorithm-confusion forgery.
    let mut hs256 = Assertion::for_client(&app, &client);
    hs256.header = Header::new(Algorithm::HS256);
    let forged = jsonwebtoken::encode(
        &hs256.header,
        &hs256.claims,
        &EncodingKey::from_secret(client.keys.public_pem.as_bytes()),
    )
    .unwrap();
    assert_oauth_error(token_request(&app, &forged, "system/*.write"), 400, "invalid_client");
    // ES384 claimed for an RSA client, signed by some EC key.
    let other = es384_keys();
    let mut es384 = Assertion::for_client(&app, &client);
    es384.header = Header::new(Algorithm::ES384);
    assert_oauth_error(
        token_request(&app, &es384.sign_with(&other), "system/*.write"),
        400,
        "invalid_client",
    );
}

fn an_unknown_client_is_refused(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let stranger = Client {
        id: uuid::Uuid::new_v4().to_string(),
        keys: es384_keys(),
    };
    let assertion = Assertion::for_client(&app, &stranger).sign_with(&stranger.keys);
    assert_oauth_error(token_request(&app, &assertion, "system/*.write"), 400, "invalid_client");
    // A registered client's id with a signature by another key.
    let client = register(&app, "Acme", "system/*.write", es384_keys());
    let forged = Assertion::for_client(&app, &client).sign_with(&stranger.keys);
    assert_oauth_error(token_request(&app, &forged, "system/*.write"), 400, "invalid_client");
}

fn a_revoked_client_gets_no_token_and_its_tokens_stop_working(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme", "system/Practitioner.write", es384_keys());
    let token = token(&app, &client, "system/Practitioner.write");
    let body = practitioner("Before");
    assert_eq!(
        write_with(&app, Method::POST, "Practitioner", &body, &token).status(),
        201
    );
    clients_command(&app, &["revoke", &client.id]);
    let after = write_with(&app, Method::POST, "Practitioner", &body, &token);
    assert_eq!(after.status(), 401);
    let assertion = Assertion::for_client(&app, &client).sign_with(&client.keys);
    assert_oauth_error(
        token_request(&app, &assertion, "system/Practitioner.write"),
        400,
        "invalid_client",
    );
    let list = clients_command(&app, &["list"]);
    let line = list.lines().find(|l| l.starts_with(&client.id)).unwrap();
    assert!(line.contains("revoked"), "{line}");
}

fn malformed_token_requests_get_oauth_errors(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme", "system/*.write", es384_keys());
    let assertion = Assertion::for_client(&app, &client).sign_with(&client.keys);
    let post = |form: &[(&str, &str)]| app.request(Method::POST, "auth/token").form(form).send().unwrap();
    let jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    assert_oauth_error(
        post(&[
            ("grant_type", "password"),
            ("client_assertion_type", jwt_bearer),
            ("client_assertion", &assertion),
            ("scope", "system/*.write"),
        ]),
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        post(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:other"),
            ("client_assertion", &assertion),
            ("scope", "system/*.write"),
        ]),
        400,
        "invalid_client",
    );
    assert_oauth_error(
        post(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", jwt_bearer),
            ("client_assertion", &assertion),
        ]),
        400,
        "invalid_request",
    );
    assert_oauth_error(
        post(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", jwt_bearer),
            ("client_assertion", "not.a.jwt"),
            ("scope", "system/*.write"),
        ]),
        400,
        "invalid_client",
    );
    let json_body = app
        .request(Method::POST, "auth/token")
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .unwrap();
    assert_oauth_error(json_body, 400, "invalid_request");
    let basic = app
        .request(Method::POST, "auth/token")
        .basic_auth("someone", Some("secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert!(basic.headers().contains_key("www-authenticate"));
    assert_oauth_error(basic, 401, "invalid_client");
}

/// Serves one JSON document to every request, on a loopback port, for as long as the test runs.
fn serve_json(document: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let body = document.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn a_client_with_a_jwks_url_is_verified_with_its_published_key(backend: Backend) {
    use base64::Engine;
    use p384::elliptic_curve::sec1::ToEncodedPoint;
    use p384::pkcs8::DecodePublicKey;
    let app = TestApp::spawn_secured(backend);
    let keys = es384_keys();
    let public = p384::PublicKey::from_public_key_pem(&keys.public_pem).unwrap();
    let point = public.to_encoded_point(false);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let url = serve_json(json!({"keys": [{
        "kty": "EC", "crv": "P-384", "kid": "key-1", "alg": "ES384", "use": "sig",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
    }]}));
    let out = clients_command(
        &app,
        &["add", "Acme JWKS", "--scope", "system/*.write", "--jwks-url", &url],
    );
    let client = Client {
        id: out.trim().to_string(),
        keys,
    };
    let token = token(&app, &client, "system/*.write");
    let created = write_with(&app, Method::POST, "Location", &location("Jwks"), &token);
    assert_eq!(created.status(), 201);
    let mut unknown_kid = Assertion::for_client(&app, &client);
    unknown_kid.header.kid = Some("key-2".into());
    assert_oauth_error(
        token_request(&app, &unknown_kid.sign_with(&client.keys), "system/*.write"),
        400,
        "invalid_client",
    );
}

// ---- enforcement -----------------------------------------------------------------------

fn assert_unauthorized(response: Response, challenge: &str) {
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], challenge);
    assert_outcome(&response.json().unwrap(), "error", "login", None);
}

fn a_write_without_a_token_is_401_with_a_challenge(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let challenge = "Bearer realm=\"providercard\"";
    let id = new_id();
    let path = format!("Practitioner/{id}");
    assert_unauthorized(app.post("Practitioner", &practitioner("Nobody")), challenge);
    assert_unauthorized(app.put(&path, &with_id(practitioner("Nobody"), &id)), challenge);
    assert_unauthorized(app.delete("Practitioner/HansSolo"), challenge);
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": practitioner("Nobody"), "request": {"method": "POST", "url": "Practitioner"}},
    ]});
    assert_unauthorized(app.post("", &transaction), challenge);
    assert_eq!(app.get(&path).status(), 404, "nothing was written");
}

fn a_bad_or_expired_token_is_401_invalid_token(backend: Backend) {
    let app = TestApp::spawn_secured_with(backend, &["--token-lifetime-secs", "1"]);
    let challenge = "Bearer realm=\"providercard\", error=\"invalid_token\"";
    let body = practitioner("Late");
    let made_up = write_with(&app, Method::POST, "Practitioner", &body, "made-up-token");
    assert_unauthorized(made_up, challenge);
    // Another scheme is no bearer token at all: the bare challenge (RFC 6750 section 3.1).
    let basic = app
        .fhir_json(Method::POST, "Practitioner", &body)
        .basic_auth("user", Some("password"))
        .send()
        .unwrap();
    assert_unauthorized(basic, "Bearer realm=\"providercard\"");
    let client = register(&app, "Acme", "system/Practitioner.write", es384_keys());
    let token = token(&app, &client, "system/Practitioner.write");
    std::thread::sleep(Duration::from_millis(2100));
    let expired = write_with(&app, Method::POST, "Practitioner", &body, &token);
    assert_unauthorized(expired, challenge);
}

fn a_token_without_the_scope_is_403(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme", "system/Location.c", es384_keys());
    let token = token(&app, &client, "system/Location.c");
    assert_eq!(
        write_with(&app, Method::POST, "Location", &location("A"), &token).status(),
        201
    );
    let refused = write_with(&app, Method::POST, "Practitioner", &practitioner("No"), &token);
    assert_eq!(refused.status(), 403);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    assert_outcome(&refused.json().unwrap(), "error", "forbidden", None);
    let delete = app
        .request(Method::DELETE, "Location/anything")
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(delete.status(), 403, "c does not allow d");
}

fn a_transaction_with_one_type_outside_the_scopes_fails_whole(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(
        &app,
        "Acme",
        "system/Practitioner.write system/Location.write",
        es384_keys(),
    );
    let narrow = token(&app, &client, "system/Practitioner.write");
    let (p, l) = (new_id(), new_id());
    let mut loc = location("Annex");
    loc["id"] = json!(l);
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": with_id(practitioner("Both"), &p), "request": {"method": "PUT", "url": format!("Practitioner/{p}")}},
        {"resource": loc, "request": {"method": "PUT", "url": format!("Location/{l}")}},
    ]});
    let refused = write_with(&app, Method::POST, "", &transaction, &narrow);
    assert_eq!(refused.status(), 403);
    let outcome: Value = refused.json().unwrap();
    assert_outcome(&outcome, "error", "forbidden", None);
    assert!(outcome.to_string().contains("system/Location.u"), "{outcome}");
    assert_eq!(app.get(&format!("Practitioner/{p}")).status(), 404, "nothing written");
    assert_eq!(app.get(&format!("Location/{l}")).status(), 404, "nothing written");

    let wide = token(&app, &client, "system/Practitioner.write system/Location.write");
    let accepted = write_with(&app, Method::POST, "", &transaction, &wide);
    assert_eq!(accepted.status(), 200);
    app.read(&format!("Practitioner/{p}"));
    app.read(&format!("Location/{l}"));
}

fn reads_stay_public_unless_configured_otherwise(backend: Backend) {
    let public = TestApp::spawn_secured(backend);
    for path in [
        "metadata",
        "Practitioner",
        "Practitioner?identifier=x",
        "Practitioner/_history",
        "Provenance",
        ".well-known/smart-configuration",
    ] {
        assert_eq!(public.get(path).status(), 200, "{path}");
    }
    assert_eq!(public.get("Practitioner/missing").status(), 404);

    let private = TestApp::spawn_secured_with(backend, &["--reads-require-token"]);
    assert_eq!(
        private.get("metadata").status(),
        200,
        "the CapabilityStatement stays public"
    );
    assert_unauthorized(private.get("Practitioner"), "Bearer realm=\"providercard\"");
    let client = register(
        &private,
        "Reader",
        "system/*.read system/Practitioner.write",
        es384_keys(),
    );
    let reader = token(&private, &client, "system/*.read");
    let read = private
        .request(Method::GET, "Practitioner")
        .bearer_auth(&reader)
        .send()
        .unwrap();
    assert_eq!(read.status(), 200);
    let writer = token(&private, &client, "system/Practitioner.write");
    let refused = private
        .request(Method::GET, "Practitioner")
        .bearer_auth(&writer)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 403);
    let security = &private.read("metadata")["rest"][0]["security"];
    assert!(security["description"]
        .as_str()
        .unwrap()
        .contains("Reads and searches require a bearer token"));
}

fn assert_throttled(response: Response) {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_outcome(&response.json().unwrap(), "error", "throttled", None);
}

fn a_client_over_its_rate_limit_gets_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_secured_with(backend, &["--client-rate-limit", "4"]);
    let client = register(&app, "Busy", "system/Location.write", es384_keys());
    // The token request spends one of the four.
    let token = token(&app, &client, "system/Location.write");
    let statuses: Vec<u16> = (0..6)
        .map(|_| {
            write_with(&app, Method::POST, "Location", &location("Busy"), &token)
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses[..3], [201, 201, 201], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_throttled(write_with(&app, Method::POST, "Location", &location("Busy"), &token));
    // Other callers are not held back by this client.
    assert_eq!(app.get("Location").status(), 200);
}

fn an_address_over_its_rate_limit_gets_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_secured_with(backend, &["--ip-rate-limit", "5"]);
    let statuses: Vec<u16> = (0..5).map(|_| app.get("metadata").status().as_u16()).collect();
    assert_eq!(statuses, [200; 5]);
    assert_throttled(app.get("Practitioner"));
    assert_eq!(
        app.request(Method::POST, "auth/token").send().unwrap().status(),
        429,
        "the token endpoint counts too"
    );
}

fn open_mode_accepts_anonymous_writes_and_metadata_says_so(backend: Backend) {
    let closed = TestApp::spawn_secured(backend);
    let security = &closed.read("metadata")["rest"][0]["security"];
    assert_eq!(
        security["service"][0]["coding"][0],
        json!({
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
            "display": "SMART-on-FHIR",
        })
    );
    let oauth = &security["extension"][0];
    assert_eq!(
        oauth["url"],
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    );
    assert_eq!(oauth["extension"][0]["url"], "token");
    assert_eq!(oauth["extension"][0]["valueUri"], closed.url("auth/token"));
    let description = security["description"].as_str().unwrap();
    assert!(description.contains("Writes require a bearer token"), "{description}");

    let open = TestApp::spawn_secured_with(backend, &["--open-writes"]);
    let created = open.post("Practitioner", &practitioner("Anon"));
    assert_eq!(created.status(), 201);
    let description = open.read("metadata")["rest"][0]["security"]["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(description.contains("OPEN-WRITES MODE"), "{description}");
    assert!(open.log().contains("OPEN-WRITES MODE"), "a loud warning at start");
    let id = created.json::<Value>().unwrap()["id"].as_str().unwrap().to_string();
    let provenance = provenance_of(&open, &format!("Practitioner/{id}/_history/1"));
    assert_eq!(provenance["agent"][0]["who"]["display"], "anonymous (open-writes mode)");

    // The environment switch does the same; --demo alone does not open writes.
    let db = Arc::new(TestDatabase::new(backend));
    let mut command = providercard(&db.url);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PROVIDERCARD_OPEN_WRITES", "true");
    let by_env = TestApp::start(command, db);
    assert_eq!(by_env.post("Location", &location("Env")).status(), 201);
    if backend == Backend::Sqlite {
        let demo = TestApp::spawn_secured_with(backend, &["--demo"]);
        assert_eq!(demo.post("Location", &location("Demo")).status(), 401);
    }
}

// ---- audit -----------------------------------------------------------------------------

/// Every Provenance on the server (a type search without criteria lists them all).
fn all_provenance(app: &TestApp) -> Vec<Value> {
    let bundle = app.read("Provenance?_count=500");
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["resource"]["resourceType"] == "Provenance")
        .map(|e| e["resource"].clone())
        .collect()
}

/// The one Provenance whose target is `reference`.
fn provenance_of(app: &TestApp, reference: &str) -> Value {
    let found: Vec<Value> = all_provenance(app)
        .into_iter()
        .filter(|p| p["target"][0]["reference"] == reference)
        .collect();
    assert_eq!(found.len(), 1, "one Provenance for {reference}");
    found.into_iter().next().unwrap()
}

fn every_write_leaves_a_readable_provenance(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(
        &app,
        "Acme Health Plan",
        "system/Practitioner.write system/Location.write",
        es384_keys(),
    );
    let token = token(&app, &client, "system/Practitioner.write system/Location.write");
    let created: Value = write_with(&app, Method::POST, "Practitioner", &practitioner("One"), &token)
        .json()
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("Practitioner/{id}");
    let updated: Value = write_with(&app, Method::PUT, &path, &with_id(practitioner("Two"), &id), &token)
        .json()
        .unwrap();
    let deleted = app.request(Method::DELETE, &path).bearer_auth(&token).send().unwrap();
    assert_eq!(deleted.status(), 200);
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:7f1c9a52-5b0e-4a37-9d1e-3c2b8a4f6e01", "resource": location("T1"),
         "request": {"method": "POST", "url": "Location"}},
        {"resource": practitioner("T2"), "request": {"method": "POST", "url": "Practitioner"}},
    ]});
    let result: Value = write_with(&app, Method::POST, "", &transaction, &token).json().unwrap();

    let cases = [
        (format!("{path}/_history/1"), "CREATE", Some(&created)),
        (format!("{path}/_history/2"), "UPDATE", Some(&updated)),
        (format!("{path}/_history/3"), "DELETE", None),
    ];
    for (target, activity, written) in cases {
        let p = provenance_of(&app, &target);
        assert_eq!(p["activity"]["coding"][0]["code"], activity);
        let agent = &p["agent"][0];
        assert_eq!(agent["type"]["coding"][0]["code"], "author");
        assert_eq!(
            agent["who"]["display"],
            format!("Acme Health Plan (client {})", client.id)
        );
        assert_eq!(agent["who"]["identifier"]["value"], client.id);
        assert_eq!(agent["extension"][0]["valueString"], "127.0.0.1");
        if let Some(written) = written {
            assert_eq!(p["recorded"], written["meta"]["lastUpdated"], "the write's instant");
        }
        // Readable by itself too.
        let own = app.read(&format!("Provenance/{}", p["id"].as_str().unwrap()));
        assert_eq!(own["target"], p["target"]);
    }
    for entry in result["entry"].as_array().unwrap() {
        let location = entry["response"]["location"].as_str().unwrap();
        let p = provenance_of(&app, location);
        assert_eq!(p["agent"][0]["who"]["identifier"]["value"], client.id);
    }
    assert_eq!(all_provenance(&app).len(), 5, "one per written version, no more");
    let by_target = app.read(&format!("Provenance?target={path}"));
    assert_eq!(by_target["total"], 3, "searchable by target: {by_target}");
}

fn provenance_is_read_only(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let client = register(&app, "Acme", "system/*.*", es384_keys());
    let token = token(&app, &client, "system/*.*");
    let forged = json!({
        "resourceType": "Provenance",
        "target": [{"reference": "Practitioner/x/_history/1"}],
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"who": {"display": "someone else"}}],
    });
    for (method, path) in [
        (Method::POST, "Provenance"),
        (Method::PUT, "Provenance/forged"),
        (Method::DELETE, "Provenance/forged"),
    ] {
        let response = write_with(&app, method.clone(), path, &with_id(forged.clone(), "forged"), &token);
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_outcome(&response.json().unwrap(), "error", "not-supported", None);
    }
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": forged, "request": {"method": "POST", "url": "Provenance"}},
    ]});
    assert_ne!(write_with(&app, Method::POST, "", &transaction, &token).status(), 200);
    assert!(all_provenance(&app).is_empty());
    let statement = app.read("metadata");
    let provenance = statement["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Provenance")
        .unwrap()
        .clone();
    let interactions: Vec<&str> = provenance["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(interactions, ["read", "vread", "search-type"]);
}

// ---- the command line, CORS, timeouts -------------------------------------------------

fn the_clients_command_registers_lists_and_refuses_private_keys(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let keys = es384_keys();
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private.pem");
    std::fs::write(&private, &keys.private_pem).unwrap();
    let output = providercard(&app.db.url)
        .args(["clients", "add", "Oops", "--scope", "system/*.write", "--public-key"])
        .arg(&private)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("private key"), "{stderr}");
    let key_line = keys.private_pem.lines().nth(1).unwrap();
    assert!(!stderr.contains(key_line), "the key is not echoed");

    let bad_scope = providercard(&app.db.url)
        .args(["clients", "add", "Oops", "--scope", "patient/*.read", "--jwks-url"])
        .arg("https://payer.example/jwks.json")
        .output()
        .unwrap();
    assert!(!bad_scope.status.success());

    let client = register(&app, "Acme Health Plan", "system/Practitioner.write", keys);
    let list = clients_command(&app, &["list"]);
    let line = list.lines().find(|l| l.starts_with(&client.id)).unwrap();
    assert!(line.contains("Acme Health Plan") && line.contains("active"), "{line}");
    assert!(line.contains("public key (ES384)") && line.contains("system/Practitioner.write"));
    let public_line = client.keys.public_pem.lines().nth(1).unwrap();
    assert!(!list.contains(public_line), "keys are never listed");
}

fn cors_is_off_by_default_and_on_for_configured_origins(backend: Backend) {
    let origin = "https://directory.example";
    let preflight = |app: &TestApp| {
        app.request(Method::OPTIONS, "Practitioner")
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization, content-type")
            .send()
            .unwrap()
    };
    let off = TestApp::spawn_secured(backend);
    let response = off.get("metadata");
    assert!(!response.headers().contains_key("access-control-allow-origin"));
    assert!(!preflight(&off).headers().contains_key("access-control-allow-origin"));
    assert_eq!(off.read("metadata")["rest"][0]["security"]["cors"], false);

    let on = TestApp::spawn_secured_with(backend, &["--cors-origin", origin]);
    let response = preflight(&on);
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.headers()["access-control-allow-origin"], origin);
    let get = on
        .request(Method::GET, "metadata")
        .header("Origin", origin)
        .send()
        .unwrap();
    assert_eq!(get.headers()["access-control-allow-origin"], origin);
    assert_eq!(get.json::<Value>().unwrap()["rest"][0]["security"]["cors"], true);
    let stranger = on
        .request(Method::GET, "metadata")
        .header("Origin", "https://evil.example")
        .send()
        .unwrap();
    assert!(!stranger.headers().contains_key("access-control-allow-origin"));
}

fn a_request_slower_than_the_timeout_gets_503(backend: Backend) {
    let app = TestApp::spawn_secured_with(backend, &["--open-writes", "--request-timeout-secs", "1"]);
    let address = app.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The head arrives, the promised body never does.
    write!(
        stream,
        "POST /Practitioner HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{{\"resourceType\":"
    )
    .unwrap();
    let mut response = String::new();
    let mut buffer = [0u8; 4096];
    while !response.contains("\r\n\r\n") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the server answered before closing: {response}");
        response.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.to_ascii_lowercase().contains("retry-after:"), "{response}");
}

// ---- secrets ---------------------------------------------------------------------------

fn no_token_assertion_or_key_reaches_the_log(backend: Backend) {
    let app = TestApp::spawn_secured(backend);
    let rsa = register(&app, "Acme RSA", "system/Practitioner.write", rs384_keys());
    let ec = register(&app, "Acme EC", "system/Location.write", es384_keys());
    let mut secrets: Vec<String> = Vec::new();
    for client in [&rsa, &ec] {
        let scope = if client.id == rsa.id {
            "system/Practitioner.write"
        } else {
            "system/Location.write"
        };
        let assertion = Assertion::for_client(&app, client).sign_with(&client.keys);
        let response = token_request(&app, &assertion, scope);
        let token = response.json::<Value>().unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        // A replay, a refused scope and a wrong audience, logged as failures.
        let replay = token_request(&app, &assertion, scope);
        assert!(!replay.text().unwrap().contains(&assertion));
        let wrong = Assertion::for_client(&app, client)
            .set("aud", json!("https://elsewhere.example/token"))
            .sign_with(&client.keys);
        let refused = token_request(&app, &wrong, scope);
        assert!(!refused.text().unwrap().contains(&wrong));
        // Writes: allowed, out of scope, and with a token that is not valid.
        write_with(&app, Method::POST, "Practitioner", &practitioner("Secret"), &token);
        write_with(&app, Method::POST, "Location", &location("Secret"), &token);
        let bogus = format!("{token}x");
        let answer = write_with(&app, Method::POST, "Location", &location("S"), &bogus);
        assert!(!answer.text().unwrap().contains(&bogus));
        secrets.extend([assertion, wrong, token, bogus]);
        for pem in [&client.keys.private_pem, &client.keys.public_pem] {
            // Every base64 line of each key, so that no part of it may hide in the log.
            secrets.extend(
                pem.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(str::to_string),
            );
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = app.log();
    assert!(log.contains("token refused"), "failures are logged:\n{log}");
    assert!(log.contains(&rsa.id), "with the client id:\n{log}");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret leaked into the log:\n{log}");
        // Nor the signature part of an assertion alone.
        if let Some(signature) = secret.rsplit('.').next().filter(|s| s.len() > 40) {
            assert!(!log.contains(signature));
        }
    }
}
