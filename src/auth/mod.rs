//! Who may write: SMART Backend Services authorization, scopes, rate limits.
//! <https://hl7.org/fhir/smart-app-launch/backend-services.html>
//!
//! A provider directory is public to read; only registered backend clients may change it.
//! A client ([`clients`]) proves who it is with a JWT signed by its private key
//! ([`assertion`]) and receives a short-lived opaque access token ([`tokens`]) carrying the
//! scopes it asked for and holds ([`scopes`]). The HTTP layer asks [`access`] whether a
//! request may go on, before the REST layer sees it, and names the caller to the REST layer,
//! which writes it into each write's Provenance (`fhir::audit`). [`limits`] keeps any one
//! client or address from starving the others.
//!
//! Secrets: tokens and assertions are never logged, returned in errors, or stored (a token
//! only as its SHA-256); failures are logged with the client id and a fixed reason. No actix
//! here: the HTTP layer (`http::auth`) extracts and renders.

pub mod access;
pub mod assertion;
pub mod clients;
pub mod jwks;
pub mod limits;
pub mod schema;
pub mod scopes;
pub mod tokens;

use std::time::Duration;

use serde_json::{json, Value};

use access::Credential;
use assertion::Refused;
use clients::ClientKey;
use limits::{LimitSettings, Limits, Throttled};
use scopes::Scopes;
use tokens::{AccessToken, Issued};

use crate::store::{Store, StoreError};

/// The OAuth assertion type of `private_key_jwt` (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Lifetime of an access token.
    pub token_lifetime: Duration,
    pub limits: LimitSettings,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            token_lifetime: Duration::from_secs(300),
            limits: LimitSettings::default(),
        }
    }
}

/// A refused token request, as OAuth 2.0 (RFC 6749 section 5.2) names it.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("only grant_type=client_credentials is supported")]
    UnsupportedGrantType,
    #[error("{reason}")]
    InvalidClient {
        reason: &'static str,
        /// The client the assertion claims to be, for the log.
        client_id: Option<String>,
    },
    #[error("{0}")]
    InvalidScope(&'static str),
    #[error("too many requests")]
    Throttled(Throttled),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TokenError {
    pub fn status(&self) -> u16 {
        match self {
            TokenError::Throttled(_) => 429,
            TokenError::Store(StoreError::Unavailable(_)) => 503,
            TokenError::Store(_) => 500,
            _ => 400,
        }
    }

    /// The OAuth `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::InvalidClient { .. } => "invalid_client",
            TokenError::InvalidScope(_) => "invalid_scope",
            TokenError::Throttled(_) => "slow_down",
            TokenError::Store(StoreError::Unavailable(_)) => "temporarily_unavailable",
            TokenError::Store(_) => "server_error",
        }
    }

    /// The JSON body: the code and, for client errors, a description (never a secret; a
    /// server fault's cause goes to the log only).
    pub fn body(&self) -> Value {
        let description = match self {
            TokenError::Store(_) => "the token could not be issued; retry later".to_string(),
            other => other.to_string(),
        };
        json!({"error": self.code(), "error_description": description})
    }

    fn client(client_id: Option<&str>) -> impl Fn(Refused) -> TokenError + '_ {
        move |Refused(reason)| TokenError::InvalidClient {
            reason,
            client_id: client_id.map(str::to_string),
        }
    }
}

/// A granted token, for the one response that carries it.
#[derive(Debug)]
pub struct Granted {
    pub client_id: String,
    pub access_token: AccessToken,
    pub scope: String,
    pub expires_in: u64,
}

impl Granted {
    /// The RFC 6749 section 5.1 response body.
    pub fn body(&self) -> Value {
        json!({
            "access_token": self.access_token.expose(),
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        })
    }
}

pub struct AuthService {
    store: Store,
    settings: AuthSettings,
    limits: Limits,
    jwks: jwks::JwksCache,
}

impl AuthService {
    pub fn new(store: Store, settings: AuthSettings) -> anyhow::Result<AuthService> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("providercard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(AuthService {
            store,
            limits: Limits::new(settings.limits),
            settings,
            jwks: jwks::JwksCache::new(http),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs database work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| StoreError::Unavailable(format!("blocking task failed: {e}")))?
    }

    /// What an `Authorization` header is worth.
    pub async fn credential(&self, authorization: Option<&str>) -> Result<Credential, StoreError> {
        let Some(header) = authorization else {
            return Ok(Credential::None);
        };
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            // Another scheme (Basic, …) presents no bearer token: as if none were sent, which
            // earns the bare challenge of RFC 6750 section 3.1.
            _ => return Ok(Credential::None),
        };
        if token.is_empty() || token.len() > 512 {
            return Ok(Credential::Invalid {
                reason: "malformed bearer token",
                client_id: None,
            });
        }
        let token = token.to_string();
        self.blocking(move |store| tokens::credential(&mut *store.conn()?, &token))
            .await
    }

    /// The token endpoint: `form` is the request's `application/x-www-form-urlencoded` body,
    /// `token_url` this endpoint's URL (the only `aud` accepted).
    pub async fn grant(&self, form: &[(String, String)], token_url: &str) -> Result<Granted, TokenError> {
        let param = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        match param("grant_type") {
            Some("client_credentials") => {}
            Some(_) => return Err(TokenError::UnsupportedGrantType),
            None => return Err(TokenError::InvalidRequest("grant_type is required")),
        }
        match param("client_assertion_type") {
            Some(JWT_BEARER) => {}
            Some(_) => {
                return Err(TokenError::InvalidClient {
                    reason: "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    client_id: None,
                })
            }
            None => return Err(TokenError::InvalidRequest("client_assertion_type is required")),
        }
        let assertion = param("client_assertion").ok_or(TokenError::InvalidRequest("client_assertion is required"))?;
        let asked = param("scope").ok_or(TokenError::InvalidRequest("scope is required"))?;

        let unverified = assertion::peek(assertion).map_err(TokenError::client(None))?;
        let client_id = unverified.client_id.clone();
        let refused = TokenError::client(Some(&client_id));
        let lookup = client_id.clone();
        let client = self
            .blocking(move |store| clients::find(&mut *store.conn()?, &lookup))
            .await?
            .ok_or(Refused("unknown client"))
            .map_err(&refused)?;
        if client.revoked_at.is_some() {
            return Err(refused(Refused("the client was revoked")));
        }
        let key = match &client.key {
            ClientKey::PublicKey { algorithm, pem } => {
                if *algorithm != unverified.algorithm {
                    return Err(refused(Refused(
                        "the client_assertion's alg does not fit the client's key",
                    )));
                }
                assertion::pem_key(pem, *algorithm).map_err(&refused)?
            }
            ClientKey::JwksUrl(url) => {
                if unverified.jku.as_deref().is_some_and(|jku| jku != url) {
                    return Err(refused(Refused(
                        "the jku header is not the client's registered JWKS URL",
                    )));
                }
                let kid = unverified
                    .kid
                    .as_deref()
                    .ok_or(Refused("the client_assertion has no kid"))
                    .map_err(&refused)?;
                let jwk = self.jwks.key(url, kid).await.map_err(|error| {
                    tracing::warn!(client.id = %client_id, %error, "JWKS not available");
                    refused(Refused("the client's JWKS could not be fetched"))
                })?;
                let jwk = jwk
                    .ok_or(Refused("no key in the client's JWKS has the assertion's kid"))
                    .map_err(&refused)?;
                assertion::jwk_key(&jwk, unverified.algorithm).map_err(&refused)?
            }
        };
        let now = tokens::unix_now();
        let verified =
            assertion::verify(assertion, &key, unverified.algorithm, &client.id, token_url, now).map_err(&refused)?;
        self.limits.check_client(&client.id).map_err(TokenError::Throttled)?;

        let granted = Scopes::parse(&client.scopes).grant(asked);
        if granted.is_empty() {
            return Err(TokenError::InvalidScope(
                "none of the requested scopes is held by this client",
            ));
        }
        let lifetime = self.settings.token_lifetime.as_secs();
        let token_expires_at = now + lifetime as i64;
        let id = client.id.clone();
        let scopes = granted.clone();
        let issued = self
            .blocking(move |store| {
                tokens::issue(
                    &mut *store.conn()?,
                    &id,
                    &verified.jti,
                    verified.expires_at,
                    &scopes,
                    token_expires_at,
                )
            })
            .await?;
        match issued {
            Issued::Token(access_token) => Ok(Granted {
                client_id: client.id,
                access_token,
                scope: granted.to_string(),
                expires_in: lifetime,
            }),
            Issued::Replayed => Err(refused(Refused("the client_assertion's jti was used before"))),
        }
    }
}
