//! The HTTP side of authorization: `/.well-known/smart-configuration`, `POST /auth/token`,
//! and the gate every FHIR request passes (rate limits, bearer token, scopes) before the REST
//! layer sees it. The rules themselves live in `crate::auth`; this file only extracts and
//! renders, and logs refusals (client id and reason, never a token or an assertion).

use std::net::IpAddr;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{base_url, AppState};
use crate::auth::access::{self, Credential, Policy};
use crate::auth::TokenError;
use crate::fhir::{FhirError, FhirRequest};

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/auth/token";

/// The largest token request body read.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The peer's address: the TCP peer, never a forwarding header a client could forge.
pub fn peer_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

/// The per-address rate limit, checked first on every request.
pub fn check_ip(req: &HttpRequest, state: &AppState) -> Result<(), FhirError> {
    match peer_ip(req) {
        Some(ip) => state.auth.limits().check_ip(ip).map_err(|throttled| {
            tracing::warn!(peer = %ip, "rate limit reached (address)");
            throttled.into()
        }),
        None => Ok(()),
    }
}

/// Decides whether `request` may go on and, when it may, names its actor and address on it.
pub async fn authorize(req: &HttpRequest, state: &AppState, request: &mut FhirRequest) -> Result<(), FhirError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    let credential = state.auth.credential(authorization).await?;
    if let Credential::Valid(principal) = &credential {
        state
            .auth
            .limits()
            .check_client(&principal.client_id)
            .map_err(|throttled| {
                tracing::warn!(client.id = %principal.client_id, "rate limit reached (client)");
                FhirError::from(throttled)
            })?;
    }
    let access = &state.fhir.settings.access;
    let policy = Policy {
        open_writes: access.open_writes,
        reads_require_token: access.reads_require_token,
    };
    let needs = access::needs_of(request);
    match access::decide(&needs, &credential, policy) {
        Ok(actor) => {
            if let Credential::Invalid { reason, .. } = &credential {
                // Accepted without the token: it names nobody, and nothing needed it.
                tracing::debug!(reason, "ignoring an invalid bearer token on an open request");
            }
            request.actor = actor;
            request.source_address = peer_ip(req).map(|ip| ip.to_string());
            Ok(())
        }
        Err(error) => {
            let client_id = match &credential {
                Credential::Valid(p) => Some(p.client_id.as_str()),
                Credential::Invalid { client_id, .. } => client_id.as_deref(),
                Credential::None => None,
            };
            tracing::warn!(
                client.id = client_id.unwrap_or("-"),
                reason = %error,
                "authorization refused"
            );
            Err(error)
        }
    }
}

/// `GET /.well-known/smart-configuration`: what a SMART backend client needs to know.
/// <https://hl7.org/fhir/smart-app-launch/conformance.html#using-well-known>
pub async fn smart_configuration(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(error) = check_ip(&req, &state) {
        return super::render_error(&req, &error, crate::fhir::format::Format::Json, false);
    }
    let base = base_url(&req, &state);
    let scopes: Vec<String> = ["system/*.read", "system/*.write", "system/*.rs", "system/*.cud"]
        .into_iter()
        .map(str::to_string)
        .chain(
            crate::fhir::types::SUPPORTED_TYPES
                .iter()
                .filter(|t| !crate::fhir::types::is_read_only(t))
                .flat_map(|t| [format!("system/{t}.write"), format!("system/{t}.cud")]),
        )
        .collect();
    HttpResponse::Ok().json(json!({
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": scopes,
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }))
}

/// `POST /auth/token`: the client_credentials grant with a private_key_jwt assertion.
pub async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    if let Err(error) = check_ip(&req, &state) {
        return super::render_error(&req, &error, crate::fhir::format::Format::Json, false);
    }
    if let Some(scheme) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_whitespace().next())
    {
        // RFC 6749 section 5.2: a client that tried another way of authenticating hears 401.
        tracing::warn!(reason = "Authorization header on the token endpoint", "token refused");
        let scheme = if scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
            scheme
        } else {
            "Basic"
        };
        return HttpResponse::Unauthorized()
            .insert_header((
                header::WWW_AUTHENTICATE,
                format!("{scheme} realm=\"providercard\""),
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({
                "error": "invalid_client",
                "error_description": "this server authenticates clients with private_key_jwt only (client_assertion in the body)",
            }));
    }
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let result = if !form_type {
        Err(TokenError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded",
        ))
    } else if body.len() > MAX_FORM_BYTES {
        Err(TokenError::InvalidRequest("the body is too large"))
    } else {
        match serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) {
            Ok(form) => {
                let token_url = format!("{}{TOKEN_PATH}", base_url(&req, &state));
                state.auth.grant(&form, &token_url).await
            }
            Err(_) => Err(TokenError::InvalidRequest("the body is not a form")),
        }
    };
    match result {
        Ok(granted) => {
            tracing::info!(client.id = %granted.client_id, scope = %granted.scope, "access token issued");
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::PRAGMA, "no-cache"))
                .json(granted.body())
        }
        Err(TokenError::Throttled(throttled)) => {
            tracing::warn!("rate limit reached (client, token endpoint)");
            super::render_error(
                &req,
                &FhirError::from(throttled),
                crate::fhir::format::Format::Json,
                false,
            )
        }
        Err(error) => {
            match &error {
                TokenError::Store(cause) => {
                    tracing::error!(error = %cause, "token endpoint failed")
                }
                TokenError::InvalidClient { reason, client_id } => {
                    tracing::warn!(client.id = client_id.as_deref().unwrap_or("-"), reason, "token refused")
                }
                other => tracing::warn!(reason = %other, "token refused"),
            }
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = HttpResponse::build(status);
            response.insert_header((header::CACHE_CONTROL, "no-store"));
            if status == StatusCode::SERVICE_UNAVAILABLE {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            response.json(error.body())
        }
    }
}
