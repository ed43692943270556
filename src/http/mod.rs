//! The HTTP edge: every route in [`configure`], handlers that only extract a [`FhirRequest`]
//! and render a [`FhirResponse`] (status, `ETag`, `Location`, content type, `Prefer`).
//! FHIR meaning lives in `crate::fhir`.

pub mod auth;
pub mod logging;
pub mod negotiate;
pub mod ops;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use tracing_actix_web::RequestId;

use crate::fhir::format::{self, Format};
use crate::fhir::outcome::{operation_outcome, Issue};
use crate::fhir::request::parse_query;
use crate::fhir::{self as fhir_rest, FhirError, FhirRequest, FhirResponse, FhirServer, Method};
use negotiate::Return;

/// What every handler shares.
pub struct AppState {
    pub fhir: Arc<FhirServer>,
    /// The public base URL; when None it is read from each request's Host.
    pub base_url: Option<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Tokens, clients, rate limits.
    pub auth: Arc<crate::auth::AuthService>,
    /// The longest a request may take, body included, before it is answered 503.
    pub request_timeout: Duration,
    /// Outside systems, jobs, alerts (the `/api/v1` operations endpoints).
    pub integrations: Arc<crate::integrations::setup::Integrations>,
}

/// Every route the server answers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before the FHIR patterns, which would otherwise match these paths.
    cfg.service(web::resource("/.well-known/smart-configuration").route(web::get().to(auth::smart_configuration)));
    cfg.service(web::resource(auth::TOKEN_PATH).route(web::post().to(auth::token)));
    ops::configure(cfg);
    for pattern in [
        "/",
        "/metadata",
        "/{type}",
        "/{type}/_history",
        "/{type}/{id}",
        "/{type}/{id}/_history",
        "/{type}/{id}/_history/{vid}",
    ] {
        cfg.service(web::resource(pattern).route(web::route().to(fhir_endpoint)));
    }
    cfg.default_service(web::route().to(fhir_endpoint));
}

fn base_url(req: &HttpRequest, state: &AppState) -> String {
    match &state.base_url {
        Some(base) => base.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

async fn fhir_endpoint(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let query = parse_query(req.query_string());
    let pretty = query.iter().any(|(k, v)| k == "_pretty" && v == "true");
    let format = match negotiate::response_format(&req, &query) {
        Ok(format) => format,
        Err(error) => return render_error(&req, &error, Format::Json, pretty),
    };
    let timeout = state.request_timeout;
    let answered = tokio::time::timeout(timeout, answer(&req, payload, &state, query))
        .await
        .unwrap_or(Err(FhirError::Timeout {
            seconds: timeout.as_secs(),
        }));
    match answered {
        Ok(response) => render(&req, &state, response, format, pretty),
        Err(error) => render_error(&req, &error, format, pretty),
    }
}

async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    query: Vec<(String, String)>,
) -> Result<FhirResponse, FhirError> {
    auth::check_ip(req, state)?;
    let method =
        Method::parse(req.method().as_str()).ok_or_else(|| FhirError::MethodNotAllowed(req.method().to_string()))?;
    let mut request = FhirRequest::new(method, req.path());
    request.query = query;
    request.if_match = header_str(req, header::IF_MATCH);
    request.if_none_exist = header_str(req, header::HeaderName::from_static("if-none-exist"));
    request.strict_handling = negotiate::prefer_strict(req);
    // Only a Bundle's body says what it writes; any other request is judged before its body
    // is read, so that an unauthorised client cannot make the server read 10 MiB first.
    let is_bundle = method == Method::Post && request.path.is_empty();
    if !is_bundle {
        auth::authorize(req, state, &mut request).await?;
    }
    if matches!(method, Method::Post | Method::Put) {
        let bytes = read_body(payload, state.max_body_bytes).await?;
        if method == Method::Post && req.path().ends_with("/_search") {
            // POST /Type/_search: the form body holds the parameters, as the query string would.
            if !negotiate::is_form(req) {
                return Err(FhirError::UnsupportedMediaType(
                    header_str(req, header::CONTENT_TYPE).unwrap_or_else(|| "none".into()),
                ));
            }
            request.query.extend(parse_query(&String::from_utf8_lossy(&bytes)));
        } else if !bytes.iter().all(u8::is_ascii_whitespace) {
            let body_format = negotiate::request_format(req, &bytes)?;
            request.body = Some(format::parse_body(&bytes, body_format)?);
        }
    }
    if is_bundle {
        auth::authorize(req, state, &mut request).await?;
    }
    if let (Some(nppes), Some(body)) = (&state.integrations.nppes, &request.body) {
        // NPPES answers that arrive within its timeout are cached, so the write's transaction
        // enriches from them; the rest is left to the job the write enqueues.
        nppes.prefetch(body).await;
    }
    let fhir = state.fhir.clone();
    let base = base_url(req, state);
    web::block(move || fhir_rest::handle(&fhir, &base, request))
        .await
        .map_err(|e| FhirError::Internal(format!("handler thread failed: {e}")))?
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, FhirError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| FhirError::invalid(Issue::error("structure", format!("the body could not be read: {e}"))))?;
        if body.len() + chunk.len() > limit {
            return Err(FhirError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn render(req: &HttpRequest, state: &AppState, response: FhirResponse, format: Format, pretty: bool) -> HttpResponse {
    let mut builder = HttpResponse::build(StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK));
    let base = base_url(req, state);
    if let Some(version) = &response.version {
        builder.insert_header((header::ETAG, version.etag()));
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&version.last_updated) {
            builder.insert_header((header::LAST_MODIFIED, t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()));
        }
        let location = format!("{base}/{}", version.versioned_path());
        if response.is_write {
            builder.insert_header((header::LOCATION, location.clone()));
        }
        builder.insert_header((header::CONTENT_LOCATION, location));
    }
    let body = if response.is_write {
        match negotiate::prefer_return(req) {
            Return::Minimal => None,
            Return::OperationOutcome => {
                let what = if response.status == 201 { "created" } else { "written" };
                let about = response
                    .version
                    .as_ref()
                    .map(|v| v.versioned_path())
                    .unwrap_or_default();
                Some(operation_outcome(&[Issue::information(
                    "informational",
                    format!("{about} {what}"),
                )]))
            }
            Return::Representation => response.body,
        }
    } else {
        response.body
    };
    match body {
        None => builder.finish(),
        Some(body) => match format::render(&body, format, pretty) {
            Ok(bytes) => builder
                .content_type(format!("{}; charset=utf-8", format.mime()))
                .body(bytes),
            Err(error) => render_error(req, &error, Format::Json, pretty),
        },
    }
}

pub(crate) fn render_error(req: &HttpRequest, error: &FhirError, format: Format, pretty: bool) -> HttpResponse {
    if error.is_server_fault() {
        // The client hears "internal error"; the cause is logged once, here.
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::error!(error = %error, request_id, "request failed");
    }
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let outcome = error.outcome();
    let (format, bytes) = match format::render(&outcome, format, pretty) {
        Ok(bytes) => (format, bytes),
        Err(_) => (Format::Json, serde_json::to_vec(&outcome).unwrap_or_default()),
    };
    let mut builder = HttpResponse::build(status);
    builder.content_type(format!("{}; charset=utf-8", format.mime()));
    if let Some(seconds) = error.retry_after() {
        builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    if let Some(challenge) = error.www_authenticate() {
        builder.insert_header((header::WWW_AUTHENTICATE, challenge));
    }
    builder.body(bytes)
}
