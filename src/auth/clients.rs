//! Registered backend clients (`providercard clients add | list | revoke`): a name, the
//! scopes the client may be granted, and how its assertions are verified — a PEM public key
//! (RSA for RS384, EC P-384 for ES384) or the URL of its JWKS.
//!
//! Keys are checked when registered, with the RustCrypto parsers, so that a wrong file (a
//! private key, a P-256 key, a 1024-bit RSA key) is refused at once instead of failing every
//! token request later. A private key is never stored, and no key is ever printed.

use diesel::prelude::*;
use p384::pkcs8::{DecodePublicKey as _, EncodePublicKey as _, LineEnding};
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;

use super::schema::auth_clients;
use super::scopes::Scope;
use crate::fhir::types::is_supported;
use crate::store::{now_instant, DbConnection, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("a client needs a name")]
    NoName,
    #[error("a client needs at least one scope")]
    NoScopes,
    #[error("'{0}' is not a system scope this server grants (system/Type.read|write|*, or system/Type.cruds, Type a served type or *)")]
    BadScope(String),
    #[error("that file holds a private key: register the public key only (the private key never leaves the client)")]
    PrivateKey,
    #[error("the key is not a PEM public key of a kind this server accepts: RSA of 2048 bits or more (RS384) or EC P-384 (ES384)")]
    UnsupportedKey,
    #[error("the JWKS URL must be https (or http on a loopback address for testing): {0}")]
    JwksUrl(String),
    #[error("no client has the id {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for ClientError {
    fn from(e: diesel::result::Error) -> Self {
        ClientError::Store(e.into())
    }
}

/// The signing algorithm a registered public key is used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rs384,
    Es384,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rs384 => "RS384",
            KeyAlgorithm::Es384 => "ES384",
        }
    }

    fn parse(s: &str) -> Option<KeyAlgorithm> {
        match s {
            "RS384" => Some(KeyAlgorithm::Rs384),
            "ES384" => Some(KeyAlgorithm::Es384),
            _ => None,
        }
    }

    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            KeyAlgorithm::Rs384 => jsonwebtoken::Algorithm::RS384,
            KeyAlgorithm::Es384 => jsonwebtoken::Algorithm::ES384,
        }
    }
}

/// How a client's assertions are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKey {
    /// A public key as SubjectPublicKeyInfo PEM.
    PublicKey { algorithm: KeyAlgorithm, pem: String },
    /// The client publishes its keys; they are fetched when an assertion arrives.
    JwksUrl(String),
}

impl ClientKey {
    /// A PEM public key: SubjectPublicKeyInfo (`PUBLIC KEY`) for RSA or EC P-384, or PKCS#1
    /// (`RSA PUBLIC KEY`). Stored re-encoded as SubjectPublicKeyInfo.
    pub fn from_pem(text: &str) -> Result<ClientKey, ClientError> {
        if text.contains("PRIVATE KEY") {
            return Err(ClientError::PrivateKey);
        }
        if let Ok(key) = p384::PublicKey::from_public_key_pem(text) {
            let pem = key
                .to_public_key_pem(LineEnding::LF)
                .map_err(|_| ClientError::UnsupportedKey)?;
            return Ok(ClientKey::PublicKey {
                algorithm: KeyAlgorithm::Es384,
                pem,
            });
        }
        let rsa = rsa::RsaPublicKey::from_public_key_pem(text)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(text))
            .map_err(|_| ClientError::UnsupportedKey)?;
        if rsa.size() < 256 {
            return Err(ClientError::UnsupportedKey);
        }
        let pem = rsa
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| ClientError::UnsupportedKey)?;
        Ok(ClientKey::PublicKey {
            algorithm: KeyAlgorithm::Rs384,
            pem,
        })
    }

    /// A JWKS URL: https, or http on a loopback address (a test double on this machine).
    pub fn jwks_url(url: &str) -> Result<ClientKey, ClientError> {
        let bad = || ClientError::JwksUrl(url.to_string());
        let parsed = reqwest::Url::parse(url).map_err(|_| bad())?;
        let loopback = match parsed.host_str() {
            Some("localhost") => true,
            Some(host) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        };
        match parsed.scheme() {
            "https" => Ok(ClientKey::JwksUrl(url.to_string())),
            "http" if loopback => Ok(ClientKey::JwksUrl(url.to_string())),
            _ => Err(bad()),
        }
    }

    /// What `clients list` shows: the kind of key, never the key.
    pub fn describe(&self) -> String {
        match self {
            ClientKey::PublicKey { algorithm, .. } => {
                format!("public key ({})", algorithm.as_str())
            }
            ClientKey::JwksUrl(url) => format!("JWKS {url}"),
        }
    }
}

/// A client as stored.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// Space-separated, as registered.
    pub scopes: String,
    pub key: ClientKey,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

type ClientRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

impl Client {
    fn from_row(row: ClientRow) -> Result<Client, StoreError> {
        let (id, name, scopes, algorithm, pem, jwks_url, created_at, revoked_at) = row;
        let key = match (algorithm.as_deref().and_then(KeyAlgorithm::parse), pem, jwks_url) {
            (Some(algorithm), Some(pem), None) => ClientKey::PublicKey { algorithm, pem },
            (None, None, Some(url)) => ClientKey::JwksUrl(url),
            _ => return Err(StoreError::Corrupt(format!("client {id} has no usable key"))),
        };
        Ok(Client {
            id,
            name,
            scopes,
            key,
            created_at,
            revoked_at,
        })
    }
}

/// Checks a scope list for registration: every scope a system scope on a served type or `*`.
pub fn checked_scopes(text: &str) -> Result<String, ClientError> {
    let mut scopes: Vec<&str> = Vec::new();
    for raw in text.split_whitespace() {
        let scope = Scope::parse(raw).ok_or_else(|| ClientError::BadScope(raw.to_string()))?;
        if scope.resource_type.as_deref().is_some_and(|t| !is_supported(t)) {
            return Err(ClientError::BadScope(raw.to_string()));
        }
        if !scopes.contains(&raw) {
            scopes.push(raw);
        }
    }
    if scopes.is_empty() {
        return Err(ClientError::NoScopes);
    }
    Ok(scopes.join(" "))
}

/// Registers a client; returns its id, which the client uses as `iss` and `sub`.
pub fn register(conn: &mut DbConnection, name: &str, scopes: &str, key: &ClientKey) -> Result<String, ClientError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ClientError::NoName);
    }
    let scopes = checked_scopes(scopes)?;
    let id = uuid::Uuid::new_v4().to_string();
    let (algorithm, pem, jwks_url) = match key {
        ClientKey::PublicKey { algorithm, pem } => (Some(algorithm.as_str()), Some(pem.as_str()), None),
        ClientKey::JwksUrl(url) => (None, None, Some(url.as_str())),
    };
    diesel::insert_into(auth_clients::table)
        .values((
            auth_clients::id.eq(&id),
            auth_clients::name.eq(name),
            auth_clients::scopes.eq(&scopes),
            auth_clients::key_algorithm.eq(algorithm),
            auth_clients::public_key_pem.eq(pem),
            auth_clients::jwks_url.eq(jwks_url),
            auth_clients::created_at.eq(now_instant()),
        ))
        .execute(conn)?;
    Ok(id)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Client>, StoreError> {
    auth_clients::table
        .find(id)
        .first::<ClientRow>(conn)
        .optional()?
        .map(Client::from_row)
        .transpose()
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<Client>, StoreError> {
    auth_clients::table
        .order(auth_clients::created_at.asc())
        .load::<ClientRow>(conn)?
        .into_iter()
        .map(Client::from_row)
        .collect()
}

/// Revokes a client: it gets no new token, and the tokens it holds stop working at once.
/// Revoking twice keeps the first instant.
pub fn revoke(conn: &mut DbConnection, id: &str) -> Result<(), ClientError> {
    let found = diesel::update(auth_clients::table.find(id))
        .filter(auth_clients::revoked_at.is_null())
        .set(auth_clients::revoked_at.eq(now_instant()))
        .execute(conn)?;
    if found == 0 && find(conn, id)?.is_none() {
        return Err(ClientError::NotFound(id.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_scopes_must_be_system_scopes_on_served_types() {
        assert_eq!(
            checked_scopes("system/Practitioner.write  system/*.read system/Practitioner.write").unwrap(),
            "system/Practitioner.write system/*.read"
        );
        assert!(matches!(checked_scopes(""), Err(ClientError::NoScopes)));
        for bad in ["system/Patient.read", "patient/*.read", "system/Location.x"] {
            assert!(
                matches!(checked_scopes(bad), Err(ClientError::BadScope(s)) if s == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_private_key_or_an_odd_key_is_refused() {
        let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIB\n-----END PRIVATE KEY-----\n";
        assert!(matches!(ClientKey::from_pem(private), Err(ClientError::PrivateKey)));
        // Valid keys that ES384 and RS384 cannot use: EC P-256, and RSA of 1024 bits.
        let p256 = "-----BEGIN PUBLIC KEY-----\n\
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEb1Fbb/QQDZjBgG6Nr9hAmAJl7jcO\n\
            WNTL9mEdRD5Qo1/MWYT/A9neJ23hi3AZ2F7gARjgQXPdX+EMSCuZaxlrkw==\n\
            -----END PUBLIC KEY-----\n";
        let rsa_1024 = "-----BEGIN PUBLIC KEY-----\n\
            MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDC9ucV/OMOnWFVP47EQc6vZcY0\n\
            xDpm6QVviemoqjy7gQO5QXGUPD5WElT1pQVwwTiWVCjpsdX1Otr+6KevOKRoAcup\n\
            TFdXPlTIJRgsYQtrvVfRK/74L8ghX99E+guCSTorxP4iI3q0p0WYsx36C48iT6qF\n\
            LnxUjNIEDLGqL7bTpwIDAQAB\n\
            -----END PUBLIC KEY-----\n";
        for key in [p256, rsa_1024] {
            assert!(matches!(ClientKey::from_pem(key), Err(ClientError::UnsupportedKey)));
        }
        assert!(matches!(
            ClientKey::from_pem("not a key"),
            Err(ClientError::UnsupportedKey)
        ));
    }

    #[test]
    fn a_jwks_url_must_be_https_unless_on_loopback() {
        assert!(ClientKey::jwks_url("https://payer.example/jwks.json").is_ok());
        assert!(ClientKey::jwks_url("http://127.0.0.1:9000/jwks.json").is_ok());
        assert!(ClientKey::jwks_url("http://payer.example/jwks.json").is_err());
        assert!(ClientKey::jwks_url("file:///etc/passwd").is_err());
    }
}
