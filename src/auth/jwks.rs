//! Keys of clients registered with a JWKS URL, fetched when an assertion arrives and kept a
//! few minutes, so that a burst of token requests makes one fetch while a rotated key is
//! picked up soon. A `kid` that is not in the cached set makes one early refetch (at most every
//! [`REFETCH_AFTER`]), which is how a client's new key is found before the cache expires.
//!
//! The fetch happens with no database connection held, and with a short timeout and a size
//! limit: a slow or hostile JWKS host delays only its own client's token request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

/// How long a fetched key set is used.
const KEEP_FOR: Duration = Duration::from_secs(300);
/// The earliest a key set is fetched again when a `kid` is missing from it.
const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// The largest JWKS document read.
const MAX_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the JWKS failed: {0}")]
    Fetch(String),
    #[error("the JWKS is not a JSON key set")]
    NotAKeySet,
}

/// A fetched key set and when it was fetched, by URL.
type KeySets = HashMap<String, (Instant, Arc<Vec<Jwk>>)>;

pub struct JwksCache {
    http: reqwest::Client,
    sets: Mutex<KeySets>,
}

impl JwksCache {
    pub fn new(http: reqwest::Client) -> JwksCache {
        JwksCache {
            http,
            sets: Mutex::new(HashMap::new()),
        }
    }

    /// The key `kid` of the set at `url`, fetching the set when it is not fresh.
    pub async fn key(&self, url: &str, kid: &str) -> Result<Option<Jwk>, JwksError> {
        let cached = self.sets.lock().expect("JWKS cache").get(url).cloned();
        if let Some((fetched, keys)) = &cached {
            let found = find(keys, kid);
            if fetched.elapsed() < KEEP_FOR && (found.is_some() || fetched.elapsed() < REFETCH_AFTER) {
                return Ok(found);
            }
        }
        let keys = Arc::new(self.fetch(url).await?);
        self.sets
            .lock()
            .expect("JWKS cache")
            .insert(url.to_string(), (Instant::now(), keys.clone()));
        Ok(find(&keys, kid))
    }

    async fn fetch(&self, url: &str) -> Result<Vec<Jwk>, JwksError> {
        let mut response = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(JwksError::Fetch(format!("status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(JwksError::Fetch(format!("larger than {MAX_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        parse(&body)
    }
}

/// The usable keys of a JWKS document; keys of kinds this library does not know are skipped
/// rather than spoiling the whole set.
fn parse(body: &[u8]) -> Result<Vec<Jwk>, JwksError> {
    let document: Value = serde_json::from_slice(body).map_err(|_| JwksError::NotAKeySet)?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NotAKeySet)?;
    Ok(keys
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .collect())
}

fn find(keys: &[Jwk], kid: &str) -> Option<Jwk> {
    keys.iter().find(|k| k.common.key_id.as_deref() == Some(kid)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_kinds_do_not_spoil_a_set() {
        let body = br#"{"keys": [
            {"kty": "OKP-future", "kid": "x"},
            {"kty": "EC", "crv": "P-384", "kid": "k1", "alg": "ES384",
             "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
             "y": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
        ]}"#;
        let keys = parse(body).unwrap();
        assert!(find(&keys, "k1").is_some());
        assert!(find(&keys, "x").is_none());
        assert!(matches!(parse(b"[]"), Err(JwksError::NotAKeySet)));
    }
}
