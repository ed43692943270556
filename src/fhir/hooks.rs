//! Work other modules add to writes of some resource types, without the REST layer knowing
//! them: the NPPES integration checks NPIs and enriches Practitioners and Organizations.

use serde_json::Value;

use super::FhirError;
use crate::store::{StoredVersion, Tx};

/// Stores a resource inside the write's transaction (the hook calls it once).
pub type Put<'a> = &'a mut dyn FnMut(&mut Tx<'_>, Value) -> Result<StoredVersion, FhirError>;

pub trait WriteHook: Send + Sync {
    /// Checks a resource before any database work (a refusal here is a 4xx to the client).
    fn check(&self, resource_type: &str, resource: &Value) -> Result<(), FhirError>;

    /// Stores `resource` through `put`, inside the write's transaction: the hook may change it
    /// first and write related rows after, all committed or rolled back with the write. It
    /// may run more than once when the store retries a transaction that lost a race, so it
    /// must not act outside the transaction.
    fn store(
        &self,
        tx: &mut Tx<'_>,
        resource_type: &str,
        id: &str,
        resource: Value,
        put: Put<'_>,
    ) -> Result<StoredVersion, FhirError>;
}

/// Stores through the hook when there is one.
pub(crate) fn put_with(
    hook: Option<&std::sync::Arc<dyn WriteHook>>,
    tx: &mut Tx<'_>,
    resource_type: &str,
    id: &str,
    resource: Value,
    method: &str,
) -> Result<StoredVersion, FhirError> {
    let mut put = |tx: &mut Tx<'_>, resource: Value| Ok(tx.put(resource_type, id, resource, method)?);
    match hook {
        Some(hook) => hook.store(tx, resource_type, id, resource, &mut put),
        None => put(tx, resource),
    }
}
