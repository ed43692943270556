//! Inbound webhooks: the body is accepted only when its HMAC-SHA256 under the integration's
//! configured secret matches the signature header, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::adapter::IntegrationError;

/// Checks `signature` (`sha256=<hex>` or bare hex) against HMAC-SHA256(secret, payload).
pub fn verify(secret: &str, payload: &[u8], signature: &str) -> Result<(), IntegrationError> {
    let hex = signature.trim().strip_prefix("sha256=").unwrap_or(signature.trim());
    let expected = decode_hex(hex).ok_or(IntegrationError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(payload);
    // verify_slice compares in constant time: no timing tells an attacker how much matched.
    mac.verify_slice(&expected).map_err(|_| IntegrationError::BadSignature)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::alerts::sign;

    #[test]
    fn a_body_signed_with_the_secret_is_accepted_and_any_change_refused() {
        let body = br#"{"event":"attestation-due","caqhProviderId":"16001234"}"#;
        let signature = sign("s3cret", body);
        assert!(verify("s3cret", body, &signature).is_ok());
        assert!(verify("s3cret", body, signature.trim_start_matches("sha256=")).is_ok());
        assert!(verify("other", body, &signature).is_err(), "wrong secret");
        assert!(verify(
            "s3cret",
            br#"{"event":"attestation-due","caqhProviderId":"16009999"}"#,
            &signature
        )
        .is_err());
        assert!(verify("s3cret", body, "sha256=zz").is_err(), "not hex");
        assert!(verify("s3cret", body, "").is_err());
    }
}
