//! The client assertion of SMART Backend Services: a JWT the client signs with its private
//! key. <https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html>
//!
//! Accepted only when: `alg` is RS384 or ES384 and fits the client's key; the signature
//! verifies (jsonwebtoken, RustCrypto); `iss` and `sub` are both the client id; `aud` is this
//! server's token URL; `exp` is present, not past, and at most five minutes ahead; `jti` is
//! present. Whether the `jti` was used before is the database's to say (see `tokens::issue`).
//!
//! Every refusal carries a fixed reason: neither the assertion nor anything decoded from it
//! goes into an error, a response or the log.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::clients::KeyAlgorithm;

/// The furthest ahead an assertion's `exp` may be, in seconds (the SMART spec's five minutes).
pub const MAX_LIFETIME: i64 = 300;
/// Clock skew tolerated between client and server, in seconds.
const LEEWAY: u64 = 30;

/// A refused assertion; the reason is safe to log and to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub &'static str);

/// What can be read of an assertion before its signature is checked: only enough to find the
/// key that must verify it.
#[derive(Debug)]
pub struct Unverified {
    pub algorithm: KeyAlgorithm,
    pub kid: Option<String>,
    pub jku: Option<String>,
    pub client_id: String,
}

#[derive(Deserialize)]
struct Issuer {
    iss: Option<String>,
}

/// Reads the header and `iss` of an assertion without trusting them.
pub fn peek(assertion: &str) -> Result<Unverified, Refused> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| Refused("the client_assertion is not a JWT"))?;
    let algorithm = match header.alg {
        Algorithm::RS384 => KeyAlgorithm::Rs384,
        Algorithm::ES384 => KeyAlgorithm::Es384,
        _ => return Err(Refused("the client_assertion must be signed with RS384 or ES384")),
    };
    // Only to learn which client's key to use; nothing else is believed before verification.
    let issuer = jsonwebtoken::dangerous::insecure_decode::<Issuer>(assertion)
        .map_err(|_| Refused("the client_assertion is not a JWT"))?;
    let client_id = issuer
        .claims
        .iss
        .filter(|iss| !iss.is_empty())
        .ok_or(Refused("the client_assertion has no iss"))?;
    Ok(Unverified {
        algorithm,
        kid: header.kid,
        jku: header.jku,
        client_id,
    })
}

/// The key of a JWKS entry, when it suits the algorithm (RSA for RS384, EC P-384 for ES384).
pub fn jwk_key(jwk: &Jwk, algorithm: KeyAlgorithm) -> Result<DecodingKey, Refused> {
    let suits = match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::RSA(_), KeyAlgorithm::Rs384) => true,
        (AlgorithmParameters::EllipticCurve(ec), KeyAlgorithm::Es384) => ec.curve == EllipticCurve::P384,
        _ => false,
    };
    if !suits {
        return Err(Refused("the JWKS key named by kid does not fit the alg"));
    }
    DecodingKey::from_jwk(jwk).map_err(|_| Refused("the JWKS key named by kid is not usable"))
}

/// A registered PEM key, for its algorithm.
pub fn pem_key(pem: &str, algorithm: KeyAlgorithm) -> Result<DecodingKey, Refused> {
    let key = match algorithm {
        KeyAlgorithm::Rs384 => DecodingKey::from_rsa_pem(pem.as_bytes()),
        KeyAlgorithm::Es384 => DecodingKey::from_ec_pem(pem.as_bytes()),
    };
    key.map_err(|_| Refused("the client's registered key is not usable"))
}

#[derive(Deserialize)]
struct Claims {
    exp: i64,
    jti: Option<String>,
}

/// A verified assertion: its id and expiry, for the replay check.
#[derive(Debug)]
pub struct Verified {
    pub jti: String,
    pub expires_at: i64,
}

/// Verifies an assertion's signature and claims. `now` in seconds since the epoch.
pub fn verify(
    assertion: &str,
    key: &DecodingKey,
    algorithm: KeyAlgorithm,
    client_id: &str,
    token_url: &str,
    now: i64,
) -> Result<Verified, Refused> {
    use jsonwebtoken::errors::ErrorKind;
    let mut validation = Validation::new(algorithm.jwt());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_string());
    validation.set_audience(&[token_url]);
    validation.leeway = LEEWAY;
    let data = jsonwebtoken::decode::<Claims>(assertion, key, &validation).map_err(|e| {
        Refused(match e.kind() {
            ErrorKind::InvalidSignature => "the client_assertion's signature does not verify",
            ErrorKind::ExpiredSignature => "the client_assertion has expired",
            ErrorKind::InvalidAudience => "the client_assertion's aud is not this server's token URL",
            ErrorKind::InvalidIssuer => "the client_assertion's iss is not the client id",
            ErrorKind::InvalidSubject => "the client_assertion's sub is not the client id",
            ErrorKind::ImmatureSignature => "the client_assertion is not valid yet (nbf)",
            ErrorKind::InvalidAlgorithm => "the client_assertion's alg does not fit the client's key",
            ErrorKind::MissingRequiredClaim(_) => "the client_assertion lacks one of iss, sub, aud, exp",
            _ => "the client_assertion is not valid",
        })
    })?;
    let claims = data.claims;
    if claims.exp > now + MAX_LIFETIME + LEEWAY as i64 {
        return Err(Refused("the client_assertion's exp is more than five minutes ahead"));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 255)
        .ok_or(Refused("the client_assertion has no jti"))?;
    Ok(Verified {
        jti,
        expires_at: claims.exp,
    })
}
