//! Access tokens and used assertion ids, in the database so that every server process sharing
//! it agrees on them.
//!
//! A token is 32 random bytes from the operating system, base64url: opaque, it says nothing
//! by itself. Only its SHA-256 is stored (with the client, the granted scopes and the
//! expiry), so the table grants nothing to whoever reads it. A token is valid while it has not
//! expired and its client is not revoked; revoking a client ends its tokens at once.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use sha2::{Digest, Sha256};

use super::access::{Credential, Principal};
use super::schema::{auth_assertions, auth_clients, auth_tokens};
use super::scopes::Scopes;
use crate::store::{DbConnection, StoreError};

/// A bearer token. Its `Debug` never shows it; only [`AccessToken::expose`] does, for the one
/// response that hands it to its client.
pub struct AccessToken(String);

impl AccessToken {
    pub fn generate() -> Result<AccessToken, StoreError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Unavailable(format!("no randomness: {e}")))?;
        Ok(AccessToken(URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

/// What the database keeps of a token.
fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// How long an accepted assertion id is remembered after the assertion expired. An expired
/// assertion is refused anyway, so its id need not be kept for ever; the margin covers the
/// clock leeway that still lets a just-expired assertion through.
const ASSERTION_MEMORY_MARGIN: i64 = 300;

/// The outcome of [`issue`].
pub enum Issued {
    Token(AccessToken),
    /// The assertion's `jti` was used before: a replay.
    Replayed,
}

/// Records the assertion's `jti` and stores a new token, in one transaction: an assertion
/// buys exactly one token, even when two processes receive it at the same instant (the
/// primary key on (client_id, jti) lets only one insert win).
pub fn issue(
    conn: &mut DbConnection,
    client_id: &str,
    jti: &str,
    assertion_expires_at: i64,
    scopes: &Scopes,
    token_expires_at: i64,
) -> Result<Issued, StoreError> {
    let now = unix_now();
    let token = AccessToken::generate()?;
    let result = conn.transaction::<_, DieselError, _>(|c| {
        diesel::delete(auth_assertions::table.filter(auth_assertions::expires_at.lt(now - ASSERTION_MEMORY_MARGIN)))
            .execute(c)?;
        diesel::delete(auth_tokens::table.filter(auth_tokens::expires_at.lt(now))).execute(c)?;
        diesel::insert_into(auth_assertions::table)
            .values((
                auth_assertions::client_id.eq(client_id),
                auth_assertions::jti.eq(jti),
                auth_assertions::expires_at.eq(assertion_expires_at),
            ))
            .execute(c)?;
        diesel::insert_into(auth_tokens::table)
            .values((
                auth_tokens::token_hash.eq(digest(token.expose())),
                auth_tokens::client_id.eq(client_id),
                auth_tokens::scopes.eq(scopes.to_string()),
                auth_tokens::expires_at.eq(token_expires_at),
            ))
            .execute(c)?;
        Ok(())
    });
    match result {
        Ok(()) => Ok(Issued::Token(token)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(Issued::Replayed),
        Err(e) => Err(e.into()),
    }
}

/// What a presented bearer token is worth.
pub fn credential(conn: &mut DbConnection, token: &str) -> Result<Credential, StoreError> {
    let found = auth_tokens::table
        .inner_join(auth_clients::table)
        .filter(auth_tokens::token_hash.eq(digest(token)))
        .select((
            auth_tokens::client_id,
            auth_clients::name,
            auth_tokens::scopes,
            auth_tokens::expires_at,
            auth_clients::revoked_at,
        ))
        .first::<(String, String, String, i64, Option<String>)>(conn)
        .optional()?;
    let Some((client_id, client_name, scopes, expires_at, revoked_at)) = found else {
        return Ok(Credential::Invalid {
            reason: "unknown token",
            client_id: None,
        });
    };
    if revoked_at.is_some() {
        return Ok(Credential::Invalid {
            reason: "the client was revoked",
            client_id: Some(client_id),
        });
    }
    if expires_at <= unix_now() {
        return Ok(Credential::Invalid {
            reason: "the token has expired",
            client_id: Some(client_id),
        });
    }
    Ok(Credential::Valid(Principal {
        client_id,
        client_name,
        scopes: Scopes::parse(&scopes),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_never_printed() {
        let a = AccessToken::generate().unwrap();
        let b = AccessToken::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 43, "32 bytes, base64url without padding");
        assert_eq!(format!("{a:?}"), "AccessToken(***)");
        assert_eq!(digest("abc").len(), 64);
        assert_ne!(digest(a.expose()), a.expose());
    }
}
